// Reading files that come from outside: regular files only (a FIFO, a device or a directory
// is refused on the opened descriptor, so neither a hang nor an endless read is possible),
// with sizes bounded before anything is read.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "tessera/autograd/error.h"

namespace tessera::io {

class InputFile {
 public:
  // `op` names the caller in messages: "<op>: '<path>': <what went wrong>". IoError unless
  // the path names a regular file that can be opened.
  InputFile(const std::filesystem::path& path, std::string_view op);
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  ~InputFile();

  std::uint64_t size() const { return size_; }
  // Reads exactly `bytes` at `offset`; IoError when the file ends first.
  void read_at(void* out, std::uint64_t bytes, std::uint64_t offset) const;
  // The whole file; IoError when it is larger than max_bytes.
  std::string read_all(std::uint64_t max_bytes) const;

  template <class... Args>
  [[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) const {
    throw IoError(fmt::format("{}: '{}': {}", op_, path_.string(), fmt::format(format, std::forward<Args>(args)...)));
  }

 private:
  std::filesystem::path path_;
  std::string op_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

// The whole of a regular file of at most max_bytes (see InputFile).
std::string read_regular_file(const std::filesystem::path& path, std::uint64_t max_bytes, std::string_view op);

}  // namespace tessera::io
