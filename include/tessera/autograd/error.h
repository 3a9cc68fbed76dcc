// The exception hierarchy: every library failure is a tessera::Error with a message that
// names the function and the offending shapes or values.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace tessera {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ShapeError : public Error { public: using Error::Error; };   // incompatible shapes or axes
class DTypeError : public Error { public: using Error::Error; };   // unsupported or mixed dtypes
class DeviceError : public Error { public: using Error::Error; };  // mixed devices, CUDA failures
class AutogradError : public Error { public: using Error::Error; };
class ConfigError : public Error { public: using Error::Error; };  // YAML / CLI settings
class DataError : public Error { public: using Error::Error; };    // dataset files and samples
class IoError : public Error { public: using Error::Error; };      // files, checkpoints

// Throws E with a fmt-formatted message: TESSERA_CHECK(cond, ShapeError, "matmul: ...", ...).
#define TESSERA_CHECK(cond, ErrorType, ...)                         \
  do {                                                             \
    if (!(cond)) [[unlikely]] throw ErrorType(fmt::format(__VA_ARGS__)); \
  } while (0)

}  // namespace tessera
