// Builds SQL text with numbered parameters: every value from a request is bound,
// never spliced, so a `where` value can never become SQL. Column expressions come
// only from validated dimension names (report_model.cpp).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "report_model.hpp"
#include "sqlite_database.hpp"

namespace streamtally::collector {

class SqlBuilder {
 public:
  // Appends "?N" for a text value.
  std::string param(std::string value);
  std::string param(int64_t value);
  // "(?N, ?M, …)": the right side of IN for a list of text values.
  std::string list(const std::vector<std::string>& values);
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

// Column expression of a dimension on the sessions table (AS s); tag.<key> binds its
// JSON path through the builder.
std::string session_dimension_sql(std::string_view dimension, SqlBuilder& sql);

// " AND (expr IN (?, ?)) ..." for every where clause, on the sessions table.
std::string where_sql(const std::vector<WhereClause>& where, SqlBuilder& sql);

}  // namespace streamtally::collector
