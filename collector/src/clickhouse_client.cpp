#include "clickhouse_client.hpp"

#include <httplib.h>

#include <cctype>
#include <charconv>

namespace streamtally::collector {
namespace {

constexpr std::size_t kPoolSize = 8;  // idle connections kept (keep-alive)

// The first line of ClickHouse's error text ("Code: 60, e.displayText() = ...").
std::string first_line(std::string_view text) {
  const auto end = text.find('\n');
  std::string line(text.substr(0, end));
  if (line.size() > 2000) line.resize(2000);
  return line;
}

Result<std::string> answer(const httplib::Result& result, std::string_view what) {
  if (!result) return Error{"clickhouse: " + std::string(what) + ": " + httplib::to_string(result.error())};
  if (result->status != 200) {
    // ClickHouse names the limit it hit; say it in our words for the API's 400.
    if (result->body.find("Limit for result exceeded") != std::string::npos ||
        result->body.find("TOO_MANY_ROWS") != std::string::npos)
      return Error{std::string(ClickHouseClient::kTooManyRows)};
    return Error{"clickhouse: " + first_line(result->body)};
  }
  return result->body;
}

}  // namespace

void append_tsv_field(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\0': out += "\\0"; break;
      default: out.push_back(c);
    }
  }
}

Status for_each_tsv_row(std::string_view tsv, const std::function<void(TsvRow&)>& visit) {
  TsvRow row;
  std::string field;
  bool escaped_null = false;
  std::size_t i = 0;
  auto end_field = [&] {
    if (escaped_null && field.empty()) row.emplace_back(std::nullopt);
    else row.emplace_back(std::move(field));
    field.clear();
    escaped_null = false;
  };
  while (i < tsv.size()) {
    const char c = tsv[i++];
    if (c == '\t') {
      end_field();
    } else if (c == '\n') {
      end_field();
      visit(row);
      row.clear();
    } else if (c == '\\') {
      if (i >= tsv.size()) return Error{"clickhouse: a TabSeparated answer ends inside an escape"};
      const char e = tsv[i++];
      switch (e) {
        case 't': field.push_back('\t'); break;
        case 'n': field.push_back('\n'); break;
        case 'r': field.push_back('\r'); break;
        case '0': field.push_back('\0'); break;
        case 'b': field.push_back('\b'); break;
        case 'f': field.push_back('\f'); break;
        case 'N': escaped_null = true; break;
        default: field.push_back(e);  // \\ \' and the rest stand for themselves
      }
    } else {
      field.push_back(c);
    }
  }
  if (!row.empty() || !field.empty()) return Error{"clickhouse: a TabSeparated answer ends inside a row"};
  return Status::Ok();
}

std::string QueryValues::value(std::string_view v) {
  ExternalTable& t = table("v String");
  append_tsv_field(t.tsv, v);
  t.tsv.push_back('\n');
  return "(SELECT v FROM " + t.name + ")";
}

std::string QueryValues::list(const std::vector<std::string>& values) {
  ExternalTable& t = table("v String");
  for (const std::string& v : values) {
    append_tsv_field(t.tsv, v);
    t.tsv.push_back('\n');
  }
  return t.name;
}

ExternalTable& QueryValues::table(std::string structure) {
  tables_.push_back({"_p" + std::to_string(tables_.size() + 1), std::move(structure), {}});
  return tables_.back();
}

Result<ClickHouseAddress> parse_clickhouse_url(std::string_view spec) {
  constexpr std::string_view kScheme = "clickhouse://";
  const std::string usage = "--store clickhouse://HOST:PORT/DB (PORT: ClickHouse's HTTP port, default 8123)";
  if (!spec.starts_with(kScheme)) return Error{usage + ", got " + std::string(spec)};
  std::string_view rest = spec.substr(kScheme.size());
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash + 1 >= rest.size()) return Error{usage + ": the database is missing"};
  ClickHouseAddress address;
  const std::string_view authority = rest.substr(0, slash);
  address.database = std::string(rest.substr(slash + 1));
  for (char c : address.database)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_')
      return Error{usage + ": the database name may hold letters, digits and _ only"};
  const auto colon = authority.rfind(':');
  address.host = std::string(authority.substr(0, colon));
  if (colon != std::string_view::npos) {
    const std::string_view port = authority.substr(colon + 1);
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), address.port);
    if (ec != std::errc() || end != port.data() + port.size() || address.port <= 0 || address.port > 65535)
      return Error{usage + ": bad port \"" + std::string(port) + "\""};
  }
  if (address.host.starts_with('[') && address.host.ends_with(']'))  // [::1]
    address.host = address.host.substr(1, address.host.size() - 2);
  if (address.host.empty()) return Error{usage + ": the host is missing"};
  return address;
}

ClickHouseClient::ClickHouseClient(ClickHouseAddress address) : address_(std::move(address)) {}
ClickHouseClient::~ClickHouseClient() = default;

std::unique_ptr<httplib::Client> ClickHouseClient::take() {
  {
    std::lock_guard lock(pool_mutex_);
    if (!idle_.empty()) {
      auto client = std::move(idle_.back());
      idle_.pop_back();
      return client;
    }
  }
  auto client = std::make_unique<httplib::Client>(address_.host, address_.port);
  client->set_keep_alive(true);
  client->set_connection_timeout(5, 0);
  client->set_read_timeout(300, 0);  // a report over a large range may take a while
  client->set_write_timeout(60, 0);
  return client;
}

void ClickHouseClient::give_back(std::unique_ptr<httplib::Client> client) {
  std::lock_guard lock(pool_mutex_);
  if (idle_.size() < kPoolSize) idle_.push_back(std::move(client));
}

Result<std::string> ClickHouseClient::query(const std::string& sql, const QueryValues& values,
                                            int64_t max_result_rows) {
  // Tables are named with their database in the SQL: the first query creates it.
  httplib::Params params;
  if (max_result_rows > 0) {
    params.emplace("max_result_rows", std::to_string(max_result_rows));
    params.emplace("result_overflow_mode", "throw");
  }
  httplib::MultipartFormDataItems items{{"query", sql, "", ""}};
  for (const ExternalTable& t : values.tables()) {
    params.emplace(t.name + "_structure", t.structure);
    items.push_back({t.name, t.tsv, t.name, "text/tab-separated-values"});
  }
  auto client = take();
  auto result = client->Post(httplib::append_query_params("/", params), items);
  auto body = answer(result, "query");
  if (result) give_back(std::move(client));
  return body;
}

Status ClickHouseClient::insert(const std::string& insert_sql, const std::string& rows) {
  auto client = take();
  auto result = client->Post(httplib::append_query_params("/", {{"query", insert_sql}}), rows,
                             "application/octet-stream");
  auto body = answer(result, "insert");
  if (result) give_back(std::move(client));
  if (!body) return Error{body.error()};
  return Status::Ok();
}

}  // namespace streamtally::collector
