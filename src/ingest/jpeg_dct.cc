#include "ingest/jpeg_dct.h"

// jpeglib.h needs size_t and FILE declared before it.
#include <fcntl.h>
#include <jpeglib.h>
#include <tiffio.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#ifdef __SSE2__
#include <emmintrin.h>
#include <xmmintrin.h>
#endif
#include <atomic>
#include <cmath>
#include <csetjmp>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "blob/free_space.h"
#include "blob/scratch_space.h"

namespace quire {
namespace {

// --- the process-wide coefficient budget ---

std::atomic<int64_t> g_coefficients_held{0};

class BudgetHold {
 public:
  BudgetHold() = default;
  BudgetHold(const BudgetHold&) = delete;
  BudgetHold& operator=(const BudgetHold&) = delete;
  ~BudgetHold() {
    if (bytes_ > 0) g_coefficients_held.fetch_sub(bytes_);
  }
  bool Take(int64_t bytes, int64_t budget) {
    int64_t held = g_coefficients_held.load();
    do {
      if (held + bytes > budget) return false;
    } while (!g_coefficients_held.compare_exchange_weak(held, held + bytes));
    bytes_ = bytes;
    return true;
  }

 private:
  int64_t bytes_ = 0;
};

// --- libjpeg with errors as return values: setjmp frames hold only trivial state ---

struct JpegErr {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  char warning[JMSG_LENGTH_MAX];
  bool warned;
};

[[noreturn]] void ErrorExit(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegErr*>(c->err);
  (*c->err->format_message)(c, e->message);
  std::longjmp(e->jump, 1);
}

// Warnings (corrupt data, a premature end filled with zeros) are kept: a stream libjpeg had to
// patch up goes to the pixel path, which judges it as it always has.
void EmitMessage(j_common_ptr c, int level) {
  auto* e = reinterpret_cast<JpegErr*>(c->err);
  if (level < 0 && !e->warned) {
    (*c->err->format_message)(c, e->warning);
    e->warned = true;
  }
}

void InitErr(JpegErr* e) {
  jpeg_std_error(&e->pub);
  e->pub.error_exit = ErrorExit;
  e->pub.emit_message = EmitMessage;
  e->message[0] = e->warning[0] = '\0';
  e->warned = false;
}

struct Source {
  Source() = default;
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;
  ~Source() {
    if (created) jpeg_destroy_decompress(&cinfo);
    if (file != nullptr) std::fclose(file);
  }
  jpeg_decompress_struct cinfo;
  JpegErr err;
  FILE* file = nullptr;
  bool created = false;
  jvirt_barray_ptr* coefficients = nullptr;  // whole-image mode
  struct Stream* stream = nullptr;           // streaming mode (see Stream)
};

bool ReadHeader(Source* s) {
  s->cinfo.err = &s->err.pub;
  InitErr(&s->err);
  s->created = true;  // jpeg_create_decompress zeroes the struct first: destroying is safe
  if (setjmp(s->err.jump)) return false;
  jpeg_create_decompress(&s->cinfo);
  jpeg_stdio_src(&s->cinfo, s->file);
  jpeg_read_header(&s->cinfo, TRUE);
  return true;
}

bool ReadCoefficients(Source* s) {
  if (setjmp(s->err.jump)) return false;
  s->coefficients = jpeg_read_coefficients(&s->cinfo);
  return s->coefficients != nullptr;
}

// Where the blocks of the oriented image come from.
struct Geometry {
  int tile = 256;
  int src_width = 0, src_height = 0;                       // stored
  int width = 0, height = 0;                               // oriented
  int across = 0, down = 0;                                // tiles
  bool transpose = false, flip_x = false, flip_y = false;  // of the source's x and y
  int components = 0;
  struct Component {
    int src_blocks_w = 0, src_blocks_h = 0;  // the coefficient array (whole MCUs)
    int exact_w = 0, exact_h = 0;            // blocks the image covers (flips mirror these)
    int tile_blocks_w = 0, tile_blocks_h = 0;
    int v_samp = 1;
  } comp[MAX_COMPONENTS];
};

struct Encoder {
  Encoder() = default;
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;
  ~Encoder() {
    if (created) jpeg_destroy_compress(&cinfo);
    std::free(out);
  }
  jpeg_compress_struct cinfo;
  JpegErr err;
  bool created = false;
  unsigned char* out = nullptr;  // the last stream written (malloc'd by jpeg_mem_dest)
  unsigned long size = 0;
  // The memory manager's own access_virt_barray (EncodeTile swaps in DirectAccess).
  JBLOCKARRAY(*library_access)
  (j_common_ptr, jvirt_barray_ptr, JDIMENSION, JDIMENSION, boolean) = nullptr;
};

// A tile's coefficients read in place from the streaming window: the encoder's virtual array
// is a view of the window's rows at the tile's first column (no copy).
struct DirectArray {
  JCOEF* base;
  size_t stride;  // JCOEFs per window row
  JBLOCKROW rows[4];
};

JBLOCKARRAY DirectAccess(j_common_ptr, jvirt_barray_ptr ptr, JDIMENSION start_row,
                         JDIMENSION num_rows, boolean) {
  auto* a = reinterpret_cast<DirectArray*>(ptr);
  for (JDIMENSION i = 0; i < num_rows && i < 4; ++i)
    a->rows[i] = reinterpret_cast<JBLOCKROW>(a->base + size_t(start_row + i) * a->stride);
  return a->rows;
}

bool CreateEncoder(Encoder* e) {
  e->cinfo.err = &e->err.pub;
  InitErr(&e->err);
  e->created = true;
  if (setjmp(e->err.jump)) return false;
  jpeg_create_compress(&e->cinfo);
  e->library_access = e->cinfo.mem->access_virt_barray;
  return true;
}

// The source's critical parameters on a tile² image; quantisation tables transposed with the
// coefficients when the orientation transposes. Call inside a setjmp frame.
void PrepareDestination(Source* s, Encoder* e, const Geometry& g) {
  j_compress_ptr d = &e->cinfo;
  jpeg_copy_critical_parameters(&s->cinfo, d);
  d->image_width = JDIMENSION(g.tile);
  d->image_height = JDIMENSION(g.tile);
  d->write_JFIF_header = FALSE;
  d->write_Adobe_marker = FALSE;
  d->optimize_coding = FALSE;
  d->restart_interval = 0;
  if (g.transpose) {
    for (JQUANT_TBL* q : d->quant_tbl_ptrs) {
      if (q == nullptr) continue;
      for (int v = 0; v < DCTSIZE; ++v)
        for (int u = v + 1; u < DCTSIZE; ++u)
          std::swap(q->quantval[v * 8 + u], q->quantval[u * 8 + v]);
    }
  }
}

// Resets the encoder's output stream.
void ResetOutput(Encoder* e) {
  std::free(e->out);
  e->out = nullptr;
  e->size = 0;
}

// SOI DQT DHT EOI: the JPEGTables every tile of page 0 shares.
bool WriteTables(Source* s, Encoder* e, const Geometry* g) {
  ResetOutput(e);
  if (setjmp(e->err.jump)) return false;
  PrepareDestination(s, e, *g);
  jpeg_mem_dest(&e->cinfo, &e->out, &e->size);
  jpeg_write_tables(&e->cinfo);
  return true;
}

// One coefficient block of the oriented image, from its source block: flips negate the odd
// frequencies along the flipped axis, a transpose swaps the frequencies.
inline void TransformBlock(const JCOEF* in, JCOEF* out, const Geometry& g) {
  if (!g.transpose) {
    if (!g.flip_x && !g.flip_y) {
      std::memcpy(out, in, sizeof(JBLOCK));
      return;
    }
    for (int v = 0; v < DCTSIZE; ++v)
      for (int u = 0; u < DCTSIZE; ++u) {
        bool negate = (g.flip_x && (u & 1)) != (g.flip_y && (v & 1));
        JCOEF c = in[v * 8 + u];
        out[v * 8 + u] = negate ? JCOEF(-c) : c;
      }
    return;
  }
  // out(x, y) = in(sx(y), sy(x)): the output's vertical frequency is the input's horizontal.
  for (int v = 0; v < DCTSIZE; ++v)
    for (int u = 0; u < DCTSIZE; ++u) {
      bool negate = (g.flip_x && (v & 1)) != (g.flip_y && (u & 1));
      JCOEF c = in[u * 8 + v];
      out[v * 8 + u] = negate ? JCOEF(-c) : c;
    }
}

// The volume's free space checked as the pyramid grows (every kSpaceCheckEvery bytes), so
// the writes stop while it is under the reserve instead of running into ENOSPC — as
// GuardedFileTarget does for libvips' writes.
constexpr int64_t kSpaceCheckEvery = 1 << 20;
struct SpaceCheck {
  std::string path;
  int64_t reserve = 0;
  int64_t unchecked = 0;
  Status Wrote(int64_t bytes) {
    unchecked += bytes;
    if (reserve <= 0 || unchecked < kSpaceCheckEvery) return Status::Ok();
    unchecked = 0;
    return CheckFreeSpace(FreeBytes(path), reserve);
  }
};

// Streaming mode, for a single-scan (baseline) source whose tiles need no rows from below:
// the decoder's whole-image coefficient arrays are replaced (through the memory manager's
// virtual-array hooks) by a window of one tile row per component. libjpeg asks for each iMCU
// row in turn; the first request past the window's tile row means that row is complete, so
// its tiles are cut and written there and the window is cleared for the next one. Memory is
// then one tile row of coefficients, not the image's; nothing is read twice.
struct Stream {
  Source* src = nullptr;
  Encoder* enc = nullptr;
  const Geometry* g = nullptr;
  TIFF* tif = nullptr;
  int row = 0;             // the tile row the window holds
  bool io_failed = false;  // a tile could not be written (the decode was stopped)
  int io_errno = 0;
  SpaceCheck* space = nullptr;
  Status no_room;  // the volume went under the reserve (the decode was stopped)
  bool encode_failed = false;
  int requested = 0;
  HalfImage* half = nullptr;  // level 1, filled row by row when made here
  std::vector<unsigned char> planes;
  struct Window {
    std::vector<JCOEF> blocks;  // tile_blocks_h rows of src_blocks_w blocks
    std::vector<JBLOCKROW> rows;
  } window[MAX_COMPONENTS];
  jpeg_memory_mgr library;  // the hooks replaced
};

inline const JCOEF* StreamBlock(Stream* st, int c, int px, int py) {
  const Geometry::Component& k = st->g->comp[c];
  const int local = py - st->row * k.tile_blocks_h;
  if (local < 0 || local >= k.tile_blocks_h) return nullptr;
  return st->window[c].blocks.data() +
         (size_t(local) * size_t(k.src_blocks_w) + size_t(px)) * DCTSIZE2;
}

bool EncodeTile(Source* s, Encoder* e, const Geometry* g, int col, int row);
void HalfRows(Source* s, const Geometry& g, int tile_row, HalfImage* half,
              std::vector<unsigned char>* planes);

// Cuts and writes the tiles of the window's tile row. False when one failed (flagged).
bool EmitTileRow(Stream* st) {
  for (int col = 0; col < st->g->across; ++col) {
    if (!EncodeTile(st->src, st->enc, st->g, col, st->row)) {
      st->encode_failed = true;
      return false;
    }
    const uint32_t index = uint32_t(st->row) * uint32_t(st->g->across) + uint32_t(col);
    errno = 0;
    if (TIFFWriteRawTile(st->tif, index, st->enc->out, tmsize_t(st->enc->size)) !=
        tmsize_t(st->enc->size)) {
      st->io_failed = true;
      st->io_errno = errno;
      return false;
    }
    if (Status room = st->space->Wrote(int64_t(st->enc->size)); !room.ok()) {
      st->no_room = room;
      return false;
    }
  }
  return true;
}

[[noreturn]] void StopDecode(Stream* st, const char* why) {
  JpegErr* e = &st->src->err;
  std::snprintf(e->message, sizeof e->message, "%s", why);
  std::longjmp(e->jump, 1);
}

jvirt_barray_ptr StreamRequest(j_common_ptr cinfo, int, boolean, JDIMENSION blocksperrow,
                               JDIMENSION, JDIMENSION) {
  auto* st = static_cast<Stream*>(cinfo->client_data);
  const int c = st->requested++;
  if (c >= st->g->components || int(blocksperrow) != st->g->comp[c].src_blocks_w)
    StopDecode(st, "unexpected coefficient arrays");
  return reinterpret_cast<jvirt_barray_ptr>(&st->window[c]);
}

void StreamRealize(j_common_ptr cinfo) {
  auto* st = static_cast<Stream*>(cinfo->client_data);
  (*st->library.realize_virt_arrays)(cinfo);
  for (int c = 0; c < st->g->components; ++c) {
    const Geometry::Component& k = st->g->comp[c];
    Stream::Window& w = st->window[c];
    w.blocks.assign(size_t(k.tile_blocks_h) * size_t(k.src_blocks_w) * DCTSIZE2, 0);
    w.rows.resize(size_t(k.v_samp) * 2);
  }
}

JBLOCKARRAY StreamAccess(j_common_ptr cinfo, jvirt_barray_ptr ptr, JDIMENSION start_row,
                         JDIMENSION num_rows, boolean) {
  auto* st = static_cast<Stream*>(cinfo->client_data);
  const int c = int(reinterpret_cast<Stream::Window*>(ptr) - st->window);
  if (c < 0 || c >= st->g->components) StopDecode(st, "unexpected coefficient access");
  const Geometry::Component& k = st->g->comp[c];
  const int tile_row = int(start_row) / k.tile_blocks_h;
  if (tile_row == st->row + 1) {
    if (!EmitTileRow(st)) StopDecode(st, "a tile could not be written");
    if (st->half != nullptr) HalfRows(st->src, *st->g, st->row, st->half, &st->planes);
    for (int i = 0; i < st->g->components; ++i) {
      Stream::Window& w = st->window[i];
      std::fill(w.blocks.begin(), w.blocks.end(), JCOEF{0});
    }
    st->row = tile_row;
  } else if (tile_row != st->row) {
    StopDecode(st, "coefficient rows out of order");
  }
  Stream::Window& w = st->window[c];
  const int local = int(start_row) - tile_row * k.tile_blocks_h;
  if (num_rows > w.rows.size() || local + int(num_rows) > k.tile_blocks_h)
    StopDecode(st, "coefficient access across tile rows");
  for (JDIMENSION i = 0; i < num_rows; ++i)
    w.rows[i] = reinterpret_cast<JBLOCKROW>(
        w.blocks.data() + size_t(local + int(i)) * size_t(k.src_blocks_w) * DCTSIZE2);
  return w.rows.data();
}

void InstallStream(Source* s, Stream* st) {
  st->library = *s->cinfo.mem;
  s->cinfo.client_data = st;
  s->cinfo.mem->request_virt_barray = StreamRequest;
  s->cinfo.mem->realize_virt_arrays = StreamRealize;
  s->cinfo.mem->access_virt_barray = StreamAccess;
  s->stream = st;
}

// The stored block (px, py) of component c (within the coefficient array).
const JCOEF* RawBlock(Source* s, int c, int px, int py) {
  if (s->stream != nullptr) return StreamBlock(s->stream, c, px, py);
  JBLOCKARRAY rows = (*s->cinfo.mem->access_virt_barray)(
      reinterpret_cast<j_common_ptr>(&s->cinfo), s->coefficients[c], JDIMENSION(py), 1, FALSE);
  return rows[0][px];
}

// The source block of component c under the oriented block (ox, oy), or null beyond the
// source (padding of the edge tiles).
inline const JCOEF* SourceBlock(Source* s, const Geometry& g, int c, int ox, int oy) {
  const Geometry::Component& k = g.comp[c];
  int px = g.transpose ? oy : ox;
  int py = g.transpose ? ox : oy;
  if (g.flip_x) px = k.exact_w - 1 - px;
  if (g.flip_y) py = k.exact_h - 1 - py;
  if (px < 0 || py < 0 || px >= k.src_blocks_w || py >= k.src_blocks_h) return nullptr;
  return RawBlock(s, c, px, py);
}

// Tile (col, row) of the oriented image as an abbreviated JPEG stream (no tables) in e->out.
bool EncodeTile(Source* s, Encoder* e, const Geometry* g, int col, int row) {
  ResetOutput(e);
  if (setjmp(e->err.jump)) return false;
  j_compress_ptr d = &e->cinfo;
  PrepareDestination(s, e, *g);
  jvirt_barray_ptr arrays[MAX_COMPONENTS];
  // Unturned tiles inside the window are encoded from it in place; the others (edge columns,
  // transforms, whole-image mode) from a copy.
  bool direct = s->stream != nullptr && !g->transpose && !g->flip_x && !g->flip_y;
  for (int c = 0; c < g->components && direct; ++c)
    direct = (col + 1) * g->comp[c].tile_blocks_w <= g->comp[c].src_blocks_w;
  d->mem->access_virt_barray = direct ? DirectAccess : e->library_access;
  DirectArray views[MAX_COMPONENTS];
  if (direct) {
    for (int c = 0; c < g->components; ++c) {
      const Geometry::Component& k = g->comp[c];
      views[c].base =
          s->stream->window[c].blocks.data() + size_t(col) * size_t(k.tile_blocks_w) * DCTSIZE2;
      views[c].stride = size_t(k.src_blocks_w) * DCTSIZE2;
      arrays[c] = reinterpret_cast<jvirt_barray_ptr>(&views[c]);
    }
  } else {
    for (int c = 0; c < g->components; ++c) {
      const Geometry::Component& k = g->comp[c];
      arrays[c] = (*d->mem->request_virt_barray)(reinterpret_cast<j_common_ptr>(d), JPOOL_IMAGE,
                                                 TRUE, JDIMENSION(k.tile_blocks_w),
                                                 JDIMENSION(k.tile_blocks_h), JDIMENSION(k.v_samp));
    }
    (*d->mem->realize_virt_arrays)(reinterpret_cast<j_common_ptr>(d));
    for (int c = 0; c < g->components; ++c) {
      const Geometry::Component& k = g->comp[c];
      for (int by = 0; by < k.tile_blocks_h; ++by) {
        JBLOCKROW out = (*d->mem->access_virt_barray)(reinterpret_cast<j_common_ptr>(d), arrays[c],
                                                      JDIMENSION(by), 1, TRUE)[0];
        const int oy = row * k.tile_blocks_h + by;
        for (int bx = 0; bx < k.tile_blocks_w; ++bx) {
          const JCOEF* in = SourceBlock(s, *g, c, col * k.tile_blocks_w + bx, oy);
          if (in != nullptr) TransformBlock(in, out[bx], *g);  // else pre-zeroed: flat grey
        }
      }
    }
  }
  jpeg_mem_dest(d, &e->out, &e->size);
  jpeg_write_coefficients(d, arrays);
  jpeg_suppress_tables(d, TRUE);  // the tables live once, in JPEGTables
  jpeg_finish_compress(d);
  return true;
}

// --- level 1 from the coefficients ---
//
// A full-resolution plane's block becomes its 4×4 level-1 pixels: the 4-point IDCT of its 4×4
// lowest frequencies, i.e. the block's band-limited reconstruction sampled at the centres of
// its pixel pairs (the reduced IDCT of libjpeg's scale 1/2). With the JPEG basis
// M[i][u] = C(u)/2 · cos((2i+1)uπ/8) the 4-point transform is a butterfly:
//   even = k0·(F0 ± F2), odd = (a·F1 + b·F3, b·F1 − a·F3), out = even ± odd.
constexpr float kK0 = 0.35355339f;  // cos(π/4) / 2
constexpr float kA = 0.46193977f;   // cos(π/8) / 2
constexpr float kB = 0.19134172f;   // cos(3π/8) / 2

inline unsigned char Sample(float v) { return (unsigned char)std::clamp(int(v + 128.5f), 0, 255); }

// One block, dequantised, into 4×4 samples at out (rows `stride` apart).
inline void ReducedIdct4(const JCOEF* coef, const UINT16* quant, unsigned char* out,
                         size_t stride) {
  bool ac = false;
  for (int v = 0; v < 4; ++v)
    for (int u = 0; u < 4; ++u) ac |= (u | v) != 0 && coef[v * 8 + u] != 0;
  if (!ac) {  // flat: the DC alone (k0² per pass)
    const unsigned char p = Sample(float(coef[0]) * float(quant[0]) * kK0 * kK0);
    for (int j = 0; j < 4; ++j) std::memset(out + size_t(j) * stride, p, 4);
    return;
  }
#ifdef __SSE2__
  // The same butterflies on four-wide rows: vertical pass on the rows, a transpose, the
  // horizontal pass on the columns, a transpose back, then round and saturate to bytes.
  __m128 r[4];
  for (int v = 0; v < 4; ++v) {
    const __m128i c16 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(coef + v * 8));
    const __m128i q16 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(quant + v * 8));
    const __m128i c32 = _mm_srai_epi32(_mm_unpacklo_epi16(c16, c16), 16);
    const __m128i q32 = _mm_unpacklo_epi16(q16, _mm_setzero_si128());
    r[v] = _mm_mul_ps(_mm_cvtepi32_ps(c32), _mm_cvtepi32_ps(q32));
  }
  const __m128 k0 = _mm_set1_ps(kK0), ka = _mm_set1_ps(kA), kb = _mm_set1_ps(kB);
  auto butterfly = [&](__m128* x) {
    const __m128 e0 = _mm_mul_ps(k0, _mm_add_ps(x[0], x[2]));
    const __m128 e1 = _mm_mul_ps(k0, _mm_sub_ps(x[0], x[2]));
    const __m128 o0 = _mm_add_ps(_mm_mul_ps(ka, x[1]), _mm_mul_ps(kb, x[3]));
    const __m128 o1 = _mm_sub_ps(_mm_mul_ps(kb, x[1]), _mm_mul_ps(ka, x[3]));
    x[0] = _mm_add_ps(e0, o0);
    x[1] = _mm_add_ps(e1, o1);
    x[2] = _mm_sub_ps(e1, o1);
    x[3] = _mm_sub_ps(e0, o0);
  };
  butterfly(r);
  _MM_TRANSPOSE4_PS(r[0], r[1], r[2], r[3]);
  butterfly(r);
  _MM_TRANSPOSE4_PS(r[0], r[1], r[2], r[3]);
  const __m128 half = _mm_set1_ps(128.5f);
  const __m128i lo = _mm_packs_epi32(_mm_cvttps_epi32(_mm_add_ps(r[0], half)),
                                     _mm_cvttps_epi32(_mm_add_ps(r[1], half)));
  const __m128i hi = _mm_packs_epi32(_mm_cvttps_epi32(_mm_add_ps(r[2], half)),
                                     _mm_cvttps_epi32(_mm_add_ps(r[3], half)));
  alignas(16) unsigned char bytes[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(bytes), _mm_packus_epi16(lo, hi));
  for (int j = 0; j < 4; ++j) std::memcpy(out + size_t(j) * stride, bytes + 4 * j, 4);
#else
  float q[4][4];
  for (int v = 0; v < 4; ++v)
    for (int u = 0; u < 4; ++u) q[v][u] = float(coef[v * 8 + u]) * float(quant[v * 8 + u]);
  float t[4][4];  // vertical pass, column u
  for (int u = 0; u < 4; ++u) {
    const float e0 = kK0 * (q[0][u] + q[2][u]), e1 = kK0 * (q[0][u] - q[2][u]);
    const float o0 = kA * q[1][u] + kB * q[3][u], o1 = kB * q[1][u] - kA * q[3][u];
    t[0][u] = e0 + o0;
    t[1][u] = e1 + o1;
    t[2][u] = e1 - o1;
    t[3][u] = e0 - o0;
  }
  for (int j = 0; j < 4; ++j) {  // horizontal pass, output row j
    const float* r = t[j];
    const float e0 = kK0 * (r[0] + r[2]), e1 = kK0 * (r[0] - r[2]);
    const float o0 = kA * r[1] + kB * r[3], o1 = kB * r[1] - kA * r[3];
    unsigned char* o = out + size_t(j) * stride;
    o[0] = Sample(e0 + o0);
    o[1] = Sample(e1 + o1);
    o[2] = Sample(e1 - o1);
    o[3] = Sample(e0 - o0);
  }
#endif
}

// JFIF YCbCr → RGB in fixed point (16 fractional bits), as libjpeg's tables do it.
struct YccTables {
  int cr_r[256], cb_b[256], cr_g[256], cb_g[256];
  YccTables() {
    for (int i = 0; i < 256; ++i) {
      const int x = i - 128;
      cr_r[i] = int(std::lround(1.402 * 65536 * x)) >> 16;
      cb_b[i] = int(std::lround(1.772 * 65536 * x)) >> 16;
      cr_g[i] = -int(std::lround(0.714136 * 65536 * x));
      cb_g[i] = -int(std::lround(0.344136 * 65536 * x)) + 32768;
    }
  }
};
inline unsigned char Clamp255(int v) { return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v); }

// Fills level-1 rows [tile_row·tile/2, +tile/2) of `half` from the source tile row's blocks:
// every block reduced to 4×4 (the level-1 pixels of a full-resolution plane; a subsampled
// chroma plane lands at its own half and is replicated, as a 4:2:0 encoder would read it).
void HalfRows(Source* s, const Geometry& g, int tile_row, HalfImage* half,
              std::vector<unsigned char>* planes) {
  static const YccTables ycc;
  const jpeg_decompress_struct& c = s->cinfo;
  const int hmax = c.max_h_samp_factor, vmax = c.max_v_samp_factor;
  const int first = tile_row * (g.tile / 2);
  const int count = std::min(g.tile / 2, half->height - first);
  if (count <= 0) return;
  size_t plane_w[MAX_COMPONENTS], offset[MAX_COMPONENTS];
  int fx[MAX_COMPONENTS], fy[MAX_COMPONENTS];  // level-1 pixels per plane sample
  size_t total = 0;
  for (int k = 0; k < g.components; ++k) {
    fx[k] = hmax / c.comp_info[k].h_samp_factor;
    fy[k] = vmax / c.comp_info[k].v_samp_factor;
    plane_w[k] = size_t(g.comp[k].src_blocks_w) * 4;
    offset[k] = total;
    total += plane_w[k] * size_t(g.comp[k].tile_blocks_h) * 4;
  }
  planes->resize(total);
  for (int k = 0; k < g.components; ++k) {
    const UINT16* quant = c.comp_info[k].quant_table->quantval;
    const Geometry::Component& gc = g.comp[k];
    unsigned char* plane = planes->data() + offset[k];
    for (int by = 0; by < gc.tile_blocks_h; ++by) {
      const int py = tile_row * gc.tile_blocks_h + by;
      if (py >= gc.src_blocks_h || by * 4 * fy[k] >= count) break;
      for (int px = 0; px < gc.src_blocks_w; ++px) {
        const JCOEF* block = RawBlock(s, k, px, py);
        if (block == nullptr) continue;
        ReducedIdct4(block, quant, plane + size_t(by * 4) * plane_w[k] + size_t(px * 4),
                     plane_w[k]);
      }
    }
  }
  const int w = half->width;
  for (int y = 0; y < count; ++y) {
    unsigned char* out = half->pixels.data() + size_t(first + y) * size_t(w) * size_t(half->bands);
    const unsigned char* yp = planes->data() + offset[0] + size_t(y / fy[0]) * plane_w[0];
    if (half->bands == 1) {
      std::memcpy(out, yp, size_t(w));
      continue;
    }
    const unsigned char* cb = planes->data() + offset[1] + size_t(y / fy[1]) * plane_w[1];
    const unsigned char* cr = planes->data() + offset[2] + size_t(y / fy[2]) * plane_w[2];
    const int sx = fx[1] == 2 ? 1 : 0;  // chroma columns per level-1 column: shift
    for (int x = 0; x < w; ++x) {
      const int Y = yp[x], b = cb[x >> sx], r = cr[x >> sx];
      out[3 * x] = Clamp255(Y + ycc.cr_r[r]);
      out[3 * x + 1] = Clamp255(Y + ((ycc.cb_g[b] + ycc.cr_g[r]) >> 16));
      out[3 * x + 2] = Clamp255(Y + ycc.cb_b[b]);
    }
  }
}

struct TiffCloser {
  void operator()(TIFF* t) const {
    if (t != nullptr) TIFFClose(t);
  }
};
using TiffPtr = std::unique_ptr<TIFF, TiffCloser>;

// A failed write of `what`, with the cause errno `err` held right after it (ENOSPC: "No space
// left on device").
Status WriteFailed(const std::string& what, int err) {
  return Status::IOError("cannot write the pyramid (" + what +
                         "): " + (err != 0 ? std::strerror(err) : "write error"));
}

// Copies every page of the tiled JPEG TIFF at `path` behind the pages of `out`, tile bytes
// and tables as they are, each marked as a reduced image.
Status AppendPages(TIFF* out, const std::string& path, SpaceCheck* space) {
  TiffPtr in(TIFFOpen(path.c_str(), "rm"));
  if (!in) return Status::Internal("cannot read the lower levels' TIFF");
  std::vector<unsigned char> buf;
  do {
    uint32_t w = 0, h = 0, tw = 0, th = 0;
    uint16_t bits = 8, samples = 1, planar = PLANARCONFIG_CONTIG, compression = 0, photometric = 0;
    TIFFGetField(in.get(), TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(in.get(), TIFFTAG_IMAGELENGTH, &h);
    TIFFGetField(in.get(), TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(in.get(), TIFFTAG_TILELENGTH, &th);
    TIFFGetFieldDefaulted(in.get(), TIFFTAG_BITSPERSAMPLE, &bits);
    TIFFGetFieldDefaulted(in.get(), TIFFTAG_SAMPLESPERPIXEL, &samples);
    TIFFGetFieldDefaulted(in.get(), TIFFTAG_PLANARCONFIG, &planar);
    TIFFGetField(in.get(), TIFFTAG_COMPRESSION, &compression);
    TIFFGetField(in.get(), TIFFTAG_PHOTOMETRIC, &photometric);
    if (!TIFFIsTiled(in.get()) || compression != COMPRESSION_JPEG)
      return Status::Internal("the lower levels' TIFF is not tiled JPEG");
    TIFFSetField(out, TIFFTAG_SUBFILETYPE, FILETYPE_REDUCEDIMAGE);
    TIFFSetField(out, TIFFTAG_IMAGEWIDTH, w);
    TIFFSetField(out, TIFFTAG_IMAGELENGTH, h);
    TIFFSetField(out, TIFFTAG_TILEWIDTH, tw);
    TIFFSetField(out, TIFFTAG_TILELENGTH, th);
    TIFFSetField(out, TIFFTAG_BITSPERSAMPLE, bits);
    TIFFSetField(out, TIFFTAG_SAMPLESPERPIXEL, samples);
    TIFFSetField(out, TIFFTAG_PLANARCONFIG, planar);
    TIFFSetField(out, TIFFTAG_COMPRESSION, compression);
    TIFFSetField(out, TIFFTAG_PHOTOMETRIC, photometric);
    if (photometric == PHOTOMETRIC_YCBCR) {
      uint16_t sh = 2, sv = 2;
      TIFFGetFieldDefaulted(in.get(), TIFFTAG_YCBCRSUBSAMPLING, &sh, &sv);
      TIFFSetField(out, TIFFTAG_YCBCRSUBSAMPLING, sh, sv);
      float* ref = nullptr;
      if (TIFFGetField(in.get(), TIFFTAG_REFERENCEBLACKWHITE, &ref) && ref != nullptr)
        TIFFSetField(out, TIFFTAG_REFERENCEBLACKWHITE, ref);
    }
    uint32_t tables_len = 0;
    void* tables = nullptr;
    if (TIFFGetField(in.get(), TIFFTAG_JPEGTABLES, &tables_len, &tables) && tables != nullptr)
      TIFFSetField(out, TIFFTAG_JPEGTABLES, tables_len, tables);
    uint64_t* counts = nullptr;
    if (!TIFFGetField(in.get(), TIFFTAG_TILEBYTECOUNTS, &counts) || counts == nullptr)
      return Status::Internal("the lower levels' TIFF has no tile directory");
    const uint32_t n = TIFFNumberOfTiles(in.get());
    for (uint32_t i = 0; i < n; ++i) {
      buf.resize(std::max<size_t>(buf.size(), size_t(counts[i])));
      tmsize_t got = TIFFReadRawTile(in.get(), i, buf.data(), tmsize_t(counts[i]));
      if (got <= 0) return Status::Internal("cannot read a tile of the lower levels");
      errno = 0;
      if (TIFFWriteRawTile(out, i, buf.data(), got) != got)
        return WriteFailed("a lower tile", errno);
      QUIRE_RETURN_IF_ERROR(space->Wrote(int64_t(got)));
    }
    errno = 0;
    if (!TIFFWriteDirectory(out)) return WriteFailed("a lower level's directory", errno);
  } while (TIFFReadDirectory(in.get()));
  return Status::Ok();
}

std::string Mib(int64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

// Why `s` (header read) can not be cut under `orientation`, or "" with `g` filled.
std::string Plan(const Source& s, int orientation, int tile, Geometry* g, int64_t* bytes) {
  const jpeg_decompress_struct& c = s.cinfo;
  if (c.arith_code) return "arithmetic-coded JPEG";
  if (c.data_precision != 8) return std::to_string(c.data_precision) + "-bit JPEG";
  if (c.jpeg_color_space == JCS_CMYK) return "CMYK JPEG";
  if (c.jpeg_color_space == JCS_YCCK) return "YCCK JPEG";
  if (c.jpeg_color_space == JCS_RGB) return "RGB-coded JPEG (no YCbCr)";
  const bool grey = c.jpeg_color_space == JCS_GRAYSCALE && c.num_components == 1;
  const bool ycc = c.jpeg_color_space == JCS_YCbCr && c.num_components == 3;
  if (!grey && !ycc) return "JPEG with " + std::to_string(c.num_components) + " components";
  const jpeg_component_info* comp = c.comp_info;
  const int h = comp[0].h_samp_factor, v = comp[0].v_samp_factor;
  bool sampling_ok = grey ? h == 1 && v == 1 : (h == 1 || h == 2) && (v == 1 || v == 2) && v <= h;
  for (int i = 1; i < c.num_components; ++i)
    sampling_ok = sampling_ok && comp[i].h_samp_factor == 1 && comp[i].v_samp_factor == 1;
  if (!sampling_ok) {
    std::string s = "sampling";
    for (int i = 0; i < c.num_components; ++i)
      s +=
          " " + std::to_string(comp[i].h_samp_factor) + "x" + std::to_string(comp[i].v_samp_factor);
    return "JPEG " + s + " (cut: 4:4:4, 4:2:2, 4:2:0, grey)";
  }
  const int mcu_w = 8 * h, mcu_h = 8 * v;
  if (tile % mcu_w != 0 || tile % mcu_h != 0)
    return "tile size " + std::to_string(tile) + " is not a multiple of the MCU";
  static constexpr bool kTranspose[9] = {false, false, false, false, false, true, true, true, true};
  static constexpr bool kFlipX[9] = {false, false, true, true, false, false, false, true, true};
  static constexpr bool kFlipY[9] = {false, false, false, true, true, false, true, true, false};
  if (orientation < 1 || orientation > 8) orientation = 1;
  g->transpose = kTranspose[orientation];
  g->flip_x = kFlipX[orientation];
  g->flip_y = kFlipY[orientation];
  const int W = int(c.image_width), H = int(c.image_height);
  const std::string o = "orientation " + std::to_string(orientation);
  if (g->transpose && h != v) return o + " transposes the 4:2:2 MCU (pixels turn it)";
  if ((g->flip_x && W % mcu_w != 0) || (g->flip_y && H % mcu_h != 0)) {
    return o + " would move the partial MCU of a " + std::to_string(W) + "x" + std::to_string(H) +
           " image to the top or left (MCU " + std::to_string(mcu_w) + "x" + std::to_string(mcu_h) +
           ")";
  }
  g->tile = tile;
  g->src_width = W;
  g->src_height = H;
  g->width = g->transpose ? H : W;
  g->height = g->transpose ? W : H;
  g->across = (g->width + tile - 1) / tile;
  g->down = (g->height + tile - 1) / tile;
  g->components = c.num_components;
  *bytes = 0;
  for (int i = 0; i < c.num_components; ++i) {
    Geometry::Component& k = g->comp[i];
    const int ch = comp[i].h_samp_factor, cv = comp[i].v_samp_factor;
    k.exact_w = int(comp[i].width_in_blocks);
    k.exact_h = int(comp[i].height_in_blocks);
    k.src_blocks_w = (k.exact_w + ch - 1) / ch * ch;
    k.src_blocks_h = (k.exact_h + cv - 1) / cv * cv;
    k.tile_blocks_w = tile / 8 * ch / h;
    k.tile_blocks_h = tile / 8 * cv / v;
    k.v_samp = cv;
    *bytes += int64_t(k.src_blocks_w) * k.src_blocks_h * int64_t(sizeof(JBLOCK));
  }
  return "";
}

Status Fsync(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return WriteFailed("fsync", errno);
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  return rc == 0 ? Status::Ok() : WriteFailed("fsync", saved);
}

}  // namespace

Result<DctOutcome> MakeDctPyramid(const std::string& jpeg_path, int orientation,
                                  const DctOptions& options, const std::string& tif_path,
                                  const LowerLevelsWriter& lower) {
  DctOutcome outcome;
  TiffPtr out;
  auto fallback = [&](std::string why) {
    out.reset();
    ::unlink(tif_path.c_str());
    outcome.cut = false;
    outcome.fallback = std::move(why);
    return outcome;
  };
  auto fail = [&](Status st) {
    out.reset();
    ::unlink(tif_path.c_str());
    return st;
  };
  if (options.memory_budget <= 0) return fallback("the DCT path is off");

  Source src;
  src.file = std::fopen(jpeg_path.c_str(), "rbe");
  if (src.file == nullptr)
    return Status::IOError("cannot read the source: " + std::string(std::strerror(errno)));
  if (!ReadHeader(&src)) return fallback(std::string("libjpeg: ") + src.err.message);
  Geometry g;
  int64_t bytes = 0;
  if (std::string why = Plan(src, orientation, options.tile, &g, &bytes); !why.empty())
    return fallback(why);
  // One interleaved scan read top to bottom, and tiles that need no rows from below it: the
  // tiles are cut as the decoder goes (Stream). Otherwise the whole image's coefficients.
  const bool streaming = !src.cinfo.progressive_mode &&
                         src.cinfo.comps_in_scan == src.cinfo.num_components && !g.transpose &&
                         !g.flip_y;
  if (streaming) {
    bytes = 0;
    for (int c = 0; c < g.components; ++c)
      bytes += int64_t(g.comp[c].tile_blocks_h) * g.comp[c].src_blocks_w * int64_t(sizeof(JBLOCK));
  }
  // Level 1 from the coefficients when it fits in memory.
  const bool lower_needed = g.width > g.tile || g.height > g.tile;
  HalfImage half;
  half.width = std::max(1, g.src_width / 2);
  half.height = std::max(1, g.src_height / 2);
  half.bands = g.components;
  const int64_t half_bytes = int64_t(half.width) * half.height * half.bands;
  const bool make_half = lower_needed && half_bytes <= options.half_image_max_bytes;
  if (make_half) bytes += half_bytes;
  BudgetHold hold;
  if (!hold.Take(bytes, options.memory_budget)) {
    return fallback("its coefficients need " + Mib(bytes) + "; the DCT budget (" +
                    Mib(options.memory_budget) + ") is taken");
  }

  if (options.reserve_bytes > 0) {
    if (Status room = CheckFreeSpace(FreeBytes(tif_path), options.reserve_bytes); !room.ok())
      return fail(room);
  }
  errno = 0;
  out.reset(TIFFOpen(tif_path.c_str(), "w"));
  if (!out) return fail(WriteFailed("creating it", errno));
  Encoder enc;
  if (!CreateEncoder(&enc) || !WriteTables(&src, &enc, &g))
    return fail(Status::Internal(std::string("libjpeg: ") + enc.err.message));
  const bool grey = g.components == 1;
  TIFF* t = out.get();
  TIFFSetField(t, TIFFTAG_SUBFILETYPE, 0);
  TIFFSetField(t, TIFFTAG_IMAGEWIDTH, uint32_t(g.width));
  TIFFSetField(t, TIFFTAG_IMAGELENGTH, uint32_t(g.height));
  TIFFSetField(t, TIFFTAG_TILEWIDTH, uint32_t(g.tile));
  TIFFSetField(t, TIFFTAG_TILELENGTH, uint32_t(g.tile));
  TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, uint16_t(8));
  TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, uint16_t(g.components));
  TIFFSetField(t, TIFFTAG_PLANARCONFIG, uint16_t(PLANARCONFIG_CONTIG));
  TIFFSetField(t, TIFFTAG_COMPRESSION, uint16_t(COMPRESSION_JPEG));
  TIFFSetField(t, TIFFTAG_PHOTOMETRIC, uint16_t(grey ? PHOTOMETRIC_MINISBLACK : PHOTOMETRIC_YCBCR));
  if (!grey) {
    TIFFSetField(t, TIFFTAG_YCBCRSUBSAMPLING, uint16_t(src.cinfo.comp_info[0].h_samp_factor),
                 uint16_t(src.cinfo.comp_info[0].v_samp_factor));
  }
  TIFFSetField(t, TIFFTAG_JPEGTABLES, uint32_t(enc.size), enc.out);

  SpaceCheck space{tif_path, options.reserve_bytes};
  Stream stream;
  stream.space = &space;
  if (streaming) {
    stream.src = &src;
    stream.enc = &enc;
    stream.g = &g;
    stream.tif = t;
    InstallStream(&src, &stream);
  }
  if (make_half) {
    half.pixels.resize(size_t(half_bytes));
    stream.half = streaming ? &half : nullptr;
  }
  // A tile the stream could not write or encode stops the decode; the status says which.
  auto stream_failure = [&]() -> Status {
    if (!stream.no_room.ok()) return stream.no_room;
    if (stream.io_failed) return WriteFailed("a full-resolution tile", stream.io_errno);
    if (stream.encode_failed) return Status::Internal(std::string("libjpeg: ") + enc.err.message);
    return Status::Ok();
  };
  if (!ReadCoefficients(&src)) {
    if (Status st = stream_failure(); !st.ok()) return fail(st);
    return fallback(std::string("libjpeg: ") + src.err.message);
  }
  if (src.err.warned) return fallback(std::string("libjpeg warned: ") + src.err.warning);
  if (streaming) {
    if (stream.row != g.down - 1 || !EmitTileRow(&stream)) {
      if (Status st = stream_failure(); !st.ok()) return fail(st);
      return fallback("the scan ended before the last tile row");
    }
    if (stream.half != nullptr) HalfRows(&src, g, stream.row, &half, &stream.planes);
  } else {
    if (make_half) {
      std::vector<unsigned char> planes;
      for (int row = 0; row * g.tile < g.src_height; ++row) HalfRows(&src, g, row, &half, &planes);
    }
    for (int row = 0; row < g.down; ++row) {
      for (int col = 0; col < g.across; ++col) {
        if (!EncodeTile(&src, &enc, &g, col, row))
          return fail(Status::Internal(std::string("libjpeg: ") + enc.err.message));
        const uint32_t index = uint32_t(row) * uint32_t(g.across) + uint32_t(col);
        errno = 0;
        if (TIFFWriteRawTile(t, index, enc.out, tmsize_t(enc.size)) != tmsize_t(enc.size))
          return fail(WriteFailed("a full-resolution tile", errno));
        if (Status room = space.Wrote(int64_t(enc.size)); !room.ok()) return fail(room);
      }
    }
  }
  errno = 0;
  if (!TIFFWriteDirectory(t)) return fail(WriteFailed("the full-resolution directory", errno));
  ResetOutput(&enc);

  if (g.width > g.tile || g.height > g.tile) {
    // The coefficients are done with: their memory goes back before the lower levels decode.
    jpeg_abort_decompress(&src.cinfo);
    for (Stream::Window& w : stream.window) w = Stream::Window{};
    Result<std::string> lower_path = NewScratchFile(options.scratch_dir, "lower", ".tif");
    if (!lower_path.ok()) return fail(lower_path.status());
    Status st = lower(make_half ? &half : nullptr, *lower_path);
    half.pixels = {};
    if (st.ok() && options.reserve_bytes > 0)
      st = CheckFreeSpace(FreeBytes(tif_path), options.reserve_bytes);
    if (st.ok()) st = AppendPages(t, *lower_path, &space);
    ::unlink(lower_path->c_str());
    if (!st.ok()) return fail(st);
  }
  errno = 0;
  if (!TIFFFlush(t)) return fail(WriteFailed("the last directory", errno));
  out.reset();
  if (Status synced = Fsync(tif_path); !synced.ok()) {
    ::unlink(tif_path.c_str());
    return synced;
  }
  outcome.cut = true;
  return outcome;
}

}  // namespace quire
