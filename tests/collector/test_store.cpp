#include "test_store.hpp"

#include <cctype>
#include <cstdlib>
#include <filesystem>

namespace streamtally::test {

ClickHouseServer& shared_clickhouse_server() {
  static ClickHouseServer server;  // stopped at exit
  return server;
}

bool testing_clickhouse() {
  const char* store = std::getenv("STREAMTALLY_TEST_STORE");
  return store && std::string(store) == "clickhouse";
}

std::string test_store_spec(const std::string& db_path) {
  if (db_path.starts_with("sqlite:")) return db_path;
  if (!testing_clickhouse()) return "sqlite:" + db_path;
  ClickHouseServer& server = shared_clickhouse_server();
  if (!server.started()) return "clickhouse-server did not start: " + server.log();
  std::string database = "st_";
  for (char c : std::filesystem::path(db_path).filename().string())
    database.push_back(std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  return server.store_url(database);
}

}  // namespace streamtally::test
