// Status: a cheap value describing success or a failure with a precise message.
// Thread-safety: a Status is an immutable value; copies may be used from any thread.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace omni {

// Values match omni_status in include/omnirt.h (0 = OK). Append only.
enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = 1,  // a caller passed a bad value (null handle, bad size, bad token id)
  kNotFound = 2,         // a file, key or tensor that should exist does not
  kIoError = 3,          // open/read/mmap/write failed
  kCorruptFile = 4,      // a file's bytes violate its format
  kUnsupported = 5,      // valid, but not something omnirt implements (unknown arch, tensor type)
  kOutOfRange = 6,       // a value is outside what is allowed (context full, token id too big)
  kOutOfMemory = 7,
  kWrongState = 8,       // an API call made in the wrong order
  kInternal = 9,         // a bug in omnirt
  kCancelled = 10,       // stopped on request
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "corrupt file: tensor 'x' data out of bounds" style, for logs and the CLI.
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// printf-style message builder: Status err(StatusCode::kCorruptFile, fmt("bad magic 0x%08x", m)).
std::string fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));

inline Status invalid_argument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status corrupt_file(std::string m) { return {StatusCode::kCorruptFile, std::move(m)}; }
inline Status unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
inline Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status io_error(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status out_of_range(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status wrong_state(std::string m) { return {StatusCode::kWrongState, std::move(m)}; }
inline Status internal_error(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// A value or the Status explaining why there is none.
template <class T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : v_(std::move(value)) {}                       // NOLINT: implicit by design
  StatusOr(Status status) : v_(std::move(status)) {}                // NOLINT: must not be ok()
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
  T& operator*() { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace omni

#define OMNI_RETURN_IF_ERROR(expr)          \
  do {                                      \
    ::omni::Status omni_status_ = (expr);   \
    if (!omni_status_.ok()) return omni_status_; \
  } while (0)

#define OMNI_CONCAT_INNER(a, b) a##b
#define OMNI_CONCAT(a, b) OMNI_CONCAT_INNER(a, b)
#define OMNI_ASSIGN_OR_RETURN(lhs, expr) \
  OMNI_ASSIGN_OR_RETURN_IMPL(OMNI_CONCAT(omni_so_, __LINE__), lhs, expr)
#define OMNI_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()
