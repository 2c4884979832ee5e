#include "http_listener.hpp"

#include <utility>

GST_DEBUG_CATEGORY_EXTERN(gst_streamtally_httpsink_debug);
#define GST_CAT_DEFAULT gst_streamtally_httpsink_debug

namespace streamtally::gst {

struct HttpListener::Pending {
  HttpListener* owner = nullptr;
  GObjectPtr<GSocketConnection> connection;
  std::string received;
  GSourcePtr read_source;
  GSourcePtr timeout_source;
};

bool send_response_head(GSocket* socket, std::string_view bytes) {
  GError* raw_error = nullptr;
  gssize sent = g_socket_send_with_blocking(socket, bytes.data(), bytes.size(), FALSE, nullptr,
                                            &raw_error);
  GErrorPtr error(raw_error);
  // A fresh socket's send buffer takes a response head whole; anything less means
  // the peer is gone or hostile.
  return sent == static_cast<gssize>(bytes.size());
}

std::string simple_response(int status, std::string_view reason, std::string_view extra_headers) {
  std::string body = std::to_string(status) + " " + std::string(reason) + "\n";
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  out += "Content-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  out += extra_headers;
  out += "Connection: close\r\n\r\n";
  out += body;
  return out;
}

HttpListener::HttpListener(HttpListenerOptions options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {}

std::unique_ptr<HttpListener> HttpListener::start(HttpListenerOptions options, Handler handler,
                                                  std::string& error) {
  std::unique_ptr<HttpListener> self(new HttpListener(std::move(options), std::move(handler)));
  self->context_ = g_main_context_new();
  self->loop_ = g_main_loop_new(self->context_, FALSE);
  std::promise<void> ready;
  std::future<void> started = ready.get_future();
  std::string bind_error;
  HttpListener* raw = self.get();
  self->thread_ = std::thread([raw, &bind_error, &ready] { raw->run(bind_error, &ready); });
  started.wait();  // run() binds before it signals, so bind errors come back here
  if (!bind_error.empty()) {
    error = bind_error;
    return nullptr;  // the destructor joins the (already finished) thread
  }
  return self;
}

// The listener thread: binds in its own main context (so GSocketService's accept
// sources live there), reports the outcome, then serves until stopped.
void HttpListener::run(std::string& error, std::promise<void>* ready) {
  g_main_context_push_thread_default(context_);
  service_.reset(g_socket_service_new());
  GInetAddress* inet = g_inet_address_new_from_string(options_.address.c_str());
  if (!inet) {
    error = "address '" + options_.address + "' is not an IP address";
  } else {
    GObjectPtr<GSocketAddress> address(g_inet_socket_address_new(inet, options_.port));
    g_object_unref(inet);
    GSocketAddress* effective = nullptr;
    GError* raw_error = nullptr;
    if (!g_socket_listener_add_address(G_SOCKET_LISTENER(service_.get()), address.get(),
                                       G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, nullptr,
                                       &effective, &raw_error)) {
      GErrorPtr e(raw_error);
      error = "cannot listen on " + options_.address + ":" + std::to_string(options_.port) + ": " +
              e->message;
    } else {
      GObjectPtr<GSocketAddress> bound(effective);
      port_ = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound.get()));
      g_signal_connect(service_.get(), "incoming", G_CALLBACK(&HttpListener::on_incoming), this);
      g_socket_service_start(service_.get());
    }
  }
  const bool ok = error.empty();
  ready->set_value();  // `error` and `ready` belong to start(), which returns after this
  if (ok) g_main_loop_run(loop_);

  // Stopping: no new connections, drop the requests still being read.
  g_socket_service_stop(service_.get());
  g_socket_listener_close(G_SOCKET_LISTENER(service_.get()));
  pending_.clear();
  service_.reset();
  // Run what the service left queued (its cancelled accept) before leaving.
  while (g_main_context_iteration(context_, FALSE)) {
  }
  g_main_context_pop_thread_default(context_);
}

HttpListener::~HttpListener() {
  if (thread_.joinable()) {
    g_main_context_invoke(
        context_,
        [](gpointer loop) -> gboolean {
          g_main_loop_quit(static_cast<GMainLoop*>(loop));
          return G_SOURCE_REMOVE;
        },
        loop_);
    thread_.join();
  }
  if (loop_) g_main_loop_unref(loop_);
  if (context_) g_main_context_unref(context_);
}

gboolean HttpListener::on_incoming(GSocketService*, GSocketConnection* connection, GObject*,
                                   gpointer self) {
  static_cast<HttpListener*>(self)->watch(connection);
  return TRUE;
}

void HttpListener::watch(GSocketConnection* connection) {
  if (pending_.size() >= kMaxPendingRequests) {
    // A flood of idle connections must not grow without bound: refuse at once.
    GST_INFO("%zu requests being read already: 503", pending_.size());
    send_response_head(g_socket_connection_get_socket(connection),
                       simple_response(503, "Service Unavailable", "Retry-After: 5\r\n"));
    return;  // the service drops its reference: the connection closes
  }
  auto pending = std::make_unique<Pending>();
  pending->owner = this;
  pending->connection.reset(G_SOCKET_CONNECTION(g_object_ref(connection)));
  GSocket* socket = g_socket_connection_get_socket(connection);
  pending->read_source.reset(
      g_socket_create_source(socket, static_cast<GIOCondition>(G_IO_IN | G_IO_HUP | G_IO_ERR), nullptr));
  g_source_set_callback(pending->read_source.get(), G_SOURCE_FUNC(&HttpListener::on_readable),
                        pending.get(), nullptr);
  g_source_attach(pending->read_source.get(), context_);
  pending->timeout_source.reset(g_timeout_source_new(static_cast<guint>(options_.head_timeout.count())));
  g_source_set_callback(pending->timeout_source.get(), &HttpListener::on_head_timeout, pending.get(),
                        nullptr);
  g_source_attach(pending->timeout_source.get(), context_);
  pending_.push_back(std::move(pending));
}

// Drops a pending connection (its sources, then the connection: closing the socket
// unless the handler took a reference).
void HttpListener::finish(Pending* pending) {
  pending_.remove_if([pending](const std::unique_ptr<Pending>& p) { return p.get() == pending; });
}

gboolean HttpListener::on_head_timeout(gpointer data) {
  auto* pending = static_cast<Pending*>(data);
  GST_INFO("request head not complete in time: 408");
  send_response_head(g_socket_connection_get_socket(pending->connection.get()),
                     simple_response(408, "Request Timeout"));
  pending->owner->finish(pending);  // destroys this source too: removal below is moot
  return G_SOURCE_REMOVE;
}

gboolean HttpListener::on_readable(GSocket* socket, GIOCondition, gpointer data) {
  auto* pending = static_cast<Pending*>(data);
  HttpListener* self = pending->owner;
  char buffer[4096];
  GError* raw_error = nullptr;
  gssize n = g_socket_receive_with_blocking(socket, buffer, sizeof buffer, FALSE, nullptr, &raw_error);
  GErrorPtr error(raw_error);
  if (n < 0 && g_error_matches(error.get(), G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) return G_SOURCE_CONTINUE;
  if (n <= 0) {  // the client left before finishing its request
    self->finish(pending);
    return G_SOURCE_REMOVE;
  }
  pending->received.append(buffer, static_cast<std::size_t>(n));
  ParseOutcome outcome = parse_http_request(pending->received, self->options_.max_head_bytes);
  switch (outcome.status) {
    case ParseStatus::Incomplete:
      return G_SOURCE_CONTINUE;
    case ParseStatus::TooLarge:
      GST_INFO("request head larger than %zu bytes: 431", self->options_.max_head_bytes);
      send_response_head(socket, simple_response(431, "Request Header Fields Too Large"));
      break;
    case ParseStatus::Malformed:
      GST_INFO("malformed request (%s): 400", outcome.error.c_str());
      send_response_head(socket, simple_response(400, "Bad Request"));
      break;
    case ParseStatus::Complete:
      // The sources stop here; the handler answers and may keep the connection.
      pending->timeout_source.reset();
      self->handler_(pending->connection.get(), outcome.request);
      break;
  }
  self->finish(pending);
  return G_SOURCE_REMOVE;
}

}  // namespace streamtally::gst
