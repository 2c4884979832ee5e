// HttpListener: accepts HTTP connections on its own thread (a GSocketService in a
// private GMainContext), reads each request head with a size and a time bound
// (slowloris), answers malformed / too large / too slow requests itself (400 / 431
// / 408) and hands every well-formed request to the handler, which answers it and
// may keep the connection (streamtallyhttpsink gives it to multisocketsink).
//
// Thread-safety: start/stop from one thread; the handler and timers attached to
// context() run on the listener thread. stop() (and the destructor) joins it.
#pragma once

#include <gio/gio.h>

#include <chrono>
#include <functional>
#include <future>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "gobject_ptr.hpp"
#include "http_request.hpp"

namespace streamtally::gst {

struct HttpListenerOptions {
  std::string address = "127.0.0.1";
  int port = 8080;  // 0: any free port (see HttpListener::port())
  std::size_t max_head_bytes = 8192;
  std::chrono::milliseconds head_timeout{10000};
};

// Writes a complete small response (status line, headers, optional body) on a
// connection that has not been handed over; best effort, never blocks.
bool send_response_head(GSocket* socket, std::string_view bytes);
std::string simple_response(int status, std::string_view reason, std::string_view extra_headers = "");

class HttpListener {
 public:
  // Called on the listener thread for every complete request. `connection` is
  // borrowed: ref it to keep the connection beyond the call.
  using Handler = std::function<void(GSocketConnection* connection, const HttpRequest& request)>;

  // Binds and starts the thread; on failure returns nullptr and sets `error`.
  static std::unique_ptr<HttpListener> start(HttpListenerOptions options, Handler handler,
                                             std::string& error);
  ~HttpListener();
  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;

  int port() const { return port_; }
  // Connections whose request head is still being read, at most; more get 503.
  static constexpr std::size_t kMaxPendingRequests = 1024;
  // The listener thread's main context, e.g. for periodic timers of the owner.
  GMainContext* context() const { return context_; }

  struct Pending;  // a connection whose request head is still being read

 private:
  HttpListener(HttpListenerOptions options, Handler handler);
  void run(std::string& error, std::promise<void>* ready);
  static gboolean on_incoming(GSocketService*, GSocketConnection*, GObject*, gpointer self);
  void watch(GSocketConnection* connection);
  void finish(Pending* pending);
  static gboolean on_readable(GSocket*, GIOCondition, gpointer pending);
  static gboolean on_head_timeout(gpointer pending);

  HttpListenerOptions options_;
  Handler handler_;
  GMainContext* context_ = nullptr;
  GMainLoop* loop_ = nullptr;
  GObjectPtr<GSocketService> service_;
  std::list<std::unique_ptr<Pending>> pending_;  // listener thread only
  std::thread thread_;
  int port_ = 0;
};

}  // namespace streamtally::gst
