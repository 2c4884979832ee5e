// CollectorServer: the HTTP face of the collector (cpp-httplib): ingest, the read
// API, /metrics, /healthz and the dashboard. Owns nothing but the HTTP server; the
// store and the enricher are borrowed and must outlive it.
//
// Limits: request bodies up to max_body_bytes compressed and max_decompressed_bytes
// inflated; header lines and request URIs up to 8 KiB (cpp-httplib). stop() lets
// in-flight requests finish before run() returns.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "collector_config.hpp"
#include "collector_metrics.hpp"
#include "store.hpp"

namespace httplib {
class Server;
}

namespace streamtally::collector {

class CollectorServer {
 public:
  // enrich fills country/device/os/browser; may be empty (everything "unknown").
  CollectorServer(CollectorConfig config, Store& store, std::function<void(IngestRecord&)> enrich);
  ~CollectorServer();
  CollectorServer(const CollectorServer&) = delete;
  CollectorServer& operator=(const CollectorServer&) = delete;

  // Binds the listen address; false with a message when it cannot.
  Status bind();
  // Serves until stop(); returns after in-flight requests are answered.
  void run();
  // Safe from any thread (the signal thread calls it).
  void stop();

 private:
  void install_routes();
  CollectorConfig config_;
  Store& store_;
  std::function<void(IngestRecord&)> enrich_;
  CollectorMetrics metrics_;
  std::unique_ptr<httplib::Server> http_;
  int listen_socket_ = -1;  // the socket bind() listens on, once it did
};

}  // namespace streamtally::collector
