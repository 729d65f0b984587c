// One error vocabulary for the whole engine (style.md habit 3).
//   UV_CHECK(cond, msg)    internal invariant; always on (never assert: Release defines NDEBUG).
//   UV_REQUIRE(cond, msg)  bad input from the user (data file, config value, flag, checkpoint);
//                          main() maps it to exit code 2.
// Both throw; library code never exits. `msg` is a stream expression: UV_REQUIRE(r <= k, "rank " << r).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace uv {

// An engine bug or an environment failure (exit code 1).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad input the user can fix: names the file, field or value (exit code 2).
class UserError : public Error {
 public:
  using Error::Error;
};

namespace detail {
[[noreturn]] void throw_error(bool user, const char* expr, const char* file, int line,
                              const std::string& msg);
}  // namespace detail

}  // namespace uv

#define UV_CHECK(cond, msg)                                                            \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::ostringstream uv_msg_stream_;                                               \
      uv_msg_stream_ << msg;                                                           \
      ::uv::detail::throw_error(false, #cond, __FILE__, __LINE__, uv_msg_stream_.str()); \
    }                                                                                  \
  } while (0)

#define UV_REQUIRE(cond, msg)                                                         \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::ostringstream uv_msg_stream_;                                              \
      uv_msg_stream_ << msg;                                                          \
      ::uv::detail::throw_error(true, #cond, __FILE__, __LINE__, uv_msg_stream_.str()); \
    }                                                                                 \
  } while (0)

// Unconditional user error, for branches that already know the input is bad.
#define UV_FAIL(msg) UV_REQUIRE(false, msg)
