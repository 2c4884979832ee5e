// The embedded page is the authored files, inlined, and nothing on it points off the origin.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "streamtally/collector/dashboard.hpp"

namespace streamtally::collector {
namespace {

std::string source(const std::string& name) {
  std::ifstream in(std::string(STREAMTALLY_DASHBOARD_SOURCE_DIR) + "/" + name, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

TEST(DashboardPage, IsTheAuthoredFilesWithCssAndJsInlined) {
  const std::string page(dashboard_html());
  const std::string css = source("dashboard.css"), js = source("dashboard.js"), html = source("index.html");
  ASSERT_FALSE(css.empty());
  ASSERT_FALSE(js.empty());
  EXPECT_NE(page.find("<style>\n" + css + "</style>"), std::string::npos);
  EXPECT_NE(page.find("<script>\n" + js + "</script>"), std::string::npos);
  // Everything of index.html around the two references is there, byte for byte.
  const std::string css_tag = "<link rel=\"stylesheet\" href=\"dashboard.css\">";
  const std::string js_tag = "<script src=\"dashboard.js\"></script>";
  const auto css_ref = html.find(css_tag);
  const auto js_ref = html.find(js_tag);
  ASSERT_NE(css_ref, std::string::npos);
  ASSERT_NE(js_ref, std::string::npos);
  EXPECT_EQ(page.substr(0, css_ref), html.substr(0, css_ref));
  const std::string tail = html.substr(js_ref + js_tag.size());
  EXPECT_EQ(page.substr(page.size() - tail.size()), tail);
  EXPECT_EQ(page.size(), html.size() - css_tag.size() - js_tag.size() + css.size() + js.size() +
                             std::string("<style>\n</style><script>\n</script>").size());
}

TEST(DashboardPage, LoadsNothingFromElsewhere) {
  std::string page(dashboard_html());
  // The SVG namespace is a name, not something fetched.
  const std::string svg_namespace = "http://www.w3.org/2000/svg";
  for (auto at = page.find(svg_namespace); at != std::string::npos; at = page.find(svg_namespace)) {
    page.erase(at, svg_namespace.size());
  }
  // No external script/style/image/font: no src=, no <link>, no url(), no @import, no absolute URLs.
  EXPECT_FALSE(std::regex_search(page, std::regex(R"(<script[^>]+src=)")));
  EXPECT_FALSE(std::regex_search(page, std::regex(R"(<link\b)")));
  EXPECT_FALSE(std::regex_search(page, std::regex(R"(\burl\s*\()")));
  EXPECT_FALSE(std::regex_search(page, std::regex(R"(@import)")));
  EXPECT_FALSE(std::regex_search(page, std::regex(R"(https?://)")));
  EXPECT_FALSE(std::regex_search(page, std::regex(R"(<img\b|<iframe\b)")));
}

TEST(DashboardPage, CallsTheReportApiAsSpecified) {
  const std::string page(dashboard_html());
  for (const char* call : {"/v1/usage/month-to-date", "/v1/top?by=", "&of=", "/v1/timeseries?", "metrics=ccu,bytes_out",
                           "bucket=", "/v1/events?dimensions=", "/v1/sessions?", "/v1/export?", "Authorization",
                           "Bearer ", "sessionStorage", "status === 401"}) {
    EXPECT_NE(page.find(call), std::string::npos) << call;
  }
  for (const char* group : {"data-group=\"all\"", "data-group=\"stream\"", "data-group=\"server\"",
                            "data-group=\"user\"", "data-group=\"unique\""}) {
    EXPECT_NE(page.find(group), std::string::npos) << group;
  }
  for (const char* filter : {"name=\"stream\"", "name=\"user_id\"", "name=\"ip\"", "name=\"user_agent\"",
                             "name=\"protocol\"", "id=\"server-picker\"", "name=\"min_duration\"", "name=\"max_duration\"",
                             "name=\"from\"", "name=\"to\""}) {
    EXPECT_NE(page.find(filter), std::string::npos) << filter;
  }
}

}  // namespace
}  // namespace streamtally::collector
