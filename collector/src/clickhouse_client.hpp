// ClickHouseClient: queries over ClickHouse's HTTP interface (cpp-httplib, the
// collector's HTTP library), with a small pool of keep-alive connections.
//
// Values from requests never become SQL. ClickHouse 18.16 (Debian's) has no query
// parameters, so QueryValues sends each value as "external data": a small temporary
// table that travels with the query as a multipart part, in TabSeparated. The SQL
// only names the table: `stream IN _p1`, `position(user_agent, (SELECT v FROM _p2))`.
// Integers the collector computed itself (times, limits) are written as numbers.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "streamtally/result.hpp"

namespace httplib {
class Client;
}

namespace streamtally::collector {

// A temporary table sent with one query.
struct ExternalTable {
  std::string name;
  std::string structure;  // "v String" or "a Int64, b String"
  std::string tsv;        // rows in TabSeparated (escape fields with append_tsv_field)
};

// Appends one field escaped for TabSeparated; \N is NULL.
void append_tsv_field(std::string& out, std::string_view value);

// Reads TabSeparated output: visit(fields) per row, NULL (\N) as nullopt.
using TsvRow = std::vector<std::optional<std::string>>;
Status for_each_tsv_row(std::string_view tsv, const std::function<void(TsvRow&)>& visit);

// Collects the values of one query as external tables (the bound parameters).
class QueryValues {
 public:
  // An expression yielding the string: "(SELECT v FROM _pN)".
  std::string value(std::string_view v);
  // A table name usable after IN: "_pN", one row per value.
  std::string list(const std::vector<std::string>& values);
  // A caller-built table (its rows written with append_tsv_field). The reference stays
  // valid while more tables are added.
  ExternalTable& table(std::string structure);
  const std::deque<ExternalTable>& tables() const { return tables_; }

 private:
  std::deque<ExternalTable> tables_;
};

struct ClickHouseAddress {
  std::string host;
  int port = 8123;
  std::string database;
};

// "clickhouse://HOST:PORT/DB" (PORT defaults to 8123, ClickHouse's HTTP port).
Result<ClickHouseAddress> parse_clickhouse_url(std::string_view spec);

class ClickHouseClient {
 public:
  explicit ClickHouseClient(ClickHouseAddress address);
  ~ClickHouseClient();
  ClickHouseClient(const ClickHouseClient&) = delete;
  ClickHouseClient& operator=(const ClickHouseClient&) = delete;

  const ClickHouseAddress& address() const { return address_; }

  // Runs a statement (SELECT results in TabSeparated); the body of the answer.
  // max_result_rows > 0 makes ClickHouse fail a larger result (kTooManyRows).
  Result<std::string> query(const std::string& sql, const QueryValues& values = {}, int64_t max_result_rows = 0);
  // INSERT ... FORMAT <f> with the rows in the body. One INSERT of fewer than
  // max_insert_block_size rows is one block: it lands whole or not at all.
  Status insert(const std::string& insert_sql, const std::string& rows);

  // Prefix of the error when max_result_rows was exceeded.
  static constexpr std::string_view kTooManyRows = "too many result rows";

 private:
  std::unique_ptr<httplib::Client> take();
  void give_back(std::unique_ptr<httplib::Client> client);

  ClickHouseAddress address_;
  std::mutex pool_mutex_;
  std::vector<std::unique_ptr<httplib::Client>> idle_;
};

}  // namespace streamtally::collector
