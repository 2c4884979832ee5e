#include "required_literal.hpp"

#include <cctype>
#include <vector>

namespace streamtally::collector {

namespace {

// Index just past the character class starting at `i` ('['), or npos when unterminated.
std::size_t skip_class(std::string_view p, std::size_t i) {
  std::size_t j = i + 1;
  if (j < p.size() && p[j] == '^') ++j;
  if (j < p.size() && p[j] == ']') ++j;  // a leading ']' is a literal member
  for (; j < p.size(); ++j) {
    if (p[j] == '\\') {
      ++j;
    } else if (p[j] == ']') {
      return j + 1;
    }
  }
  return std::string_view::npos;
}

// Index just past the group starting at `i` ('('), or npos when unbalanced.
std::size_t skip_group(std::string_view p, std::size_t i) {
  int depth = 0;
  for (std::size_t j = i; j < p.size(); ++j) {
    if (p[j] == '\\') {
      ++j;
    } else if (p[j] == '[') {
      j = skip_class(p, j);
      if (j == std::string_view::npos) return j;
      --j;
    } else if (p[j] == '(') {
      ++depth;
    } else if (p[j] == ')' && --depth == 0) {
      return j + 1;
    }
  }
  return std::string_view::npos;
}

}  // namespace

std::string required_literal(std::string_view p) {
  std::vector<std::string> runs;
  std::string run;
  auto end_run = [&] {
    if (!run.empty()) runs.push_back(run);
    run.clear();
  };

  for (std::size_t i = 0; i < p.size();) {
    const char c = p[i];
    if (c == '|') return "";  // top-level alternation: no single required run
    if (c == '\\') {
      if (i + 1 >= p.size()) return "";
      const char next = p[i + 1];
      if (std::isalnum(static_cast<unsigned char>(next))) {
        end_run();  // \d \s \w \b \x.. \1: a class, an anchor or something we do not model
      } else {
        run.push_back(next);  // an escaped punctuation character is itself
      }
      i += 2;
    } else if (c == '(') {
      end_run();
      const std::size_t end = skip_group(p, i);
      if (end == std::string_view::npos) return "";
      // A group that must match once or more ("(Kobo Touch)", "(?:Windows NT )+") requires
      // whatever its own content requires; one a quantifier can skip requires nothing.
      const bool optional = end < p.size() && (p[end] == '?' || p[end] == '*' || p[end] == '{');
      std::string_view content = p.substr(i + 1, end - i - 2);
      if (content.starts_with("?:")) {
        content.remove_prefix(2);
      } else if (content.starts_with("?")) {
        content = {};  // lookaround, named group, inline flags: not modelled
      }
      if (!optional && !content.empty()) runs.push_back(required_literal(content));
      i = end;
    } else if (c == '[') {
      end_run();
      i = skip_class(p, i);
      if (i == std::string_view::npos) return "";
    } else if (c == '?' || c == '*' || c == '{') {
      // The previous character may occur zero times: it is not required.
      if (!run.empty()) run.pop_back();
      end_run();
      if (c == '{') {
        const std::size_t close = p.find('}', i);
        if (close == std::string_view::npos) return "";
        i = close + 1;
      } else {
        ++i;
      }
    } else if (c == '+') {
      end_run();  // the previous character occurs at least once: keep it, but the run breaks
      ++i;
    } else if (c == '.' || c == '^' || c == '$' || c == ')' || c == ']' || c == '}') {
      end_run();
      ++i;
    } else {
      run.push_back(c);
      ++i;
    }
  }
  end_run();

  std::string longest;
  for (const std::string& r : runs) {
    if (r.size() > longest.size()) longest = r;
  }
  return longest;
}

}  // namespace streamtally::collector
