// gst_bench: per-buffer cost of the `streamtally` element against a minimal
// pass-through element, measured in the same run, interleaved.
//
// Buffers are pushed from a bare source pad, through the element, into a bare sink
// pad that drops them, on one thread — no source or sink element, no queue — so what
// is timed is the element itself (a whole fakesrc ! X ! fakesink pipeline costs
// ~1 us a buffer and moves by hundreds of ns between runs on a shared box, far more
// than the element). The same buffer goes round, one reference each time. Variants:
//   direct       source pad linked to the sink pad (the cost of a push)
//   benchpass    defined here: the least a pass-through can be, a chain function that
//                only pushes (and a chain_list that only pushes the list)
//   identity     gst-plugins' identity (a GstBaseTransform doing nothing)
//   streamtally  with a spool, its session open
// then the same with lists of 32 buffers (benchpass and streamtally).
// Each variant runs `rounds` times interleaved; the median per-buffer time counts, and
// for the comparison the median of the per-round differences.
// Aim: streamtally within +15 ns of benchpass, and lists without per-buffer work.
//
//   gst_bench [buffers=2000000] [rounds=9]
#include <gst/gst.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <memory>
#include <vector>

#include "elements.h"

namespace {

// ---- benchpass: the minimal pass-through element --------------------------------

struct BenchPass {
  GstElement parent;
  GstPad* sinkpad;
  GstPad* srcpad;
  guint list_size;       // > 0: group buffers into lists of this many
  GstBufferList* group;  // the list being filled
};
struct BenchPassClass {
  GstElementClass parent_class;
};

G_DEFINE_TYPE(BenchPass, bench_pass, GST_TYPE_ELEMENT)

enum { PROP_0, PROP_LIST_SIZE };

GstStaticPadTemplate bench_sink = GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);
GstStaticPadTemplate bench_src = GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

GstFlowReturn bench_pass_chain(GstPad*, GstObject* parent, GstBuffer* buffer) {
  auto* self = reinterpret_cast<BenchPass*>(parent);
  if (self->list_size == 0) return gst_pad_push(self->srcpad, buffer);
  if (!self->group) self->group = gst_buffer_list_new_sized(self->list_size);
  gst_buffer_list_add(self->group, buffer);
  if (gst_buffer_list_length(self->group) < self->list_size) return GST_FLOW_OK;
  GstBufferList* full = self->group;
  self->group = nullptr;
  return gst_pad_push_list(self->srcpad, full);
}

GstFlowReturn bench_pass_chain_list(GstPad*, GstObject* parent, GstBufferList* list) {
  return gst_pad_push_list(reinterpret_cast<BenchPass*>(parent)->srcpad, list);
}

gboolean bench_pass_sink_event(GstPad* pad, GstObject* parent, GstEvent* event) {
  auto* self = reinterpret_cast<BenchPass*>(parent);
  if (GST_EVENT_TYPE(event) == GST_EVENT_EOS && self->group) {  // the last partial list
    GstBufferList* rest = self->group;
    self->group = nullptr;
    gst_pad_push_list(self->srcpad, rest);
  }
  return gst_pad_event_default(pad, parent, event);
}

void bench_pass_set_property(GObject* object, guint id, const GValue* value, GParamSpec* pspec) {
  if (id == PROP_LIST_SIZE)
    reinterpret_cast<BenchPass*>(object)->list_size = g_value_get_uint(value);
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
}

void bench_pass_get_property(GObject* object, guint id, GValue* value, GParamSpec* pspec) {
  if (id == PROP_LIST_SIZE)
    g_value_set_uint(value, reinterpret_cast<BenchPass*>(object)->list_size);
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
}

void bench_pass_finalize(GObject* object) {
  auto* self = reinterpret_cast<BenchPass*>(object);
  if (self->group) gst_buffer_list_unref(self->group);
  G_OBJECT_CLASS(bench_pass_parent_class)->finalize(object);
}

void bench_pass_class_init(BenchPassClass* klass) {
  GObjectClass* object_class = G_OBJECT_CLASS(klass);
  object_class->set_property = bench_pass_set_property;
  object_class->get_property = bench_pass_get_property;
  object_class->finalize = bench_pass_finalize;
  g_object_class_install_property(
      object_class, PROP_LIST_SIZE,
      g_param_spec_uint("list-size", "List size", "Group buffers into lists of this many (0: pass buffers on)", 0,
                        4096, 0, static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS)));
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  gst_element_class_add_static_pad_template(element_class, &bench_sink);
  gst_element_class_add_static_pad_template(element_class, &bench_src);
  gst_element_class_set_static_metadata(element_class, "Minimal pass-through", "Generic",
                                        "A chain function that only pushes (gst_bench's baseline)", "StreamTally");
}

void bench_pass_init(BenchPass* self) {
  self->sinkpad = gst_pad_new_from_static_template(&bench_sink, "sink");
  gst_pad_set_chain_function(self->sinkpad, bench_pass_chain);
  gst_pad_set_chain_list_function(self->sinkpad, bench_pass_chain_list);
  gst_pad_set_event_function(self->sinkpad, bench_pass_sink_event);
  GST_PAD_SET_PROXY_CAPS(self->sinkpad);
  GST_PAD_SET_PROXY_ALLOCATION(self->sinkpad);
  gst_element_add_pad(GST_ELEMENT(self), self->sinkpad);
  self->srcpad = gst_pad_new_from_static_template(&bench_src, "src");
  GST_PAD_SET_PROXY_CAPS(self->srcpad);
  gst_element_add_pad(GST_ELEMENT(self), self->srcpad);
}

// ---- the measurement ----------------------------------------------------------------

GstFlowReturn drop_chain(GstPad*, GstObject*, GstBuffer* buffer) {
  gst_buffer_unref(buffer);
  return GST_FLOW_OK;
}
GstFlowReturn drop_chain_list(GstPad*, GstObject*, GstBufferList* list) {
  gst_buffer_list_unref(list);
  return GST_FLOW_OK;
}

// A source pad -> [element] -> sink pad, streaming (stream-start, caps, segment sent).
class Rig {
 public:
  // factory nullptr: the source pad is linked straight to the sink pad.
  Rig(const char* factory, const std::string& spool) {
    src_ = gst_pad_new("src", GST_PAD_SRC);
    sink_ = gst_pad_new("sink", GST_PAD_SINK);
    gst_pad_set_chain_function(sink_, drop_chain);
    gst_pad_set_chain_list_function(sink_, drop_chain_list);
    gst_pad_set_active(src_, TRUE);
    gst_pad_set_active(sink_, TRUE);
    if (factory) {
      element_ = gst_element_factory_make(factory, nullptr);
      if (!element_) {
        std::fprintf(stderr, "gst_bench: no element %s\n", factory);
        std::exit(1);
      }
      if (std::string(factory) == "streamtally") g_object_set(element_, "spool", spool.c_str(), "stream", "bench", nullptr);
      GstPad* in = gst_element_get_static_pad(element_, "sink");
      GstPad* out = gst_element_get_static_pad(element_, "src");
      gst_pad_link(src_, in);
      gst_pad_link(out, sink_);
      gst_object_unref(in);
      gst_object_unref(out);
      gst_element_set_state(element_, GST_STATE_PLAYING);
    } else {
      gst_pad_link(src_, sink_);
    }
    gst_pad_push_event(src_, gst_event_new_stream_start("gst_bench"));
    GstCaps* caps = gst_caps_new_empty_simple("application/x-gst-bench");
    gst_pad_push_event(src_, gst_event_new_caps(caps));
    gst_caps_unref(caps);
    GstSegment segment;
    gst_segment_init(&segment, GST_FORMAT_BYTES);
    gst_pad_push_event(src_, gst_event_new_segment(&segment));
  }
  ~Rig() {
    if (element_) {
      gst_element_set_state(element_, GST_STATE_NULL);
      gst_object_unref(element_);
    }
    gst_object_unref(src_);
    gst_object_unref(sink_);
  }
  // ns per buffer for `count` buffers, pushed one by one or in lists of list_size.
  double push(GstBuffer* buffer, long count, guint list_size) {
    GstBufferList* list = nullptr;
    if (list_size) {
      list = gst_buffer_list_new_sized(list_size);
      for (guint i = 0; i < list_size; ++i) gst_buffer_list_add(list, gst_buffer_ref(buffer));
    }
    const auto start = std::chrono::steady_clock::now();
    if (list) {
      for (long i = 0; i < count / list_size; ++i) gst_pad_push_list(src_, gst_buffer_list_ref(list));
    } else {
      for (long i = 0; i < count; ++i) gst_pad_push(src_, gst_buffer_ref(buffer));
    }
    const auto end = std::chrono::steady_clock::now();
    if (list) gst_buffer_list_unref(list);
    return std::chrono::duration<double, std::nano>(end - start).count() / static_cast<double>(count);
  }

 private:
  GstElement* element_ = nullptr;
  GstPad* src_ = nullptr;
  GstPad* sink_ = nullptr;
};

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
  gst_element_register(nullptr, "benchpass", GST_RANK_NONE, bench_pass_get_type());
  const long buffers = argc > 1 ? std::atol(argv[1]) : 2000000;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 9;
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("gst_bench." + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string spool = (dir / "spool.db").string();

  struct Variant {
    const char* name;
    const char* factory;
    guint list_size;
    std::vector<double> ns;
  };
  std::vector<Variant> variants = {
      {"direct (pad to pad)", nullptr, 0, {}},    {"benchpass", "benchpass", 0, {}},
      {"identity", "identity", 0, {}},            {"streamtally", "streamtally", 0, {}},
      {"lists of 32: benchpass", "benchpass", 32, {}}, {"lists of 32: streamtally", "streamtally", 32, {}},
  };
  GstBuffer* buffer = gst_buffer_new_allocate(nullptr, 1316, nullptr);
  {
    std::vector<std::unique_ptr<Rig>> rigs;
    for (const Variant& v : variants) rigs.push_back(std::make_unique<Rig>(v.factory, spool));
    for (auto& rig : rigs) rig->push(buffer, buffers / 10, 0);  // warm up; streamtally opens its session
    for (int round = 0; round < rounds; ++round)
      for (std::size_t i = 0; i < variants.size(); ++i)
        variants[i].ns.push_back(rigs[i]->push(buffer, buffers, variants[i].list_size));
  }
  gst_buffer_unref(buffer);

  std::printf("gst_bench: %ld buffers of 1316 bytes per round, median of %d interleaved rounds\n", buffers, rounds);
  const double direct = median(variants[0].ns);
  for (const Variant& v : variants)
    std::printf("  %-28s %7.1f ns/buffer (%+.1f ns over a bare push)\n", v.name, median(v.ns), median(v.ns) - direct);
  // Differences within a round first: the box's speed moves between rounds more than
  // the element costs.
  auto above = [&](std::size_t a, std::size_t b) {
    std::vector<double> d;
    for (int r = 0; r < rounds; ++r) d.push_back(variants[a].ns[r] - variants[b].ns[r]);
    return median(d);
  };
  const double tally = median(variants[3].ns);
  std::printf("  streamtally above benchpass (median of the rounds' differences): %+.1f ns/buffer (aim <= +15); "
              "with lists %+.2f ns/buffer\n",
              above(3, 1), above(5, 4));
  std::printf("  streamtally against identity (cost over a bare push): %.3f\n",
              (tally - direct) / std::max(median(variants[2].ns) - direct, 1e-9));
  std::filesystem::remove_all(dir);
  return 0;
}
