// Status and Result<T>: how braid reports errors across module boundaries.
// No exceptions cross the request path; third-party exceptions are caught in
// their adapters and turned into a Status. The codes are chosen so that one
// function (in the API layer) can map them to HTTP and gRPC codes.
#pragma once

#include <fmt/format.h>

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace braid {

enum class StatusCode {
  kOk,
  kInvalidArgument,     // bad input: HTTP 400, gRPC INVALID_ARGUMENT
  kUnauthenticated,     // missing or wrong key: 401, UNAUTHENTICATED
  kNotFound,            // unknown model, version, workflow, file: 404, NOT_FOUND
  kTooLarge,            // body, tensor or media past a limit: 413, OUT_OF_RANGE
  kResourceExhausted,   // shed by queue policy or admission control: 429
  kUnavailable,         // not ready, draining, model unavailable: 503
  kDeadlineExceeded,    // timed out while queued or running: 504
  kCancelled,           // the client went away
  kFailedPrecondition,  // the operation is not valid in the current state
  kUnimplemented,       // not supported by this build or backend
  kInternal,            // a bug or an unexpected failure of a library
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "CODE: message", for logs.
  std::string ToString() const;

  // The same status with `context: ` put in front of its message.
  Status WithContext(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <typename... Args>
Status MakeStatus(StatusCode code, fmt::format_string<Args...> format, Args&&... args) {
  return Status(code, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
Status InvalidArgument(fmt::format_string<Args...> format, Args&&... args) {
  return MakeStatus(StatusCode::kInvalidArgument, format, std::forward<Args>(args)...);
}
template <typename... Args>
Status NotFound(fmt::format_string<Args...> format, Args&&... args) {
  return MakeStatus(StatusCode::kNotFound, format, std::forward<Args>(args)...);
}
template <typename... Args>
Status Unavailable(fmt::format_string<Args...> format, Args&&... args) {
  return MakeStatus(StatusCode::kUnavailable, format, std::forward<Args>(args)...);
}
template <typename... Args>
Status Internal(fmt::format_string<Args...> format, Args&&... args) {
  return MakeStatus(StatusCode::kInternal, format, std::forward<Args>(args)...);
}

// A value or the Status explaining why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}
  Result(Status status) : state_(std::move(status)) {
    assert(!std::get<Status>(state_).ok() && "a Result needs a value or an error");
  }

  bool ok() const { return std::holds_alternative<T>(state_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(state_);
  }

  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> state_;
};

}  // namespace braid

// Returns the status of `expr` from the enclosing function if it is an error.
#define BRAID_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::braid::Status braid_status_ = (expr);        \
    if (!braid_status_.ok()) return braid_status_; \
  } while (false)

#define BRAID_CONCAT_INNER(a, b) a##b
#define BRAID_CONCAT(a, b) BRAID_CONCAT_INNER(a, b)
#define BRAID_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

// `BRAID_ASSIGN_OR_RETURN(auto x, F());` binds F()'s value or returns its error.
#define BRAID_ASSIGN_OR_RETURN(lhs, expr) \
  BRAID_ASSIGN_OR_RETURN_IMPL(BRAID_CONCAT(braid_result_, __LINE__), lhs, expr)
