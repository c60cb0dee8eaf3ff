// Status and Result<T>: errors are values. A handful of codes that api/ maps to HTTP once.
// Exceptions from libvips, Boost or the standard library are caught at the edge that calls
// them and turned into a Status; none crosses a module boundary.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace quire {

enum class Code {
  kOk,
  kInvalid,      // bad input: 400
  kNotFound,     // 404
  kConflict,     // 409
  kUnauthorized, // 401
  kForbidden,    // 403
  kTooLarge,     // 413
  kInsufficientStorage,  // 507: a storage policy (quota) would be exceeded
  kUnsupported,  // 501 (valid but not implemented)
  kUnavailable,  // 503 / transient failure worth retrying
  kIOError,      // storage failure
  kInternal,     // a defect
};

class Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status Invalid(std::string m) { return {Code::kInvalid, std::move(m)}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status Conflict(std::string m) { return {Code::kConflict, std::move(m)}; }
  static Status Unauthorized(std::string m) { return {Code::kUnauthorized, std::move(m)}; }
  static Status Forbidden(std::string m) { return {Code::kForbidden, std::move(m)}; }
  static Status TooLarge(std::string m) { return {Code::kTooLarge, std::move(m)}; }
  static Status InsufficientStorage(std::string m) {
    return {Code::kInsufficientStorage, std::move(m)};
  }
  static Status Unsupported(std::string m) { return {Code::kUnsupported, std::move(m)}; }
  static Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status IOError(std::string m) { return {Code::kIOError, std::move(m)}; }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// Result<T> holds either a value or a non-ok Status.
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

#define QUIRE_RETURN_IF_ERROR(expr)          \
  do {                                       \
    ::quire::Status _st = (expr);            \
    if (!_st.ok()) return _st;               \
  } while (0)

}  // namespace quire
