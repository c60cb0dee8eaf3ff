#include "core/decode_guard.h"

namespace quire {
namespace {

int GuardGenerate(VipsRegion* out, void* seq, void* /*a*/, void* b, gboolean* /*stop*/) {
  auto* in = static_cast<VipsRegion*>(seq);
  auto* guard = static_cast<DecodeGuard*>(b);
  VipsRect* r = &out->valid;
  if (!guard->failed.load()) {
    if (vips_region_prepare(in, r) == 0) return vips_region_region(out, in, r, r->left, r->top);
    if (!guard->failed.exchange(true)) {
      std::lock_guard<std::mutex> lock(guard->mu);
      char* text = vips_error_buffer_copy();  // thread-safe; clears the buffer
      std::string line = text ? text : "";
      g_free(text);
      if (size_t nl = line.find('\n'); nl != std::string::npos) line.resize(nl);
      guard->message = line.empty() ? "unknown libvips error" : line;
    }
  }
  vips_region_black(out);
  return 0;
}

}  // namespace

vips::VImage Guarded(const vips::VImage& in, DecodeGuard** guard_out) {
  VipsImage* out = vips_image_new();
  auto* guard = new DecodeGuard;
  g_object_set_data_full(G_OBJECT(out), "quire-decode-guard", guard,
                         [](gpointer p) { delete static_cast<DecodeGuard*>(p); });
  VipsImage* src = in.get_image();
  g_object_ref(src);
  vips_object_local(out, src);  // the guard keeps its input alive
  if (vips_image_pipelinev(out, VIPS_DEMAND_STYLE_THINSTRIP, src, nullptr) != 0 ||
      vips_image_generate(out, vips_start_one, GuardGenerate, vips_stop_one, src, guard) != 0) {
    g_object_unref(out);
    throw vips::VError();
  }
  *guard_out = guard;
  return vips::VImage(out);
}

}  // namespace quire
