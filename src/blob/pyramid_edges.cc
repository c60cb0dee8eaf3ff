#include "blob/pyramid_edges.h"

#include "blob/free_space.h"

#include <fcntl.h>
#include <jpeglib.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csetjmp>
#include <cstdarg>
#include <cstring>

namespace quire {
namespace {

constexpr char kFooterMagic[8] = {'Q', 'E', 'D', 'G', 'T', 'R', 'L', '1'};
constexpr uint32_t kFormat = 1;
constexpr uint32_t kMaxEntries = 1u << 20;
constexpr uint64_t kMaxTileBytes = 64u << 20;

// APP14 "Adobe", transform 0: the components are RGB (libtiff leaves it out of RGB tiles).
constexpr unsigned char kAdobeRgbMarker[] = {0xFF, 0xEE, 0x00, 0x0E, 'A',  'd',  'o',  'b',
                                             'e',  0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00};

void Put32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(char((v >> (8 * i)) & 0xFF));
}
void Put64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(char((v >> (8 * i)) & 0xFF));
}
uint64_t Get(std::string_view s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes; i-- > 0;) v = (v << 8) | uint8_t(s[at + size_t(i)]);
  return v;
}

// --- libjpeg with errors as return values (setjmp frames hold only trivial locals) ---

struct JpegError {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
};
[[noreturn]] void JpegErrorExit(j_common_ptr cinfo) {
  std::longjmp(reinterpret_cast<JpegError*>(cinfo->err)->jump, 1);
}
void JpegSilence(j_common_ptr) {}

struct StringDest {
  jpeg_destination_mgr pub;
  std::string* out;
};
void DestInit(j_compress_ptr cinfo) {
  auto* d = reinterpret_cast<StringDest*>(cinfo->dest);
  if (d->out->size() < 16384) d->out->resize(16384);
  d->pub.next_output_byte = reinterpret_cast<JOCTET*>(d->out->data());
  d->pub.free_in_buffer = d->out->size();
}
boolean DestEmpty(j_compress_ptr cinfo) {
  auto* d = reinterpret_cast<StringDest*>(cinfo->dest);
  size_t used = d->out->size();
  d->out->resize(used * 2);
  d->pub.next_output_byte = reinterpret_cast<JOCTET*>(d->out->data()) + used;
  d->pub.free_in_buffer = d->out->size() - used;
  return TRUE;
}
void DestTerm(j_compress_ptr cinfo) {
  auto* d = reinterpret_cast<StringDest*>(cinfo->dest);
  d->out->resize(d->out->size() - d->pub.free_in_buffer);
}

struct TiffErrors {
  std::string last;
};
int CaptureTiffError(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
  char buf[512];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  static_cast<TiffErrors*>(user)->last = std::string(module ? module : "tiff") + ": " + buf;
  return 1;
}
int IgnoreTiffWarning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

// The cut tiles of the current directory's partial tiles, appended to `data` (their offsets
// relative to `base`, where `data` will start in the file) and described in `table`.
void CutLevel(TIFF* t, uint32_t level, uint64_t base, std::string* data,
              std::vector<EdgeTile>* table) {
  uint32_t w = 0, h = 0, tw = 0, th = 0;
  uint16_t compression = 0, planar = PLANARCONFIG_CONTIG, bits = 0, samples = 0, photometric = 0;
  if (!TIFFIsTiled(t) || !TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w) ||
      !TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h) || !TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw) ||
      !TIFFGetField(t, TIFFTAG_TILELENGTH, &th) || w == 0 || h == 0 || tw == 0 || th == 0)
    return;
  TIFFGetField(t, TIFFTAG_COMPRESSION, &compression);
  TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &planar);
  TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &bits);
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &samples);
  TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &photometric);
  const bool rgb = samples == 3 && photometric == PHOTOMETRIC_RGB;
  if (compression != COMPRESSION_JPEG || planar != PLANARCONFIG_CONTIG || bits != 8 ||
      !((samples == 3 && (photometric == PHOTOMETRIC_YCBCR || rgb)) ||
        (samples == 1 && photometric == PHOTOMETRIC_MINISBLACK)))
    return;
  uint32_t tables_len = 0;
  const void* tables_data = nullptr;
  std::string_view tables;
  if (TIFFGetField(t, TIFFTAG_JPEGTABLES, &tables_len, &tables_data) && tables_data &&
      tables_len >= 4) {
    tables = std::string_view(static_cast<const char*>(tables_data) + 2, tables_len - 4);
  }
  uint64_t* counts = nullptr;
  if (!TIFFGetField(t, TIFFTAG_TILEBYTECOUNTS, &counts) || counts == nullptr) return;
  const uint32_t across = (w + tw - 1) / tw, down = (h + th - 1) / th;
  std::string stream, raw, cut;
  for (uint32_t row = 0; row < down; ++row) {
    for (uint32_t col = 0; col < across; ++col) {
      const uint32_t cw = std::min(tw, w - col * tw), ch = std::min(th, h - row * th);
      if (cw == tw && ch == th) continue;  // served as stored
      const ttile_t index = TIFFComputeTile(t, col * tw, row * th, 0, 0);
      const uint64_t n = counts[index];
      if (n < 4 || n > kMaxTileBytes) continue;
      raw.resize(size_t(n));
      if (TIFFReadRawTile(t, index, raw.data(), tmsize_t(n)) != tmsize_t(n)) continue;
      // SOI [APP14] tables tile-without-SOI: the tile as a standalone stream.
      stream.assign("\xFF\xD8", 2);
      if (rgb) stream.append(reinterpret_cast<const char*>(kAdobeRgbMarker), sizeof kAdobeRgbMarker);
      stream.append(tables);
      stream.append(raw, 2, std::string::npos);
      cut.clear();
      if (!CropJpegCoefficients(stream, int(cw), int(ch), &cut)) continue;
      EdgeTile e;
      e.level = level, e.col = col, e.row = row, e.width = cw, e.height = ch;
      e.offset = base + data->size();
      e.size = uint32_t(cut.size());
      data->append(cut);
      table->push_back(e);
    }
  }
}

Status WriteAll(int fd, const std::string& bytes, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::IOError("cannot write the edge tiles of " + path + ": " +
                                       std::strerror(n < 0 ? errno : EIO));
    done += size_t(n);
  }
  return Status::Ok();
}

}  // namespace

bool CropJpegCoefficients(std::string_view stream, int width, int height, std::string* out) {
  jpeg_decompress_struct src;
  jpeg_compress_struct dst;
  std::memset(&src, 0, sizeof src);
  std::memset(&dst, 0, sizeof dst);
  JpegError jerr;
  StringDest dest;
  src.err = jpeg_std_error(&jerr.pub);
  dst.err = &jerr.pub;
  jerr.pub.error_exit = JpegErrorExit;
  jerr.pub.output_message = JpegSilence;
  if (setjmp(jerr.jump)) {
    jpeg_destroy_compress(&dst);
    jpeg_destroy_decompress(&src);
    return false;
  }
  jpeg_create_decompress(&src);
  jpeg_create_compress(&dst);
  jpeg_mem_src(&src, reinterpret_cast<const unsigned char*>(stream.data()),
               static_cast<unsigned long>(stream.size()));
  if (width <= 0 || height <= 0 || jpeg_read_header(&src, TRUE) != JPEG_HEADER_OK ||
      src.progressive_mode || src.arith_code || src.data_precision != 8 ||
      int(src.image_width) < width || int(src.image_height) < height) {
    jpeg_destroy_compress(&dst);
    jpeg_destroy_decompress(&src);
    return false;
  }
  jvirt_barray_ptr* coefficients = jpeg_read_coefficients(&src);
  // A damaged tile decodes with warnings; let the pixel path judge it.
  if (coefficients == nullptr || jerr.pub.num_warnings != 0) {
    jpeg_destroy_compress(&dst);
    jpeg_destroy_decompress(&src);
    return false;
  }
  jpeg_copy_critical_parameters(&src, &dst);
  dst.image_width = JDIMENSION(width);
  dst.image_height = JDIMENSION(height);
  dst.write_JFIF_header = FALSE;  // as the stored tiles: no JFIF marker
  dst.optimize_coding = FALSE;
  dest.pub.init_destination = DestInit;
  dest.pub.empty_output_buffer = DestEmpty;
  dest.pub.term_destination = DestTerm;
  dest.out = out;
  dst.dest = &dest.pub;
  // The source's arrays serve as they are: the encoder walks only the blocks the smaller
  // image covers, from the top-left, and pads a partial last MCU itself.
  jpeg_write_coefficients(&dst, coefficients);
  jpeg_finish_compress(&dst);
  jpeg_finish_decompress(&src);
  jpeg_destroy_compress(&dst);
  jpeg_destroy_decompress(&src);
  return true;
}

Status AppendEdgeTiles(const std::string& path, int64_t reserve_bytes) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return Status::IOError("cannot stat " + path + ": " + std::strerror(errno));
  const uint64_t base = uint64_t(st.st_size);
  std::string data;
  std::vector<EdgeTile> table;
  {
    TiffErrors errors;
    TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
    TIFFOpenOptionsSetErrorHandlerExtR(opts, CaptureTiffError, &errors);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, IgnoreTiffWarning, nullptr);
    TIFF* t = TIFFOpenExt(path.c_str(), "rm", opts);
    TIFFOpenOptionsFree(opts);
    if (t == nullptr) return Status::IOError("cannot open pyramid " + path + ": " + errors.last);
    uint32_t level = 0;
    do {
      CutLevel(t, level++, base, &data, &table);
    } while (TIFFReadDirectory(t) && level < 64);
    TIFFClose(t);
  }
  const uint64_t table_offset = base + data.size();
  for (const EdgeTile& e : table) {
    Put32(&data, e.level), Put32(&data, e.col), Put32(&data, e.row);
    Put32(&data, e.width), Put32(&data, e.height), Put32(&data, e.size);
    Put64(&data, e.offset);
  }
  Put64(&data, table_offset);
  Put32(&data, uint32_t(table.size()));
  Put32(&data, kFormat);
  data.append(kFooterMagic, sizeof kFooterMagic);

  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return Status::IOError("cannot open " + path + ": " + std::strerror(errno));
  // The trailer must leave the reserve free, as every other derivative write does.
  const int64_t free_bytes = FreeBytes(fd);
  Status written =
      free_bytes < 0 ? Status::Ok()
                     : CheckFreeSpace(std::max<int64_t>(0, free_bytes - int64_t(data.size())),
                                      reserve_bytes);
  if (written.ok()) written = WriteAll(fd, data, path);
  if (!written.ok()) {
    if (::ftruncate(fd, off_t(base)) != 0) {
      // The file is a temporary the caller removes on failure.
    }
  }
  ::close(fd);
  return written;
}

std::pair<uint64_t, uint64_t> EdgeTableExtent(std::string_view footer, uint64_t file_size) {
  if (footer.size() != kEdgeFooterBytes || file_size < 8 + kEdgeFooterBytes ||
      std::memcmp(footer.data() + 16, kFooterMagic, sizeof kFooterMagic) != 0 ||
      Get(footer, 12, 4) != kFormat) {
    return {0, 0};
  }
  const uint64_t table_offset = Get(footer, 0, 8), count = Get(footer, 8, 4);
  if (count > kMaxEntries || table_offset < 8 ||
      table_offset + count * kEdgeEntryBytes + kEdgeFooterBytes != file_size) {
    return {0, 0};
  }
  return {table_offset, count * kEdgeEntryBytes + kEdgeFooterBytes};
}

Result<std::vector<EdgeTile>> ReadEdgeTable(
    uint64_t file_size, const std::function<Result<std::string>(uint64_t, size_t)>& read_at) {
  std::vector<EdgeTile> out;
  if (file_size < 8 + kEdgeFooterBytes) return out;
  auto footer = read_at(file_size - kEdgeFooterBytes, kEdgeFooterBytes);
  if (!footer.ok()) return footer.status();
  const auto [offset, n] = EdgeTableExtent(*footer, file_size);
  if (n == 0) return out;
  auto table = read_at(offset, size_t(n - kEdgeFooterBytes));
  if (!table.ok()) return table.status();
  if (table->size() != n - kEdgeFooterBytes) return out;
  for (size_t at = 0; at < table->size(); at += kEdgeEntryBytes) {
    EdgeTile e;
    e.level = uint32_t(Get(*table, at, 4));
    e.col = uint32_t(Get(*table, at + 4, 4));
    e.row = uint32_t(Get(*table, at + 8, 4));
    e.width = uint32_t(Get(*table, at + 12, 4));
    e.height = uint32_t(Get(*table, at + 16, 4));
    e.size = uint32_t(Get(*table, at + 20, 4));
    e.offset = Get(*table, at + 24, 8);
    // Every cut tile lies between the TIFF header and the table; one that does not means
    // the trailer is not what it says, and none of it is used.
    if (e.size < 4 || e.offset < 8 || e.offset + e.size > offset || e.width == 0 ||
        e.height == 0)
      return std::vector<EdgeTile>();
    out.push_back(e);
  }
  return out;
}

}  // namespace quire
