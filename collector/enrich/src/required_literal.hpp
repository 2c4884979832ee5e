// A literal every match of a regex must contain, found from the pattern's text: a run of
// plain characters at the top level of a pattern without top-level alternation, minus any
// character a quantifier can drop. uap-core's ~1,400 regexes mostly name a product
// ("CFNetwork", "Firefox/"); a substring search rules most of them out before PCRE2 runs.
// Conservative by construction: anything it does not understand yields "" (no filter).
#pragma once

#include <string>
#include <string_view>

namespace streamtally::collector {

std::string required_literal(std::string_view pattern);

}  // namespace streamtally::collector
