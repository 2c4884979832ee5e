// The collector's dashboard: one self-contained HTML page (CSS and JavaScript inlined,
// nothing loaded from elsewhere) that reads the report API on the same origin. Authored as
// collector/dashboard/index.html + dashboard.css + dashboard.js and embedded at build time.
#pragma once

#include <string_view>

namespace streamtally::collector {

// The page, UTF-8, valid for the life of the program. Serve it as text/html; charset=utf-8.
std::string_view dashboard_html();

}  // namespace streamtally::collector
