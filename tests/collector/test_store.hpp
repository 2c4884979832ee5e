// Which store the collector tests run on: SQLite, or ClickHouse when
// STREAMTALLY_TEST_STORE=clickhouse (the clickhouse.* tests, see CMakeLists.txt).
#pragma once

#include <string>

#include "clickhouse_server.hpp"

namespace streamtally::test {

// The server of this test process, started on first use, stopped at exit.
ClickHouseServer& shared_clickhouse_server();

// True when STREAMTALLY_TEST_STORE=clickhouse: the tests run on a ClickHouse store.
bool testing_clickhouse();

// The store a test collector uses for a database file ("dir/a.db"): SQLite in that
// file, or when testing_clickhouse(), a database named after it on the shared
// ClickHouse server. "sqlite:PATH" is always SQLite.
std::string test_store_spec(const std::string& db_path);

}  // namespace streamtally::test
