// The literal pre-filter must never reject a user-agent its regex matches.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "pcre2_regex.hpp"
#include "required_literal.hpp"

namespace streamtally::collector {
namespace {

TEST(RequiredLiteral, HandWorkedPatterns) {
  EXPECT_EQ(required_literal(R"(^(Luminary)[Stage]+/(\d+) CFNetwork)"), " CFNetwork");
  EXPECT_EQ(required_literal(R"((ESPN)[%20| ]+Radio/(\d+)\.(\d+))"), "Radio/");
  EXPECT_EQ(required_literal(R"((Kobo Touch)\b)"), "Kobo Touch");
  EXPECT_EQ(required_literal(R"((?:Windows NT )+6)"), "Windows NT ");
  EXPECT_EQ(required_literal(R"(abc?d)"), "ab");            // 'c' may be absent
  EXPECT_EQ(required_literal(R"(xyzw*)"), "xyz");
  EXPECT_EQ(required_literal(R"(ab{0,3}c)"), "a");
  EXPECT_EQ(required_literal(R"(Firefox\/(\d+))"), "Firefox/");  // escaped punctuation is literal
  EXPECT_EQ(required_literal(R"((Opera)? Mini)"), " Mini");  // an optional group requires nothing
  EXPECT_EQ(required_literal(R"(iPhone|iPad)"), "");          // top-level alternation
  EXPECT_EQ(required_literal(R"((iPhone|iPad) OS)"), " OS");
  EXPECT_EQ(required_literal(R"((?=Chrome)Chr)"), "Chr");      // lookahead content not used
  EXPECT_EQ(required_literal(R"(\d+\.\d+)"), ".");
  EXPECT_EQ(required_literal(R"(broken(group)"), "");
  EXPECT_EQ(required_literal(R"(broken[class)"), "");
}

// Every uap-core regex against real user-agents (uap-core's own test strings): whenever the
// regex matches, its literal is in the subject.
TEST(RequiredLiteral, NeverRejectsAMatchOfUapCoreRegexes) {
  const YAML::Node regexes = YAML::LoadFile("/usr/share/uap-core/regexes.yaml");
  std::vector<std::string> subjects;
  for (const char* suite : {"test_ua.yaml", "test_os.yaml"}) {
    for (const YAML::Node& t : YAML::LoadFile(std::string("/usr/share/uap-core/tests/") + suite)["test_cases"]) {
      subjects.push_back(t["user_agent_string"].Scalar());
    }
  }
  const YAML::Node devices = YAML::LoadFile("/usr/share/uap-core/tests/test_device.yaml")["test_cases"];
  for (std::size_t i = 0; i < devices.size(); i += 8) subjects.push_back(devices[i]["user_agent_string"].Scalar());

  std::size_t matches = 0, with_literal = 0;
  for (const char* list : {"user_agent_parsers", "os_parsers", "device_parsers"}) {
    for (const YAML::Node& entry : regexes[list]) {
      const std::string pattern = entry["regex"].Scalar();
      const bool caseless = entry["regex_flag"] && entry["regex_flag"].Scalar() == "i";
      auto regex = Pcre2Regex::compile(pattern, caseless);
      ASSERT_TRUE(regex.ok()) << regex.error();
      std::string literal = required_literal(pattern);
      with_literal += !literal.empty();
      if (literal.empty()) continue;
      const MatchScratch scratch(regex->capture_count());
      for (const std::string& ua : subjects) {
        if (!regex->search(ua, scratch)) continue;
        ++matches;
        std::string haystack = ua;
        if (caseless) {
          for (char& c : haystack) c = char(std::tolower(static_cast<unsigned char>(c)));
          for (char& c : literal) c = char(std::tolower(static_cast<unsigned char>(c)));
        }
        EXPECT_NE(haystack.find(literal), std::string::npos) << "pattern " << pattern << "\nliteral '" << literal
                                                             << "'\nsubject " << ua;
      }
    }
  }
  std::cout << "[ figures  ] " << with_literal << " uap-core regexes with a literal; " << matches
            << " matches checked against " << subjects.size() << " user-agents\n";
  EXPECT_GT(matches, 3000u);
}

}  // namespace
}  // namespace streamtally::collector
