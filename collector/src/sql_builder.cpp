#include "sql_builder.hpp"

namespace streamtally::collector {

std::string SqlBuilder::param(std::string value) {
  values_.push_back({true, std::move(value), 0});
  return "?" + std::to_string(values_.size());
}

std::string SqlBuilder::param(int64_t value) {
  values_.push_back({false, {}, value});
  return "?" + std::to_string(values_.size());
}

std::string SqlBuilder::list(const std::vector<std::string>& values) {
  std::string out = "(";
  for (std::size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + param(values[i]);
  return out + ")";
}

void SqlBuilder::bind_all(Statement& statement) const {
  for (std::size_t i = 0; i < values_.size(); ++i) {
    const int index = static_cast<int>(i + 1);
    if (values_[i].is_text)
      statement.bind(index, std::string_view(values_[i].text));
    else
      statement.bind(index, values_[i].number);
  }
}

std::string session_dimension_sql(std::string_view d, SqlBuilder& sql) {
  if (d == "server") return "s.server_id";
  if (d == "user_id") return "coalesce(s.user_id, '')";
  if (d.starts_with("tag.")) return "coalesce(json_extract(s.tags, " + sql.param("$.\"" + std::string(d.substr(4)) + "\"") + "), '')";
  return "s." + std::string(d);  // validated by is_dimension(): a fixed name
}

std::string where_sql(const std::vector<WhereClause>& where, SqlBuilder& sql) {
  std::string out;
  for (const WhereClause& clause : where) {
    out += " AND (";
    out += session_dimension_sql(clause.dimension, sql);
    out += " IN " + sql.list(clause.values) + ")";
  }
  return out;
}

}  // namespace streamtally::collector
