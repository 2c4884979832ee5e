#include "http_client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <string_view>

namespace streamtally::upload {
namespace {

constexpr std::size_t kMaxKeptBody = 4096;  // response bodies are only logged

struct EasyDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using EasyPtr = std::unique_ptr<CURL, EasyDeleter>;
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

// curl_global_init is not guaranteed thread-safe on every libcurl build; hosts may
// start uploaders from several threads, so it runs exactly once per process.
void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* response = static_cast<HttpResponse*>(user);
  const size_t n = size * count;
  const size_t room = kMaxKeptBody - std::min(kMaxKeptBody, response->body.size());
  response->body.append(data, std::min(n, room));
  return n;  // always consume: a large error page must not fail the transfer
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* response = static_cast<HttpResponse*>(user);
  const size_t n = size * count;
  std::string_view line(data, n);
  constexpr std::string_view kName = "retry-after:";
  if (line.size() > kName.size()) {
    bool match = true;
    for (std::size_t i = 0; i < kName.size() && match; ++i)
      match = std::tolower(static_cast<unsigned char>(line[i])) == kName[i];
    if (match) {
      std::string_view value = line.substr(kName.size());
      while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) value.remove_prefix(1);
      while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) value.remove_suffix(1);
      response->retry_after.assign(value);
    }
  }
  return n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* abort_at_ns = static_cast<const std::atomic<int64_t>*>(user);
  const int64_t now_ns = std::chrono::steady_clock::now().time_since_epoch().count();
  return now_ns >= abort_at_ns->load(std::memory_order_relaxed) ? 1 : 0;  // non-zero aborts
}

TransportError classify(CURLcode code) {
  switch (code) {
    case CURLE_OK: return TransportError::None;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING: return TransportError::ConnectFailed;
    case CURLE_OPERATION_TIMEDOUT: return TransportError::TimedOut;
    case CURLE_ABORTED_BY_CALLBACK: return TransportError::Aborted;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM: return TransportError::Tls;
    default: return TransportError::Other;
  }
}

}  // namespace

struct HttpClient::Handle {
  EasyPtr curl;
  char error_buffer[CURL_ERROR_SIZE] = {};
};

HttpClient::HttpClient(HttpClientOptions options)
    : options_(std::move(options)),
      handle_(std::make_unique<Handle>()),
      abort_at_ns_(std::chrono::steady_clock::time_point::max().time_since_epoch().count()) {
  init_curl_once();
  handle_->curl.reset(curl_easy_init());
}

HttpClient::~HttpClient() = default;

void HttpClient::abort_at(std::chrono::steady_clock::time_point when) {
  abort_at_ns_.store(when.time_since_epoch().count(), std::memory_order_relaxed);
}

HttpResponse HttpClient::post(const std::string& url, const std::vector<std::string>& headers,
                              const std::string& body, std::chrono::milliseconds request_timeout) {
  HttpResponse response;
  CURL* curl = handle_->curl.get();
  if (!curl) {
    response.transport_error = TransportError::Other;
    response.error = "curl_easy_init failed";
    return response;
  }
  // Options are set for every request on the same handle: libcurl keeps the
  // connection cache across requests, which is what gives us keep-alive.
  SlistPtr header_list;
  for (const auto& header : headers) {
    curl_slist* appended = curl_slist_append(header_list.get(), header.c_str());
    if (!appended) {
      response.transport_error = TransportError::Other;
      response.error = "out of memory building headers";
      return response;
    }
    header_list.release();
    header_list.reset(appended);
  }
  // No "Expect: 100-continue" round trip: the collector answers the whole POST anyway.
  if (curl_slist* appended = curl_slist_append(header_list.get(), "Expect:")) {
    header_list.release();
    header_list.reset(appended);
  }

  const auto timeout = request_timeout.count() > 0 ? request_timeout : options_.request_timeout;
  handle_->error_buffer[0] = '\0';
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, header_list.get());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // we run on a host's thread: no SIGALRM
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);  // a redirect of a POST is a misconfiguration
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "streamtally-uploader/0.1");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &abort_at_ns_);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, handle_->error_buffer);

  const CURLcode code = curl_easy_perform(curl);
  // The header list must not outlive its use by the handle.
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, nullptr);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, nullptr);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, nullptr);

  response.transport_error = classify(code);
  if (code != CURLE_OK) {
    response.error = handle_->error_buffer[0] ? handle_->error_buffer : curl_easy_strerror(code);
    return response;
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

}  // namespace streamtally::upload
