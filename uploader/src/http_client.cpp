#include "http_client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cstdio>
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
struct MultiDeleter {
  void operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
};
using EasyPtr = std::unique_ptr<CURL, EasyDeleter>;
using MultiPtr = std::unique_ptr<CURLM, MultiDeleter>;
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

// How long finish_post() sleeps in poll at most: libcurl checks timeouts and our abort
// deadline (the progress callback) when it runs.
constexpr int kPollMs = 50;

}  // namespace

struct HttpClient::Handle {
  EasyPtr curl;
  MultiPtr multi;  // owns the connection cache while the easy handle is attached
  char error_buffer[CURL_ERROR_SIZE] = {};
  // The request in flight: libcurl reads these until it ends.
  bool started = false;    // begin_post() ran and finish_post() has not
  bool attached = false;   // the easy handle is in the multi handle
  SlistPtr headers;
  std::string body;
  HttpResponse response;
};

HttpClient::HttpClient(HttpClientOptions options)
    : options_(std::move(options)),
      handle_(std::make_unique<Handle>()),
      abort_at_ns_(std::chrono::steady_clock::time_point::max().time_since_epoch().count()) {
  init_curl_once();
  handle_->curl.reset(curl_easy_init());
  handle_->multi.reset(curl_multi_init());
}

HttpClient::~HttpClient() {
  if (handle_->attached) curl_multi_remove_handle(handle_->multi.get(), handle_->curl.get());
}

void HttpClient::abort_at(std::chrono::steady_clock::time_point when) {
  abort_at_ns_.store(when.time_since_epoch().count(), std::memory_order_relaxed);
}

void HttpClient::begin_post(const std::string& url, const std::vector<std::string>& headers, std::string body,
                            std::chrono::milliseconds request_timeout) {
  Handle& h = *handle_;
  h.started = true;
  h.response = HttpResponse{};
  h.body = std::move(body);
  h.headers.reset();
  CURL* curl = h.curl.get();
  if (!curl || !h.multi) {
    h.response.transport_error = TransportError::Other;
    h.response.error = "curl_easy_init failed";
    return;
  }
  for (const auto& header : headers) {
    curl_slist* appended = curl_slist_append(h.headers.get(), header.c_str());
    if (!appended) {
      h.response.transport_error = TransportError::Other;
      h.response.error = "out of memory building headers";
      return;
    }
    h.headers.release();
    h.headers.reset(appended);
  }
  // No "Expect: 100-continue" round trip: the collector answers the whole POST anyway.
  if (curl_slist* appended = curl_slist_append(h.headers.get(), "Expect:")) {
    h.headers.release();
    h.headers.reset(appended);
  }

  // Options are set for every request on the same handle: the connection cache persists
  // across requests, which is what gives us keep-alive.
  const auto timeout = request_timeout.count() > 0 ? request_timeout : options_.request_timeout;
  h.error_buffer[0] = '\0';
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, h.body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(h.body.size()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h.headers.get());
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
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &h.response);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &h.response);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &abort_at_ns_);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, h.error_buffer);

  if (curl_multi_add_handle(h.multi.get(), curl) != CURLM_OK) {
    h.response.transport_error = TransportError::Other;
    h.response.error = "curl_multi_add_handle failed";
    return;
  }
  h.attached = true;
  int running = 0;
  curl_multi_perform(h.multi.get(), &running);  // sends what the socket takes now
}

HttpResponse HttpClient::finish_post() {
  Handle& h = *handle_;
  if (!h.started) {
    HttpResponse none;
    none.transport_error = TransportError::Other;
    none.error = "finish_post() without begin_post()";
    return none;
  }
  h.started = false;
  if (!h.attached) return std::move(h.response);  // begin_post() already failed

  CURLcode code = CURLE_OK;
  bool done = false;
  while (!done) {
    int running = 0;
    if (const CURLMcode mc = curl_multi_perform(h.multi.get(), &running); mc != CURLM_OK) {
      code = CURLE_FAILED_INIT;
      std::snprintf(h.error_buffer, sizeof h.error_buffer, "curl_multi_perform: %s", curl_multi_strerror(mc));
      break;
    }
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(h.multi.get(), &queued)) {
      if (msg->msg == CURLMSG_DONE && msg->easy_handle == h.curl.get()) {
        code = msg->data.result;
        done = true;
      }
    }
    if (!done && running == 0) {  // ended without a message: should not happen
      code = CURLE_GOT_NOTHING;
      break;
    }
    if (!done) curl_multi_poll(h.multi.get(), nullptr, 0, kPollMs, nullptr);
  }
  CURL* curl = h.curl.get();
  curl_multi_remove_handle(h.multi.get(), curl);
  h.attached = false;
  // Nothing the handle points to may outlive this request.
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, nullptr);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, nullptr);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, nullptr);
  h.headers.reset();
  h.body.clear();

  HttpResponse response = std::move(h.response);
  response.transport_error = classify(code);
  if (code != CURLE_OK) {
    response.error = h.error_buffer[0] ? h.error_buffer : curl_easy_strerror(code);
    return response;
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

}  // namespace streamtally::upload
