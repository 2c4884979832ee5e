// The uap-core parser against uap-core's own test suites (installed with the regexes in
// /usr/share/uap-core/tests): expected families and versions written by the uap-core project,
// not derived from our code.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <filesystem>
#include <iostream>

#include "uap_parser.hpp"

namespace streamtally::collector {
namespace {

const std::string kRegexes = "/usr/share/uap-core/regexes.yaml";
const std::string kTests = "/usr/share/uap-core/tests/";

std::optional<std::string> expected(const YAML::Node& test, const char* key) {
  const YAML::Node v = test[key];
  if (!v || v.IsNull() || !v.IsScalar() || v.Scalar().empty()) return std::nullopt;
  return v.Scalar();
}

std::string show(const std::optional<std::string>& v) { return v ? "'" + *v + "'" : "null"; }

class UapConformance : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(std::filesystem::exists(kRegexes)) << "install uap-core";
    const auto start = std::chrono::steady_clock::now();
    auto loaded = UapParser::load(kRegexes);
    ASSERT_TRUE(loaded.ok()) << loaded.error();
    std::cout << "[ figures  ] uap-core: " << loaded->rule_count() << " regexes compiled in "
              << std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count()
              << " ms\n";
    parser_ = new UapParser(std::move(loaded).value());
  }
  static void TearDownTestSuite() {
    delete parser_;
    parser_ = nullptr;
  }
  static UapParser* parser_;

  // Runs one suite file; returns the failures (as readable lines), with the count of cases.
  template <class Check>
  static std::vector<std::string> run_suite(const std::string& file, std::size_t& cases, Check check) {
    std::vector<std::string> failures;
    const YAML::Node root = YAML::LoadFile(kTests + file);
    for (const YAML::Node& test : root["test_cases"]) {
      ++cases;
      const std::string ua = test["user_agent_string"].Scalar();
      if (std::string diff = check(ua, test); !diff.empty()) failures.push_back(ua + "\n      " + diff);
    }
    return failures;
  }
};
UapParser* UapConformance::parser_ = nullptr;

void expect_no_failures(const std::vector<std::string>& failures, std::size_t cases, const char* what) {
  std::cout << "[ figures  ] " << what << ": " << cases - failures.size() << "/" << cases << " cases match\n";
  EXPECT_GT(cases, 100u);
  for (std::size_t i = 0; i < failures.size() && i < 20; ++i) ADD_FAILURE() << what << ": " << failures[i];
  EXPECT_EQ(failures.size(), 0u);
}

std::string compare(const char* field, const std::optional<std::string>& want, const std::optional<std::string>& got) {
  return want == got ? "" : std::string(field) + " want " + show(want) + " got " + show(got) + "; ";
}

TEST_F(UapConformance, UserAgentFamiliesAndVersions) {
  std::size_t cases = 0;
  const auto failures = run_suite("test_ua.yaml", cases, [](const std::string& ua, const YAML::Node& t) {
    const auto got = parser_->parse_agent(ua);
    return compare("family", expected(t, "family"), got.family) + compare("major", expected(t, "major"), got.major) +
           compare("minor", expected(t, "minor"), got.minor) + compare("patch", expected(t, "patch"), got.patch);
  });
  expect_no_failures(failures, cases, "test_ua.yaml");
}

TEST_F(UapConformance, OperatingSystems) {
  std::size_t cases = 0;
  const auto failures = run_suite("test_os.yaml", cases, [](const std::string& ua, const YAML::Node& t) {
    const auto got = parser_->parse_os(ua);
    return compare("family", expected(t, "family"), got.family) + compare("major", expected(t, "major"), got.major) +
           compare("minor", expected(t, "minor"), got.minor) + compare("patch", expected(t, "patch"), got.patch) +
           compare("patch_minor", expected(t, "patch_minor"), got.patch_minor);
  });
  expect_no_failures(failures, cases, "test_os.yaml");
}

TEST_F(UapConformance, Devices) {
  std::size_t cases = 0;
  const auto failures = run_suite("test_device.yaml", cases, [](const std::string& ua, const YAML::Node& t) {
    const auto got = parser_->parse_device(ua);
    return compare("family", expected(t, "family"), got.family) + compare("brand", expected(t, "brand"), got.brand) +
           compare("model", expected(t, "model"), got.model);
  });
  expect_no_failures(failures, cases, "test_device.yaml");
}

}  // namespace
}  // namespace streamtally::collector
