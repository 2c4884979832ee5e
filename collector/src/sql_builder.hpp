// Builds SQL text with numbered parameters: every value from a request is bound,
// never spliced, so a `where` value can never become SQL. Column expressions come
// only from the fixed dimension tables below.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "report_model.hpp"
#include "sqlite_handle.hpp"

namespace streamtally::collector {

class SqlBuilder {
 public:
  // Appends "?N" for a text value.
  std::string param(std::string value);
  std::string param(int64_t value);
  // Binds everything collected so far to a statement prepared from the text.
  void bind_all(Statement& statement) const;

 private:
  struct Value {
    bool is_text;
    std::string text;
    int64_t number;
  };
  std::vector<Value> values_;
};

// Column expressions of a dimension on the rollup side (dimsets AS d) or the
// session side (sessions AS s); tag.<key> binds its JSON path through the builder.
std::string rollup_dimension_sql(std::string_view dimension);
std::string session_dimension_sql(std::string_view dimension, SqlBuilder& sql);

// " AND (expr IN (?, ?)) ..." for every where clause.
std::string where_sql(const std::vector<WhereClause>& where, bool rollup_side, SqlBuilder& sql);

}  // namespace streamtally::collector
