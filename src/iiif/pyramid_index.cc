#include "iiif/pyramid_index.h"

#include "blob/pyramid_edges.h"

#include <fcntl.h>
#include <jpeglib.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <csetjmp>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <tuple>

namespace quire::iiif {
namespace {

// APP14 "Adobe" with transform 0: tells JPEG decoders the three components are RGB, not
// YCbCr. libtiff suppresses this marker when it writes Photometric=RGB JPEG tiles, so without
// it every decoder would assume YCbCr and show false colours.
constexpr unsigned char kAdobeRgbMarker[] = {0xFF, 0xEE, 0x00, 0x0E, 'A',  'd',  'o',  'b',
                                             'e',  0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00};
constexpr uint64_t kMaxTileBytes = 64u << 20;
constexpr int kMaxLevels = 40;
constexpr int kJpegQuality = 90;  // as Render's jpegsave

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

FileIdentity IdentityOf(const struct stat& st) {
  FileIdentity id;
  id.dev = uint64_t(st.st_dev);
  id.ino = uint64_t(st.st_ino);
  id.size = int64_t(st.st_size);
  id.mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return id;
}

bool IsSoi(const unsigned char* p) { return p[0] == 0xFF && p[1] == 0xD8; }
bool IsEoi(const unsigned char* p) { return p[0] == 0xFF && p[1] == 0xD9; }

// --- libjpeg with errors as return values (setjmp frames hold only trivial locals) ---

struct JpegError {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
};

[[noreturn]] void JpegErrorExit(j_common_ptr cinfo) {
  std::longjmp(reinterpret_cast<JpegError*>(cinfo->err)->jump, 1);
}
void JpegSilence(j_common_ptr) {}

// Decodes rows [0, rows) of a standalone JPEG stream (width as the stream declares) into
// rows of `out` `stride` bytes apart; rows before `first_row` go to `scratch` (one row).
struct DecodeJob {
  const unsigned char* data;
  size_t size;
  int samples;
  bool rgb_components;
  int width, rows;
  unsigned char* out;
  size_t stride;  // 0: width * samples
  int first_row;
  unsigned char* scratch;
};

// Returns false on any error or mismatch. Only the job pointer lives across setjmp.
bool DecodeJpegRows(const DecodeJob* job) {
  jpeg_decompress_struct cinfo;
  JpegError jerr;
  cinfo.err = jpeg_std_error(&jerr.pub);
  jerr.pub.error_exit = JpegErrorExit;
  jerr.pub.output_message = JpegSilence;
  if (setjmp(jerr.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, job->data, static_cast<unsigned long>(job->size));
  if (jpeg_read_header(&cinfo, TRUE) != JPEG_HEADER_OK || cinfo.num_components != job->samples ||
      int(cinfo.image_width) != job->width || int(cinfo.image_height) < job->rows) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  if (job->samples == 3) {
    cinfo.jpeg_color_space = job->rgb_components ? JCS_RGB : JCS_YCbCr;
    cinfo.out_color_space = JCS_RGB;
  } else {
    cinfo.jpeg_color_space = JCS_GRAYSCALE;
    cinfo.out_color_space = JCS_GRAYSCALE;
  }
  jpeg_start_decompress(&cinfo);
  while (int(cinfo.output_scanline) < job->rows) {
    const int y = int(cinfo.output_scanline);
    const size_t stride = job->stride ? job->stride : size_t(job->width) * job->samples;
    JSAMPROW row = y < job->first_row ? job->scratch : job->out + size_t(y - job->first_row) * stride;
    if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) {
      jpeg_destroy_decompress(&cinfo);
      return false;
    }
  }
  if (int(cinfo.output_scanline) == int(cinfo.output_height)) {
    jpeg_finish_decompress(&cinfo);
  } else {
    jpeg_abort_decompress(&cinfo);
  }
  jpeg_destroy_decompress(&cinfo);
  return true;
}

bool DecodeRows(const unsigned char* data, size_t size, int samples, bool rgb_components,
                int width, int rows, unsigned char* out, size_t stride = 0, int first_row = 0,
                unsigned char* scratch = nullptr) {
  const DecodeJob job{data, size, samples, rgb_components, width, rows,
                      out,  stride, first_row, scratch};
  return DecodeJpegRows(&job);
}

// A libjpeg destination appending into a std::string.
struct StringDest {
  jpeg_destination_mgr pub;
  std::string* out;
};

void DestInit(j_compress_ptr cinfo) {
  auto* d = reinterpret_cast<StringDest*>(cinfo->dest);
  // About a third of the raw pixels is a generous first guess for Q90.
  const size_t guess = std::max<size_t>(16384, size_t(cinfo->image_width) * cinfo->image_height *
                                                   size_t(cinfo->input_components) / 3);
  if (d->out->size() < guess) d->out->resize(guess);
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

// Encodes `width` × `height` pixels at `pixels` (row stride `stride` bytes) as libvips
// jpegsave does with Q=90 and strip: no JFIF/EXIF/ICC markers, no chroma subsampling at
// Q >= 90, Huffman tables not optimised, baseline.
bool EncodeJpeg(const unsigned char* pixels, size_t stride, int width, int height, int samples,
                std::string* out) {
  jpeg_compress_struct cinfo;
  JpegError jerr;
  StringDest dest;
  cinfo.err = jpeg_std_error(&jerr.pub);
  jerr.pub.error_exit = JpegErrorExit;
  jerr.pub.output_message = JpegSilence;
  if (setjmp(jerr.jump)) {
    jpeg_destroy_compress(&cinfo);
    return false;
  }
  jpeg_create_compress(&cinfo);
  dest.pub.init_destination = DestInit;
  dest.pub.empty_output_buffer = DestEmpty;
  dest.pub.term_destination = DestTerm;
  dest.out = out;
  cinfo.dest = &dest.pub;
  cinfo.image_width = JDIMENSION(width);
  cinfo.image_height = JDIMENSION(height);
  cinfo.input_components = samples;
  cinfo.in_color_space = samples == 3 ? JCS_RGB : JCS_GRAYSCALE;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, kJpegQuality, TRUE);
  cinfo.write_JFIF_header = FALSE;
  cinfo.optimize_coding = FALSE;
  if (samples == 3) {
    for (int i = 0; i < 3; ++i) {
      cinfo.comp_info[i].h_samp_factor = 1;
      cinfo.comp_info[i].v_samp_factor = 1;
    }
  }
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(pixels + size_t(cinfo.next_scanline) * stride);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  return true;
}

Status WalkDirectories(TIFF* t, const std::string& path, TiffErrors* errors,
                       PyramidInfo* info_out, std::vector<IndexedLevel>* levels);

bool PlainJpegRequest(const ResolvedRequest& r) {
  return !r.mirror && std::fmod(r.rotation, 360.0) == 0 && r.format == Format::kJpg &&
         (r.quality == Quality::kDefault || r.quality == Quality::kColor);
}

}  // namespace

Result<FileIdentity> StatIdentity(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return Status::NotFound("cannot stat " + path + ": " + std::strerror(errno));
  }
  return IdentityOf(st);
}

// ---------------------------------------------------------------- geometry

LevelScale ScaleOfLevel(const PyramidInfo& info, size_t k) {
  const auto [lw, lh] = info.levels[k];
  const double p = std::ldexp(1.0, int(k));
  if (std::fabs(lw - info.width / p) < 1 && std::fabs(lh - info.height / p) < 1) return {p, p};
  return {double(info.width) / lw, double(info.height) / lh};
}

bool IsPowerOfTwoLevel(const PyramidInfo& info, size_t k) {
  const LevelScale s = ScaleOfLevel(info, k);
  return s.x == std::ldexp(1.0, int(k)) && s.y == std::ldexp(1.0, int(k));
}

size_t ChooseLevel(const PyramidInfo& info, const ResolvedRequest& r) {
  for (size_t k = info.levels.size(); k-- > 1;) {
    LevelScale s = ScaleOfLevel(info, k);
    if (r.region.w / s.x >= r.width - 1e-6 && r.region.h / s.y >= r.height - 1e-6) return k;
  }
  return 0;
}

LevelRect RegionOnLevel(const PyramidInfo& info, size_t k, const ResolvedRequest& r) {
  const auto [lw, lh] = info.levels[k];
  const LevelScale s = ScaleOfLevel(info, k);
  LevelRect o;
  o.x0 = std::clamp(int(std::lround(r.region.x / s.x)), 0, lw - 1);
  o.y0 = std::clamp(int(std::lround(r.region.y / s.y)), 0, lh - 1);
  o.x1 = std::clamp(int(std::lround((r.region.x + r.region.w) / s.x)), o.x0 + 1, lw);
  o.y1 = std::clamp(int(std::lround((r.region.y + r.region.h) / s.y)), o.y0 + 1, lh);
  return o;
}

// ---------------------------------------------------------------- PyramidIndex

PyramidIndex::~PyramidIndex() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::shared_ptr<const PyramidIndex>> PyramidIndex::Open(const std::string& path) {
  std::shared_ptr<PyramidIndex> index(new PyramidIndex());
  index->path_ = path;
  index->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (index->fd_ < 0) {
    int e = errno;
    std::string why = "cannot open pyramid " + path + ": " + std::strerror(e);
    return e == ENOENT ? Status::NotFound(why) : Status::IOError(why);
  }
  struct stat st;
  if (::fstat(index->fd_, &st) != 0) return Status::IOError("cannot stat pyramid " + path);
  index->identity_ = IdentityOf(st);

  // libtiff reads through its own descriptor on the same open file (closed by TIFFClose).
  int tfd = ::dup(index->fd_);
  if (tfd < 0) return Status::IOError("cannot open pyramid " + path + ": dup failed");
  TiffErrors errors;
  TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(opts, CaptureTiffError, &errors);
  TIFFOpenOptionsSetWarningHandlerExtR(opts, IgnoreTiffWarning, nullptr);
  TIFF* t = TIFFFdOpenExt(tfd, path.c_str(), "rmh", opts);
  TIFFOpenOptionsFree(opts);
  if (!t) {
    ::close(tfd);
    return Status::IOError("cannot open pyramid " + path + ": " + errors.last);
  }
  QUIRE_RETURN_IF_ERROR(WalkDirectories(t, path, &errors, &index->info_, &index->levels_));
  const int fd = index->fd_;
  auto edges = ReadEdgeTable(uint64_t(st.st_size), [fd](uint64_t at, size_t n) -> Result<std::string> {
    std::string out(n, '\0');
    size_t done = 0;
    while (done < n) {
      ssize_t got = ::pread(fd, out.data() + done, n - done, off_t(at + done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return Status::IOError(std::string("cannot read the edge tile table: ") +
                                           (got < 0 ? std::strerror(errno) : "short file"));
      done += size_t(got);
    }
    return out;
  });
  if (!edges.ok()) return edges.status();
  index->KeepEdges(std::move(*edges));
  return std::shared_ptr<const PyramidIndex>(std::move(index));
}

void PyramidIndex::KeepEdges(std::vector<EdgeTile> edges) {
  // Only a table that fits this pyramid's geometry is used, and then all of it.
  for (const EdgeTile& e : edges) {
    if (e.level >= levels_.size()) return;
    const IndexedLevel& L = levels_[e.level];
    const int64_t tw = info_.tile_width, th = info_.tile_height;
    if (!L.jpeg || int64_t(e.col) >= L.tiles_across || int64_t(e.row) >= L.tiles_down ||
        int64_t(e.width) != std::min(tw, L.width - int64_t(e.col) * tw) ||
        int64_t(e.height) != std::min(th, L.height - int64_t(e.row) * th))
      return;
  }
  std::sort(edges.begin(), edges.end(), [](const EdgeTile& a, const EdgeTile& b) {
    return std::tie(a.level, a.row, a.col) < std::tie(b.level, b.row, b.col);
  });
  edges_ = std::move(edges);
}

Result<std::optional<std::string>> PyramidIndex::EdgeJpeg(size_t k, int col, int row, int width,
                                                          int height) const {
  const std::optional<std::string> no;
  EdgeTile key;
  key.level = uint32_t(k), key.col = uint32_t(col), key.row = uint32_t(row);
  auto it = std::lower_bound(edges_.begin(), edges_.end(), key,
                             [](const EdgeTile& a, const EdgeTile& b) {
                               return std::tie(a.level, a.row, a.col) <
                                      std::tie(b.level, b.row, b.col);
                             });
  if (it == edges_.end() || it->level != key.level || it->col != key.col || it->row != key.row ||
      int(it->width) != width || int(it->height) != height)
    return no;
  std::string out;
  if (source_) {
    out.resize(it->size);
    if (!source_->ReadHeld(it->offset, it->size, out.data()))
      QUIRE_RETURN_IF_ERROR(source_->ReadInto(it->offset, it->size, out.data()));
  } else {
    out.resize(it->size);
    size_t done = 0;
    while (done < out.size()) {
      ssize_t got = ::pread(fd_, out.data() + done, out.size() - done, off_t(it->offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0)
        return Status::IOError("cannot read an edge tile from " + path_ + ": " +
                               (got < 0 ? std::strerror(errno) : "short file"));
      done += size_t(got);
    }
  }
  const auto* u = reinterpret_cast<const unsigned char*>(out.data());
  if (out.size() != it->size || !IsSoi(u) || !IsEoi(u + out.size() - 2)) return no;
  return std::optional<std::string>(std::move(out));
}

namespace {

// libtiff's view of a PyramidSource: reads served from 64 KiB blocks fetched through the
// source (so the directory walk costs a few ranged reads, not one per field).
struct SourceFile {
  const PyramidSource* source = nullptr;
  uint64_t size = 0;
  uint64_t pos = 0;
  std::map<uint64_t, std::string> blocks;
  Status error;
  static constexpr uint64_t kBlock = 64 * 1024;
};

tmsize_t SourceRead(thandle_t h, void* buf, tmsize_t n) {
  auto* f = static_cast<SourceFile*>(h);
  char* out = static_cast<char*>(buf);
  tmsize_t done = 0;
  if (n > 0 && f->source->ReadHeld(f->pos, size_t(n), out)) {
    f->pos += uint64_t(n);
    return n;
  }
  while (done < n && f->pos < f->size) {
    const uint64_t block = f->pos / SourceFile::kBlock * SourceFile::kBlock;
    auto it = f->blocks.find(block);
    if (it == f->blocks.end()) {
      auto got = f->source->ReadAt(block, size_t(std::min(SourceFile::kBlock, f->size - block)));
      if (!got.ok()) {
        f->error = got.status();
        return -1;
      }
      it = f->blocks.emplace(block, std::move(*got)).first;
    }
    const uint64_t in = f->pos - block;
    if (in >= it->second.size()) break;
    const size_t k = size_t(std::min<uint64_t>(uint64_t(n - done), it->second.size() - in));
    std::memcpy(out + done, it->second.data() + in, k);
    done += tmsize_t(k);
    f->pos += k;
  }
  return done;
}
tmsize_t SourceWrite(thandle_t, void*, tmsize_t) { return -1; }
toff_t SourceSeek(thandle_t h, toff_t off, int whence) {
  auto* f = static_cast<SourceFile*>(h);
  if (whence == SEEK_SET) f->pos = off;
  else if (whence == SEEK_CUR) f->pos += off;
  else if (whence == SEEK_END) f->pos = f->size + off;
  return f->pos;
}
int SourceClose(thandle_t) { return 0; }
toff_t SourceSize(thandle_t h) { return static_cast<SourceFile*>(h)->size; }
int SourceMap(thandle_t, void**, toff_t*) { return 0; }
void SourceUnmap(thandle_t, void*, toff_t) {}

}  // namespace

Result<std::shared_ptr<const PyramidIndex>> PyramidIndex::OpenSource(
    std::shared_ptr<const PyramidSource> source, const FileIdentity& identity,
    const std::string& name) {
  std::shared_ptr<PyramidIndex> index(new PyramidIndex());
  index->path_ = name;
  index->identity_ = identity;
  index->source_ = std::move(source);
  SourceFile file;
  file.source = index->source_.get();
  file.size = uint64_t(identity.size);
  TiffErrors errors;
  TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(opts, CaptureTiffError, &errors);
  TIFFOpenOptionsSetWarningHandlerExtR(opts, IgnoreTiffWarning, nullptr);
  TIFF* t = TIFFClientOpenExt(name.c_str(), "rmh", &file, SourceRead, SourceWrite, SourceSeek,
                              SourceClose, SourceSize, SourceMap, SourceUnmap, opts);
  TIFFOpenOptionsFree(opts);
  if (!t) {
    if (!file.error.ok()) return file.error;
    return Status::IOError("cannot open pyramid " + name + ": " + errors.last);
  }
  Status st = WalkDirectories(t, name, &errors, &index->info_, &index->levels_);
  if (!file.error.ok()) return file.error;  // a failed read, not a bad file
  if (!st.ok()) return st;
  const PyramidSource* src = index->source_.get();
  auto edges = ReadEdgeTable(file.size, [src](uint64_t at, size_t n) -> Result<std::string> {
    std::string out(n, '\0');
    if (src->ReadHeld(at, n, out.data())) return out;
    return src->ReadAt(at, n);
  });
  if (!edges.ok()) return edges.status();
  index->KeepEdges(std::move(*edges));
  return std::shared_ptr<const PyramidIndex>(std::move(index));
}

Result<std::string> PyramidIndex::RenderPath() const {
  if (source_) return source_->LocalCopy();
  return path_;
}

namespace {

Status WalkDirectories(TIFF* t, const std::string& path, TiffErrors* errors_ptr,
                       PyramidInfo* info_out, std::vector<IndexedLevel>* levels) {
  TiffErrors& errors = *errors_ptr;
  struct Closer {
    TIFF* t;
    ~Closer() { TIFFClose(t); }
  } closer{t};
  if (!TIFFSetDirectory(t, 0)) {
    return Status::IOError("pyramid " + path + " has no level 0: " + errors.last);
  }
  PyramidInfo& info = *info_out;
  do {
    uint32_t w = 0, h = 0, tw = 0, th = 0;
    if (!TIFFIsTiled(t) || !TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w) ||
        !TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h) || !TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw) ||
        !TIFFGetField(t, TIFFTAG_TILELENGTH, &th) || w == 0 || h == 0 || w > INT32_MAX ||
        h > INT32_MAX || tw == 0 || th == 0) {
      return Status::IOError("not a tiled pyramid: " + path);
    }
    if (info.levels.empty()) {
      info.width = int(w), info.height = int(h);
      info.tile_width = int(tw), info.tile_height = int(th);
    }
    info.levels.emplace_back(int(w), int(h));

    IndexedLevel L;
    L.width = int(w), L.height = int(h);
    L.tiles_across = int((w + tw - 1) / tw);
    L.tiles_down = int((h + th - 1) / th);
    uint16_t compression = 0, planar = PLANARCONFIG_CONTIG, bits = 0, samples = 0,
             photometric = 0;
    TIFFGetField(t, TIFFTAG_COMPRESSION, &compression);
    TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &planar);
    TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &bits);
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &samples);
    TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &photometric);
    L.samples = samples;
    bool usable = compression == COMPRESSION_JPEG && planar == PLANARCONFIG_CONTIG &&
                  bits == 8 && int(tw) == info.tile_width && int(th) == info.tile_height;
    // A JPEG stream says nothing about its colour space except through markers; decide
    // whether the bare tile decodes to the right colours. libvips writes YCbCr components
    // and no marker, which every decoder reads as YCbCr (the JFIF default).
    if (samples == 3 && photometric == PHOTOMETRIC_YCBCR) {
    } else if (samples == 3 && photometric == PHOTOMETRIC_RGB) {
      L.needs_adobe_rgb = true;
    } else if (samples == 1 && photometric == PHOTOMETRIC_MINISBLACK) {
    } else {
      usable = false;  // MinIsWhite, CMYK, alpha ...: not passed through as is
    }
    const uint64_t n_tiles = uint64_t(L.tiles_across) * uint64_t(L.tiles_down);
    uint64_t* offsets = nullptr;
    uint64_t* counts = nullptr;
    if (usable && TIFFNumberOfTiles(t) == n_tiles &&
        TIFFGetField(t, TIFFTAG_TILEOFFSETS, &offsets) && offsets &&
        TIFFGetField(t, TIFFTAG_TILEBYTECOUNTS, &counts) && counts) {
      L.offsets.assign(offsets, offsets + n_tiles);
      L.byte_counts.assign(counts, counts + n_tiles);
    } else {
      usable = false;
    }
    uint32_t tables_len = 0;
    const void* tables_data = nullptr;
    if (usable && TIFFGetField(t, TIFFTAG_JPEGTABLES, &tables_len, &tables_data) && tables_data &&
        tables_len > 0) {
      const auto* p = static_cast<const unsigned char*>(tables_data);
      if (tables_len >= 4 && IsSoi(p) && IsEoi(p + tables_len - 2)) {
        L.tables_body.assign(reinterpret_cast<const char*>(p) + 2, tables_len - 4);
      } else {
        usable = false;
      }
    }
    L.jpeg = usable;
    if (!usable) {
      L.offsets.clear();
      L.byte_counts.clear();
    }
    levels->push_back(std::move(L));
  } while (int(info.levels.size()) < kMaxLevels && TIFFReadDirectory(t));
  return Status::Ok();
}

}  // namespace


Result<std::optional<std::string>> PyramidIndex::TileJpeg(size_t k, int col, int row) const {
  const std::optional<std::string> no;
  if (k >= levels_.size()) return no;
  const IndexedLevel& L = levels_[k];
  if (!L.jpeg || col < 0 || row < 0 || col >= L.tiles_across || row >= L.tiles_down) return no;
  const size_t i = size_t(row) * size_t(L.tiles_across) + size_t(col);
  const uint64_t size = L.byte_counts[i], offset = L.offsets[i];
  if (size < 4 || size > kMaxTileBytes) return no;
  // SOI [APP14] tables-without-SOI/EOI tile-without-SOI. The tile keeps its own EOI. The
  // tile is read in place: its SOI lands on the last two header bytes, restored afterwards.
  const size_t header = 2 + (L.needs_adobe_rgb ? sizeof kAdobeRgbMarker : 0) + L.tables_body.size();
  std::string out;
  out.resize(header - 2 + size);
  char* p = out.data();
  p[0] = char(0xFF), p[1] = char(0xD8);
  size_t at = 2;
  if (L.needs_adobe_rgb) {
    std::memcpy(p + at, kAdobeRgbMarker, sizeof kAdobeRgbMarker);
    at += sizeof kAdobeRgbMarker;
  }
  std::memcpy(p + at, L.tables_body.data(), L.tables_body.size());
  const char saved[2] = {p[header - 2], p[header - 1]};
  size_t done = 0;
  if (source_) {
    QUIRE_RETURN_IF_ERROR(source_->ReadInto(offset, size_t(size), p + header - 2));
    done = size;
  }
  while (done < size) {
    ssize_t got = ::pread(fd_, p + header - 2 + done, size - done, off_t(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      return Status::IOError("cannot read tile from " + path_ + ": " +
                             (got < 0 ? std::strerror(errno) : "short file"));
    }
    done += size_t(got);
  }
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  if (!IsSoi(u + header - 2) || !IsEoi(u + out.size() - 2)) return no;
  p[header - 2] = saved[0], p[header - 1] = saved[1];
  return std::optional<std::string>(std::move(out));
}

// ---------------------------------------------------------------- fast paths

Result<std::optional<Rendered>> IndexedStoredTile(const PyramidIndex& index,
                                                  const ResolvedRequest& r) {
  const std::optional<Rendered> no;
  const PyramidInfo& info = index.info();
  const int tw = info.tile_width, th = info.tile_height;
  if (!PlainJpegRequest(r) || tw <= 0 || th <= 0 || r.width != tw || r.height != th ||
      r.region.w % tw != 0 || r.region.h % th != 0) {
    return no;
  }
  // The level is fixed by the region size: region = one tile at scale factor 2^k.
  const int sf = r.region.w / tw;
  if (r.region.h / th != sf || (sf & (sf - 1)) != 0) return no;
  const size_t k = size_t(std::countr_zero(unsigned(sf)));
  if (k >= info.levels.size() || !IsPowerOfTwoLevel(info, k)) return no;
  const int64_t span_x = int64_t(tw) * sf, span_y = int64_t(th) * sf;
  if (r.region.x % span_x != 0 || r.region.y % span_y != 0) return no;
  const int64_t col = r.region.x / span_x, row = r.region.y / span_y;
  const auto [lw, lh] = info.levels[k];
  // Edge tiles are padded in the file; those need decode + crop.
  if ((col + 1) * tw > lw || (row + 1) * th > lh) return no;
  auto jpeg = index.TileJpeg(k, int(col), int(row));
  if (!jpeg.ok()) return jpeg.status();
  if (!jpeg->has_value()) return no;
  return std::optional<Rendered>(Rendered{std::move(**jpeg), "image/jpeg"});
}

Result<std::optional<Rendered>> IndexedCroppedTile(const PyramidIndex& index,
                                                   const ResolvedRequest& r) {
  const std::optional<Rendered> no;
  const PyramidInfo& info = index.info();
  const int tw = info.tile_width, th = info.tile_height;
  if (!PlainJpegRequest(r) || tw <= 0 || th <= 0 || info.levels.empty() ||
      r.image_width != info.width || r.image_height != info.height) {
    return no;
  }
  const size_t k = ChooseLevel(info, r);
  const LevelRect rect = RegionOnLevel(info, k, r);
  const int cw = rect.x1 - rect.x0, ch = rect.y1 - rect.y0;
  if (cw != r.width || ch != r.height) return no;  // Render would resize
  const int col = rect.x0 / tw, row = rect.y0 / th;
  if ((rect.x1 - 1) / tw != col || (rect.y1 - 1) / th != row) return no;  // spans tiles
  const IndexedLevel& L = index.level(k);
  if (!L.jpeg || (L.samples != 3 && L.samples != 1)) return no;
  const int cx = rect.x0 - col * tw, cy = rect.y0 - row * th;
  Rendered out;
  out.content_type = "image/jpeg";
  // A padded edge tile cut at the image edge: stored as served, when ingest appended it.
  if (cx == 0 && cy == 0) {
    auto edge = index.EdgeJpeg(k, col, row, cw, ch);
    if (!edge.ok()) return edge.status();
    if (edge->has_value()) {
      out.bytes = std::move(**edge);
      return std::optional<Rendered>(std::move(out));
    }
  }
  auto jpeg = index.TileJpeg(k, col, row);
  if (!jpeg.ok()) return jpeg.status();
  if (!jpeg->has_value()) return no;

  const int samples = L.samples;
  const std::string& stream = **jpeg;
  // A crop from the tile's top-left corner (every edge tile, every small level) is cut from
  // the stored coefficients: the stored tile's own pixels, at a fraction of a decode and an
  // encode. Other crops decode, crop and encode like Render.
  if (cx == 0 && cy == 0 && CropJpegCoefficients(stream, cw, ch, &out.bytes))
    return std::optional<Rendered>(std::move(out));
  out.bytes.clear();
  thread_local std::vector<unsigned char> pixels;
  const size_t stride = size_t(tw) * samples;
  if (pixels.size() < stride * size_t(th)) pixels.resize(stride * size_t(th));
  if (!DecodeRows(reinterpret_cast<const unsigned char*>(stream.data()), stream.size(), samples,
                  L.needs_adobe_rgb, tw, cy + ch, pixels.data())) {
    return Status::IOError("cannot decode a stored tile of " + index.path());
  }
  if (!EncodeJpeg(pixels.data() + size_t(cy) * stride + size_t(cx) * samples, stride, cw, ch,
                  samples, &out.bytes)) {
    return Status::IOError("cannot encode a tile of " + index.path());
  }
  return std::optional<Rendered>(std::move(out));
}

bool EncodeJpegLikeRender(const unsigned char* pixels, size_t stride, int width, int height,
                          int samples, std::string* out) {
  return EncodeJpeg(pixels, stride, width, height, samples, out);
}

Status DecodeLevelRect(const PyramidIndex& index, size_t k, const LevelRect& rect,
                       unsigned char* out) {
  if (k >= index.level_count()) return Status::Invalid("no such level");
  const IndexedLevel& L = index.level(k);
  const PyramidInfo& info = index.info();
  const int tw = info.tile_width, th = info.tile_height;
  if (!L.jpeg || (L.samples != 1 && L.samples != 3) || tw <= 0 || th <= 0) {
    return Status::Unsupported("level " + std::to_string(k) + " is not decodable here");
  }
  const int samples = L.samples;
  const int w = rect.x1 - rect.x0;
  const size_t out_stride = size_t(w) * samples;
  const size_t tile_stride = size_t(tw) * samples;
  thread_local std::vector<unsigned char> tile_px, scratch;
  if (tile_px.size() < tile_stride * size_t(th)) tile_px.resize(tile_stride * size_t(th));
  if (scratch.size() < tile_stride) scratch.resize(tile_stride);
  for (int row = rect.y0 / th; row <= (rect.y1 - 1) / th; ++row) {
    const int ty0 = std::max(rect.y0, row * th), ty1 = std::min(rect.y1, (row + 1) * th);
    for (int col = rect.x0 / tw; col <= (rect.x1 - 1) / tw; ++col) {
      const int tx0 = std::max(rect.x0, col * tw), tx1 = std::min(rect.x1, (col + 1) * tw);
      auto jpeg = index.TileJpeg(k, col, row);
      if (!jpeg.ok()) return jpeg.status();
      if (!jpeg->has_value()) {
        return Status::Unsupported("a stored tile of " + index.path() + " is not plain JPEG");
      }
      const std::string& stream = **jpeg;
      const auto* data = reinterpret_cast<const unsigned char*>(stream.data());
      const int first = ty0 - row * th, last = ty1 - row * th;  // tile rows [first, last)
      unsigned char* dest = out + size_t(ty0 - rect.y0) * out_stride +
                            size_t(tx0 - rect.x0) * samples;
      bool ok;
      if (tx0 == col * tw && tx1 == (col + 1) * tw) {
        // The tile's full width lies inside: decode straight into place.
        ok = DecodeRows(data, stream.size(), samples, L.needs_adobe_rgb, tw, last, dest,
                        out_stride, first, scratch.data());
      } else {
        ok = DecodeRows(data, stream.size(), samples, L.needs_adobe_rgb, tw, last,
                        tile_px.data(), tile_stride, first, scratch.data());
        if (ok) {
          const size_t from = size_t(tx0 - col * tw) * samples, n = size_t(tx1 - tx0) * samples;
          for (int y = 0; y < last - first; ++y)
            std::memcpy(dest + size_t(y) * out_stride, tile_px.data() + size_t(y) * tile_stride + from, n);
        }
      }
      if (!ok) return Status::IOError("cannot decode a stored tile of " + index.path());
    }
  }
  return Status::Ok();
}

}  // namespace quire::iiif
