// streamtally-collector: see docs/collector.md.
#include <signal.h>

#include <cstdio>
#include <thread>

#include "collector_config.hpp"
#include "http_server.hpp"
#include "store.hpp"
#include "streamtally/log.hpp"

#ifdef STREAMTALLY_HAVE_ENRICH
#include "streamtally/collector/enrichment.hpp"
#endif

using namespace streamtally;
using namespace streamtally::collector;

int main(int argc, char** argv) {
  int exit_code = 0;
  std::string message;
  auto config = parse_command_line(argc, argv, exit_code, message);
  if (!config) {
    std::fprintf(exit_code == 0 ? stdout : stderr, "%s\n", message.c_str());
    return exit_code;
  }
  if (config->ingest_tokens.empty())
    log(LogLevel::Warn, "collector: no --ingest-token given: every POST /v1/batches will be refused (401)");

  // SIGTERM/SIGINT are taken by one thread with sigwait, blocked everywhere else
  // (set before any thread starts, so every thread inherits the mask).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  EnrichFn enrich;
#ifdef STREAMTALLY_HAVE_ENRICH
  auto enricher = Enricher::open(config->geoip, config->uap);
  if (!enricher) {
    std::fprintf(stderr, "streamtally-collector: enrichment: %s\n", enricher.error().c_str());
    return 1;
  }
  enrich = [e = enricher->get()](IngestRecord& r) {
    Enrichment found = e->enrich(r.record.client_ip, r.record.user_agent);
    r.country = std::move(found.country);
    r.device_type = std::move(found.device_type);
    r.os = std::move(found.os);
    r.browser = std::move(found.browser);
  };
#else
  if (!config->geoip.empty() || !config->uap.empty())
    log(LogLevel::Warn, "collector: built without enrichment: --geoip/--uap ignored");
#endif

  // The store derives the fields of records it reads back from its inbox as ingest does.
  StoreOptions store_options = config->store_options;
  store_options.enrich = enrich;
  auto store = open_store(config->store, store_options);
  if (!store) {
    std::fprintf(stderr, "streamtally-collector: --store: %s\n", store.error().c_str());
    return 1;
  }
  CollectorServer server(*config, **store, enrich);
  if (Status s = server.bind(); !s) {
    std::fprintf(stderr, "streamtally-collector: %s\n", s.error().c_str());
    return 1;
  }
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    log(LogLevel::Info, "collector: stopping (signal " + std::to_string(sig) + "), finishing in-flight requests");
    server.stop();
  });
  log(LogLevel::Info, "collector: listening on " + config->listen + ", store " + config->store);
  server.run();
  // run() also returns when the listener fails; wake the signal thread either way.
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  log(LogLevel::Info, "collector: stopped");
  return 0;
}
