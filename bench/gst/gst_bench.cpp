// gst_bench: per-buffer cost of the `streamtally` element, measured against its
// baselines in the same run:
//   fakesrc num-buffers=N sizetype=fixed sizemax=1316 ! fakesink               (nothing)
//   fakesrc ... ! identity ! fakesink                                           (identity)
//   fakesrc ... ! streamtally spool=... ! fakesink                              (streamtally)
// Each variant runs `rounds` times interleaved; the median per-buffer time counts.
// Prints ns/buffer of each, the element's own cost (minus nothing) and the ratio
// streamtally/identity of the pipelines (aim: <= 1.0).
//
//   gst_bench [buffers=2000000] [rounds=5]
#include <gst/gst.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "elements.h"

namespace {

double run_once(const std::string& description, long buffers) {
  GError* error = nullptr;
  GstElement* pipeline = gst_parse_launch(description.c_str(), &error);
  if (!pipeline) {
    std::fprintf(stderr, "gst_bench: %s\n", error ? error->message : "parse failed");
    std::exit(1);
  }
  GstBus* bus = gst_element_get_bus(pipeline);
  // Preroll first so setup (spool open, caps) is outside the measurement.
  gst_element_set_state(pipeline, GST_STATE_PAUSED);
  gst_element_get_state(pipeline, nullptr, nullptr, GST_CLOCK_TIME_NONE);
  auto start = std::chrono::steady_clock::now();
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  GstMessage* msg = gst_bus_timed_pop_filtered(bus, 120 * GST_SECOND,
                                               static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  auto end = std::chrono::steady_clock::now();
  if (!msg || GST_MESSAGE_TYPE(msg) != GST_MESSAGE_EOS) {
    std::fprintf(stderr, "gst_bench: %s did not reach EOS\n", description.c_str());
    std::exit(1);
  }
  gst_message_unref(msg);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(pipeline);
  return std::chrono::duration<double, std::nano>(end - start).count() / static_cast<double>(buffers);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  gst_plugin_register_static(GST_VERSION_MAJOR, GST_VERSION_MINOR, "streamtally", "StreamTally (static)",
                             streamtally_gst_register_elements, "0.1.0", "unknown", "streamtally",
                             "StreamTally", "https://example.invalid");
  const long buffers = argc > 1 ? std::atol(argv[1]) : 2000000;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("gst_bench." + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string spool = (dir / "spool.db").string();

  const std::string src = "fakesrc num-buffers=" + std::to_string(buffers) + " sizetype=fixed sizemax=1316 ! ";
  const std::string sink = "fakesink sync=false";
  struct Variant {
    const char* name;
    std::string description;
    std::vector<double> ns;
  };
  std::vector<Variant> variants = {
      {"nothing", src + sink, {}},
      {"identity", src + "identity ! " + sink, {}},
      {"streamtally", src + "streamtally spool=" + spool + " stream=bench ! " + sink, {}},
  };
  for (int round = 0; round < rounds; ++round) {
    for (Variant& v : variants) v.ns.push_back(run_once(v.description, buffers));
  }
  const double nothing = median(variants[0].ns);
  const double identity = median(variants[1].ns);
  const double tally = median(variants[2].ns);
  std::printf("gst_bench: %ld buffers of 1316 bytes, median of %d rounds\n", buffers, rounds);
  std::printf("  fakesrc ! fakesink                 %8.1f ns/buffer (baseline)\n", nothing);
  std::printf("  fakesrc ! identity ! fakesink      %8.1f ns/buffer (element cost %+.1f ns)\n", identity,
              identity - nothing);
  std::printf("  fakesrc ! streamtally ! fakesink   %8.1f ns/buffer (element cost %+.1f ns)\n", tally,
              tally - nothing);
  std::printf("  ratio streamtally/identity (pipeline)      %.3f  (aim <= 1.0)\n", tally / identity);
  std::printf("  ratio streamtally/identity (element cost)  %.3f\n",
              (tally - nothing) / std::max(identity - nothing, 1e-9));
  std::filesystem::remove_all(dir);
  return 0;
}
