// HttpClient: one libcurl easy handle, driven through a multi handle, kept for the
// uploader thread's lifetime, so consecutive POSTs reuse the TCP/TLS connection
// (keep-alive) and a POST can be in flight while the thread does other work.
//
// What it promises: begin_post() and finish_post() never throw and never block longer than
// the request timeout (or until abort_at() fires). Certificate verification stays on unless
// the caller passes no https URL; a CA file may replace the system bundle. Proxy
// environment variables (http_proxy, https_proxy, no_proxy) are honoured by libcurl.
// Thread-safety: one HttpClient per thread; abort_at() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace streamtally::upload {

struct HttpClientOptions {
  std::string ca_file;  // empty: the system CA bundle
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{30000};
};

// How a request ended when no HTTP status came back.
enum class TransportError { None, ConnectFailed, TimedOut, Aborted, Tls, Other };

struct HttpResponse {
  long status = 0;  // 0: no HTTP response (see transport_error)
  TransportError transport_error = TransportError::None;
  std::string error;        // libcurl's message when transport_error != None
  std::string body;         // capped (we only log it)
  std::string retry_after;  // raw Retry-After header value, "" when absent
};

class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // POSTs body with the given extra header lines ("Name: value"), in two steps so the
  // caller can work while the request is on the way (the uploader claims and compresses
  // its next batch): begin_post() sends what the socket takes without waiting,
  // finish_post() waits for the answer. request_timeout overrides the default for this
  // request when > 0. One request at a time; every begin_post() is followed by finish_post().
  void begin_post(const std::string& url, const std::vector<std::string>& headers, std::string body,
                  std::chrono::milliseconds request_timeout = std::chrono::milliseconds::zero());
  HttpResponse finish_post();

  // Requests running at or after this steady-clock instant abort (used by a
  // bounded stop). Pass time_point::max() to clear.
  void abort_at(std::chrono::steady_clock::time_point when);

  struct Handle;

 private:
  HttpClientOptions options_;
  std::unique_ptr<Handle> handle_;
  std::atomic<int64_t> abort_at_ns_;
};

}  // namespace streamtally::upload
