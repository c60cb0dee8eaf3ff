#include "blob/tiff_structure.h"

#include "blob/pyramid_edges.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

namespace quire {
namespace {

constexpr uint64_t kMaxStructureBytes = 64u << 20;
constexpr int kMaxDirectories = 64;
constexpr char kMagic[] = "QUIRE-TIFF-STRUCTURE-1\n";

class File {
 public:
  explicit File(int fd, uint64_t size) : fd_(fd), size_(size) {}
  // Reads [offset, offset + n) and remembers it as part of the structure.
  bool Read(uint64_t offset, uint64_t n, std::string* out) {
    if (n > kMaxStructureBytes || offset > size_ || n > size_ - offset) return false;
    total_ += n;
    if (total_ > kMaxStructureBytes) return false;
    out->resize(size_t(n));
    size_t done = 0;
    while (done < n) {
      ssize_t got = ::pread(fd_, out->data() + done, size_t(n) - done, off_t(offset + done));
      if (got <= 0) return false;
      done += size_t(got);
    }
    ranges_.emplace_back(offset, offset + n);
    return true;
  }
  const std::vector<std::pair<uint64_t, uint64_t>>& ranges() const { return ranges_; }
  uint64_t size() const { return size_; }

 private:
  int fd_;
  uint64_t size_, total_ = 0;
  std::vector<std::pair<uint64_t, uint64_t>> ranges_;
};

uint64_t Get(const std::string& b, size_t at, int width, bool little) {
  uint64_t v = 0;
  for (int i = 0; i < width; ++i) {
    uint64_t byte = static_cast<unsigned char>(b[at + size_t(i)]);
    v |= little ? byte << (8 * i) : byte << (8 * (width - 1 - i));
  }
  return v;
}

uint64_t TypeSize(uint64_t type) {
  switch (type) {
    case 1: case 2: case 6: case 7: return 1;    // BYTE ASCII SBYTE UNDEFINED
    case 3: case 8: return 2;                     // SHORT SSHORT
    case 4: case 9: case 11: case 13: return 4;   // LONG SLONG FLOAT IFD
    case 5: case 10: case 12: case 16: case 17: case 18: return 8;  // RATIONAL… LONG8 IFD8
    default: return 0;
  }
}

}  // namespace

Result<std::vector<ByteExtent>> ReadTiffStructure(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("cannot open " + path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return Status::IOError("cannot stat " + path);
  }
  File f(fd, uint64_t(st.st_size));
  auto fail = [&](const std::string& why) {
    ::close(fd);
    return Status::Invalid(path + " is not a TIFF this reader knows: " + why);
  };
  std::string h;
  if (!f.Read(0, 8, &h)) return fail("no header");
  const bool little = h[0] == 'I' && h[1] == 'I';
  if (!little && !(h[0] == 'M' && h[1] == 'M')) return fail("byte order");
  const uint64_t magic = Get(h, 2, 2, little);
  const bool big = magic == 43;
  if (!big && magic != 42) return fail("magic");
  uint64_t ifd = 0;
  if (big) {
    std::string h2;
    if (!f.Read(8, 8, &h2)) return fail("no BigTIFF header");
    ifd = Get(h2, 0, 8, little);
  } else {
    ifd = Get(h, 4, 4, little);
  }
  const int count_width = big ? 8 : 2, entry = big ? 20 : 12, value_width = big ? 8 : 4;
  std::set<uint64_t> seen;
  for (int d = 0; ifd != 0 && d < kMaxDirectories; ++d) {
    if (!seen.insert(ifd).second) return fail("directory loop");
    std::string c;
    if (!f.Read(ifd, uint64_t(count_width), &c)) return fail("directory count");
    const uint64_t n = Get(c, 0, count_width, little);
    std::string body;
    if (!f.Read(ifd + uint64_t(count_width), n * uint64_t(entry) + uint64_t(value_width), &body))
      return fail("directory");
    uint64_t first_data = 0, first_count = 0;
    for (uint64_t i = 0; i < n; ++i) {
      const size_t e = size_t(i) * size_t(entry);
      const uint64_t tag = Get(body, e, 2, little);
      const uint64_t type = Get(body, e + 2, 2, little);
      const uint64_t count = Get(body, e + 4, value_width, little);
      const uint64_t width = TypeSize(type), bytes = width * count;
      std::string value;
      if (bytes > uint64_t(value_width)) {  // the value lives elsewhere in the file
        if (!f.Read(Get(body, e + 4 + size_t(value_width), value_width, little), bytes, &value))
          return fail("tag value");
      } else {
        value = body.substr(e + 4 + size_t(value_width), size_t(value_width));
      }
      // The first tile's (or strip's) offset and size: see below.
      if (count > 0 && (width == 2 || width == 4 || width == 8)) {
        if (tag == 324 || tag == 273) first_data = Get(value, 0, int(width), little);
        if (tag == 325 || tag == 279) first_count = Get(value, 0, int(width), little);
      }
    }
    // libtiff reads the start of a directory's first JPEG tile while reading the directory
    // (to check the YCbCr subsampling against the JPEG header), in 2 KiB pieces.
    if (first_data > 0 && first_count > 0) {
      std::string head;
      if (!f.Read(first_data, std::min<uint64_t>(2048, first_count), &head))
        return fail("first tile");
    }
    ifd = Get(body, size_t(n) * size_t(entry), value_width, little);
  }
  // The edge tiles' table and footer past the TIFF (blob/pyramid_edges.h), when there are.
  if (f.size() >= kEdgeFooterBytes) {
    std::string footer;
    if (f.Read(f.size() - kEdgeFooterBytes, kEdgeFooterBytes, &footer)) {
      const auto [at, n] = EdgeTableExtent(footer, f.size());
      std::string table;
      if (n > 0 && !f.Read(at, n, &table)) return fail("edge tile table");
    }
  }
  // Merge what was read into sorted, disjoint extents (adjacent ones joined).
  auto ranges = f.ranges();
  std::sort(ranges.begin(), ranges.end());
  std::vector<std::pair<uint64_t, uint64_t>> merged;
  for (const auto& r : ranges) {
    if (!merged.empty() && r.first <= merged.back().second) {
      merged.back().second = std::max(merged.back().second, r.second);
    } else {
      merged.push_back(r);
    }
  }
  std::vector<ByteExtent> out;
  for (const auto& [a, b] : merged) {
    ByteExtent x;
    x.offset = a;
    if (!f.Read(a, b - a, &x.bytes) && b > a) return fail("reread");
    out.push_back(std::move(x));
  }
  ::close(fd);
  return out;
}

std::string EncodeTiffStructure(const std::vector<ByteExtent>& extents,
                                const std::string& version) {
  std::string out = kMagic;
  out += version + "\n" + std::to_string(extents.size()) + "\n";
  for (const ByteExtent& e : extents)
    out += std::to_string(e.offset) + " " + std::to_string(e.bytes.size()) + "\n";
  for (const ByteExtent& e : extents) out += e.bytes;
  return out;
}

Result<std::vector<ByteExtent>> DecodeTiffStructure(const std::string& blob,
                                                    std::string* version) {
  const Status bad = Status::Invalid("not a TIFF structure blob");
  if (blob.compare(0, std::strlen(kMagic), kMagic) != 0) return bad;
  size_t at = std::strlen(kMagic);
  auto line = [&](std::string* out) {
    size_t nl = blob.find('\n', at);
    if (nl == std::string::npos) return false;
    *out = blob.substr(at, nl - at);
    at = nl + 1;
    return true;
  };
  std::string v, n;
  if (!line(&v) || !line(&n)) return bad;
  const uint64_t count = std::strtoull(n.c_str(), nullptr, 10);
  if (count > 100000) return bad;
  std::vector<ByteExtent> out(count);
  std::vector<uint64_t> sizes(count);
  for (uint64_t i = 0; i < count; ++i) {
    std::string l;
    if (!line(&l)) return bad;
    char* end = nullptr;
    out[i].offset = std::strtoull(l.c_str(), &end, 10);
    sizes[i] = std::strtoull(end, nullptr, 10);
  }
  for (uint64_t i = 0; i < count; ++i) {
    if (sizes[i] > blob.size() - at) return bad;
    out[i].bytes = blob.substr(at, size_t(sizes[i]));
    at += size_t(sizes[i]);
  }
  if (at != blob.size()) return bad;
  *version = v;
  return out;
}

}  // namespace quire
