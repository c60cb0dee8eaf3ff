// A libvips output target on a local file that never reports a failed write back to libvips.
//
// Why: libvips 8.14.1's TIFF writer crashes (TIFFClose -> TIFFFlush -> vips_target_seek, a
// use of the already-ended target) when a write fails part-way, as it does when the disk
// fills, and it can also finish "successfully" with a truncated file. This target performs
// the writes itself, remembers the first failure (or the moment the volume's free space
// falls under the reserve) and from then on discards the bytes while telling libvips they
// were written. The save always runs to its end; the caller asks status() afterwards and
// throws the file away when it is not ok. The file is fsynced when libvips ends the target.
//
// Not thread-safe: one save at a time (libvips calls a target from one thread at a time).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vips/vips8>

#include "core/status.h"

namespace quire {

class GuardedFileTarget {
 public:
  // Creates (truncates) `path`. `reserve_bytes`: writing stops with an error once the
  // filesystem has less than this free (checked every few MiB); 0 disables the check.
  static Result<std::unique_ptr<GuardedFileTarget>> Create(const std::string& path,
                                                           int64_t reserve_bytes);
  ~GuardedFileTarget();
  GuardedFileTarget(const GuardedFileTarget&) = delete;
  GuardedFileTarget& operator=(const GuardedFileTarget&) = delete;

  // The target to hand to tiffsave_target. Valid while this object lives.
  vips::VTarget target() const;
  // Ok, or kIOError "cannot write PATH: <cause>" for the first failure.
  Status status() const;
  int64_t size() const { return size_; }

 private:
  GuardedFileTarget() = default;
  static gint64 OnWrite(VipsTargetCustom*, const void* data, gint64 length, void* self);
  static gint64 OnRead(VipsTargetCustom*, void* buffer, gint64 length, void* self);
  static gint64 OnSeek(VipsTargetCustom*, gint64 offset, int whence, void* self);
  static int OnEnd(VipsTargetCustom*, void* self);
  void Fail(const std::string& cause);

  std::string path_;
  int fd_ = -1;
  int64_t reserve_bytes_ = 0;
  int64_t pos_ = 0;
  int64_t size_ = 0;            // logical size, as libvips believes it
  int64_t next_space_check_ = 0;
  std::string error_;           // first failure; empty while all is well
  VipsTargetCustom* custom_ = nullptr;
};

}  // namespace quire
