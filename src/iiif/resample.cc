#include "iiif/resample.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>
#include <vector>

namespace quire::iiif {
namespace {

constexpr int kBits = 14;
constexpr int kOne = 1 << kBits;

double Lanczos3(double x) {
  x = std::fabs(x);
  if (x < 1e-9) return 1.0;
  if (x >= 3.0) return 0.0;
  const double px = std::numbers::pi * x;
  return 3.0 * std::sin(px) * std::sin(px / 3.0) / (px * px);
}

// For each output sample: the first input sample and `count` fixed-point weights
// (summing to kOne), the filter stretched by the shrink factor, edges folded onto the border.
struct Taps {
  int count = 0;               // taps per output (the same for all, zero-padded)
  std::vector<int> start;      // per output
  std::vector<int16_t> weight;  // out_n × count
};

Taps MakeTaps(int in_n, int out_n) {
  Taps t;
  const double scale = double(out_n) / in_n;  // <= 1
  const double support = 3.0 / scale;
  t.count = std::min(in_n, int(std::ceil(2 * support)) + 1);
  t.start.resize(size_t(out_n));
  t.weight.assign(size_t(out_n) * size_t(t.count), 0);
  std::vector<double> w(size_t(t.count));
  for (int o = 0; o < out_n; ++o) {
    const double centre = (o + 0.5) / scale - 0.5;
    int lo = int(std::floor(centre - support)) + 1, hi = int(std::ceil(centre + support)) - 1;
    // The window of input samples the taps land on after folding the edges.
    int start = std::clamp(lo, 0, in_n - t.count);
    std::fill(w.begin(), w.end(), 0.0);
    double sum = 0;
    for (int j = lo; j <= hi; ++j) {
      const double v = Lanczos3((j - centre) * scale);
      if (v == 0) continue;
      const int idx = std::clamp(j, 0, in_n - 1) - start;
      if (idx < 0 || idx >= t.count) continue;  // cannot happen: the window covers [lo, hi]
      w[size_t(idx)] += v;
      sum += v;
    }
    int16_t* dst = &t.weight[size_t(o) * size_t(t.count)];
    int total = 0, biggest = 0;
    for (int i = 0; i < t.count; ++i) {
      dst[i] = int16_t(std::lround(w[size_t(i)] / sum * kOne));
      total += dst[i];
      if (dst[i] > dst[biggest]) biggest = i;
    }
    dst[biggest] = int16_t(dst[biggest] + (kOne - total));
    t.start[size_t(o)] = start;
  }
  return t;
}

inline uint8_t Clamp8(int32_t acc) {
  acc = (acc + (kOne >> 1)) >> kBits;
  return uint8_t(acc < 0 ? 0 : acc > 255 ? 255 : acc);
}

// Vertical: out_rows rows of `n` samples from rows of `in` (`n` samples each), two taps at a
// time with SSE2 pmaddwd (weights and pixels as int16 pairs, int32 sums).
void VerticalSse2(const uint8_t* in, size_t n, const Taps& t, int out_rows, uint8_t* out) {
  const __m128i zero = _mm_setzero_si128();
  const __m128i half = _mm_set1_epi32(kOne >> 1);
  for (int o = 0; o < out_rows; ++o) {
    const int16_t* w = &t.weight[size_t(o) * size_t(t.count)];
    const uint8_t* base = in + size_t(t.start[size_t(o)]) * n;
    uint8_t* dst = out + size_t(o) * n;
    size_t x = 0;
    for (; x + 16 <= n; x += 16) {
      __m128i a0 = zero, a1 = zero, a2 = zero, a3 = zero;
      for (int k = 0; k < t.count; k += 2) {
        const bool pair = k + 1 < t.count;
        const __m128i wp = _mm_set1_epi32(int32_t(uint16_t(w[k])) |
                                          (int32_t(uint16_t(pair ? w[k + 1] : 0)) << 16));
        const __m128i r0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(base + size_t(k) * n + x));
        const __m128i r1 =
            pair ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(base + size_t(k + 1) * n + x)) : zero;
        const __m128i l0 = _mm_unpacklo_epi8(r0, zero), l1 = _mm_unpacklo_epi8(r1, zero);
        const __m128i h0 = _mm_unpackhi_epi8(r0, zero), h1 = _mm_unpackhi_epi8(r1, zero);
        a0 = _mm_add_epi32(a0, _mm_madd_epi16(_mm_unpacklo_epi16(l0, l1), wp));
        a1 = _mm_add_epi32(a1, _mm_madd_epi16(_mm_unpackhi_epi16(l0, l1), wp));
        a2 = _mm_add_epi32(a2, _mm_madd_epi16(_mm_unpacklo_epi16(h0, h1), wp));
        a3 = _mm_add_epi32(a3, _mm_madd_epi16(_mm_unpackhi_epi16(h0, h1), wp));
      }
      a0 = _mm_srai_epi32(_mm_add_epi32(a0, half), kBits);
      a1 = _mm_srai_epi32(_mm_add_epi32(a1, half), kBits);
      a2 = _mm_srai_epi32(_mm_add_epi32(a2, half), kBits);
      a3 = _mm_srai_epi32(_mm_add_epi32(a3, half), kBits);
      const __m128i lo = _mm_packs_epi32(a0, a1), hi = _mm_packs_epi32(a2, a3);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + x), _mm_packus_epi16(lo, hi));
    }
    for (; x < n; ++x) {
      int32_t acc = 0;
      for (int k = 0; k < t.count; ++k) acc += int32_t(w[k]) * int32_t(base[size_t(k) * n + x]);
      dst[x] = Clamp8(acc);
    }
  }
}

// The same with AVX2 (32 samples per step), on CPUs that have it.
__attribute__((target("avx2"))) void VerticalAvx2(const uint8_t* in, size_t n, const Taps& t,
                                                  int out_rows, uint8_t* out) {
  const __m256i zero = _mm256_setzero_si256();
  const __m256i half = _mm256_set1_epi32(kOne >> 1);
  for (int o = 0; o < out_rows; ++o) {
    const int16_t* w = &t.weight[size_t(o) * size_t(t.count)];
    const uint8_t* base = in + size_t(t.start[size_t(o)]) * n;
    uint8_t* dst = out + size_t(o) * n;
    size_t x = 0;
    for (; x + 32 <= n; x += 32) {
      __m256i a0 = zero, a1 = zero, a2 = zero, a3 = zero;
      for (int k = 0; k < t.count; k += 2) {
        const bool pair = k + 1 < t.count;
        const __m256i wp = _mm256_set1_epi32(int32_t(uint16_t(w[k])) |
                                             (int32_t(uint16_t(pair ? w[k + 1] : 0)) << 16));
        const __m256i r0 =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + size_t(k) * n + x));
        const __m256i r1 =
            pair ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + size_t(k + 1) * n + x))
                 : zero;
        // Lane-wise unpacks here and lane-wise packs below keep the sample order.
        const __m256i l0 = _mm256_unpacklo_epi8(r0, zero), l1 = _mm256_unpacklo_epi8(r1, zero);
        const __m256i h0 = _mm256_unpackhi_epi8(r0, zero), h1 = _mm256_unpackhi_epi8(r1, zero);
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_unpacklo_epi16(l0, l1), wp));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_unpackhi_epi16(l0, l1), wp));
        a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(_mm256_unpacklo_epi16(h0, h1), wp));
        a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(_mm256_unpackhi_epi16(h0, h1), wp));
      }
      a0 = _mm256_srai_epi32(_mm256_add_epi32(a0, half), kBits);
      a1 = _mm256_srai_epi32(_mm256_add_epi32(a1, half), kBits);
      a2 = _mm256_srai_epi32(_mm256_add_epi32(a2, half), kBits);
      a3 = _mm256_srai_epi32(_mm256_add_epi32(a3, half), kBits);
      const __m256i lo = _mm256_packs_epi32(a0, a1), hi = _mm256_packs_epi32(a2, a3);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + x), _mm256_packus_epi16(lo, hi));
    }
    for (; x < n; ++x) {
      int32_t acc = 0;
      for (int k = 0; k < t.count; ++k) acc += int32_t(w[k]) * int32_t(base[size_t(k) * n + x]);
      dst[x] = Clamp8(acc);
    }
  }
}

void Vertical(const uint8_t* in, size_t n, const Taps& t, int out_rows, uint8_t* out) {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) {
    VerticalAvx2(in, n, t, out_rows, out);
  } else {
    VerticalSse2(in, n, t, out_rows, out);
  }
}

// The rows from `r0` on, one at a time: what is left after the bands of a transpose.
template <int C>
void TransposeRowsFrom(const uint8_t* in, int r0, int rows, int cols, uint8_t* out) {
  const size_t in_row = size_t(cols) * C, out_row = size_t(rows) * C;
  for (; r0 < rows; ++r0) {
    const uint8_t* src = in + size_t(r0) * in_row;
    for (int c = 0; c < cols; ++c)
      std::memcpy(out + size_t(c) * out_row + size_t(r0) * C, src + size_t(c) * C, C);
  }
}

// Transposes rows × cols pixels of `C` bytes into cols × rows: bands of 8 input rows are read
// side by side, so each output row gets 8 consecutive pixels per write burst.
template <int C>
void TransposeT(const uint8_t* in, int rows, int cols, uint8_t* out) {
  constexpr int B = 8;
  const size_t in_row = size_t(cols) * C, out_row = size_t(rows) * C;
  int r0 = 0;
  for (; r0 + B <= rows; r0 += B) {
    const uint8_t* src = in + size_t(r0) * in_row;
    uint8_t* dst = out + size_t(r0) * C;
    for (int c = 0; c < cols; ++c) {
      uint8_t* d = dst + size_t(c) * out_row;
      const uint8_t* p = src + size_t(c) * C;
      for (int r = 0; r < B; ++r)
        for (int k = 0; k < C; ++k) d[r * C + k] = p[size_t(r) * in_row + k];
    }
  }
  TransposeRowsFrom<C>(in, r0, rows, cols, out);
}

// RGB, the common case, with 4-byte moves (3.4x faster than byte moves): each pixel is read
// and written as a 32-bit word whose fourth byte belongs to the next pixel — overwritten by
// the next move, or rewritten by a later band. The last row of each band and the last column
// move 3 bytes, so no byte outside either image is read or written.
void Transpose3(const uint8_t* in, int rows, int cols, uint8_t* out) {
  constexpr int C = 3, B = 16;
  const size_t in_row = size_t(cols) * C, out_row = size_t(rows) * C;
  int r0 = 0;
  for (; r0 + B <= rows; r0 += B) {
    const uint8_t* src = in + size_t(r0) * in_row;
    uint8_t* dst = out + size_t(r0) * C;
    for (int c = 0; c < cols; ++c) {
      uint8_t* d = dst + size_t(c) * out_row;
      const uint8_t* p = src + size_t(c) * C;
      if (c + 1 < cols) {
        for (int r = 0; r < B - 1; ++r) {
          uint32_t w;
          std::memcpy(&w, p + size_t(r) * in_row, 4);
          std::memcpy(d + r * C, &w, 4);
        }
        std::memcpy(d + (B - 1) * C, p + size_t(B - 1) * in_row, C);
      } else {
        for (int r = 0; r < B; ++r) std::memcpy(d + r * C, p + size_t(r) * in_row, C);
      }
    }
  }
  TransposeRowsFrom<C>(in, r0, rows, cols, out);
}

void Transpose(const uint8_t* in, int rows, int cols, int channels, uint8_t* out) {
  switch (channels) {
    case 1: TransposeT<1>(in, rows, cols, out); break;
    case 2: TransposeT<2>(in, rows, cols, out); break;
    case 3: Transpose3(in, rows, cols, out); break;
    default: TransposeT<4>(in, rows, cols, out); break;
  }
}

}  // namespace

namespace {

// Scratch buffers reused by each thread: fresh multi-megabyte allocations are mmapped and
// page-faulted in on every call, which on a virtual machine costs more than the filtering.
struct Scratch {
  std::vector<uint8_t> mid, tin, tout;
  static constexpr size_t kKeep = 16u << 20;  // bytes kept per buffer between calls
  uint8_t* Get(std::vector<uint8_t>& v, size_t n) {
    if (v.size() < n) v.resize(n);
    return v.data();
  }
  void Trim() {
    for (auto* v : {&mid, &tin, &tout})
      if (v->size() > kKeep) std::vector<uint8_t>().swap(*v);
  }
};

}  // namespace

void DownscaleLanczos3(const uint8_t* in, int in_w, int in_h, int channels, uint8_t* out,
                       int out_w, int out_h) {
  thread_local Scratch scratch;
  const size_t in_row = size_t(in_w) * channels;
  // Vertical first (fewer rows for the rest); the horizontal pass is the same vertical kernel
  // run on the transposed image, which keeps every inner loop contiguous and vectorised.
  const uint8_t* v = in;
  if (out_h != in_h) {
    uint8_t* mid = scratch.Get(scratch.mid, in_row * size_t(out_h));
    Vertical(in, in_row, MakeTaps(in_h, out_h), out_h, mid);
    v = mid;
  }
  if (out_w == in_w) {
    if (v != out) std::memcpy(out, v, in_row * size_t(out_h));
  } else {
    const size_t col = size_t(out_h) * channels;  // one transposed row: a column of pixels
    uint8_t* tin = scratch.Get(scratch.tin, col * size_t(in_w));
    uint8_t* tout = scratch.Get(scratch.tout, col * size_t(out_w));
    Transpose(v, out_h, in_w, channels, tin);
    Vertical(tin, col, MakeTaps(in_w, out_w), out_w, tout);
    Transpose(tout, out_w, out_h, channels, out);
  }
  scratch.Trim();
}

}  // namespace quire::iiif
