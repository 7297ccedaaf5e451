// Status and Result<T>: the error vocabulary every module returns across its API.
//
// No exception crosses a module boundary; adapters convert third-party exceptions into a
// Status at the call site. A Status carries a code (what kind of failure, which each wire
// surface maps to one HTTP status or ack error name) and a human-readable message.
// Both types are plain values: copyable, not thread-safe to mutate concurrently.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace hubcast {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // bad input: HTTP 400 / ack "BadRequest"
  kUnauthorized,      // missing or invalid credentials: HTTP 401
  kForbidden,         // valid caller, not allowed: HTTP 403 / ack "Forbidden"
  kNotFound,          // HTTP 404 / ack "NotFound"
  kDuplicate,         // ackId already processed: ack "Duplicate"
  kTooLarge,          // over a size limit: HTTP 413 / close 1009
  kUnsupportedMedia,  // HTTP 415
  kUnavailable,       // transient, retry later: HTTP 503
  kInternal,          // a bug or an unexpected failure: HTTP 500 / ack "InternalServerError"
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) {
    return {StatusCode::kInvalidArgument, std::move(m)};
  }
  static Status Unauthorized(std::string m) { return {StatusCode::kUnauthorized, std::move(m)}; }
  static Status Forbidden(std::string m) { return {StatusCode::kForbidden, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status Duplicate(std::string m) { return {StatusCode::kDuplicate, std::move(m)}; }
  static Status TooLarge(std::string m) { return {StatusCode::kTooLarge, std::move(m)}; }
  static Status UnsupportedMedia(std::string m) {
    return {StatusCode::kUnsupportedMedia, std::move(m)};
  }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).ok()); }  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
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

}  // namespace hubcast
