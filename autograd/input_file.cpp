#include "autograd/input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tessera::io {
namespace {

std::string errno_text() { return std::strerror(errno); }

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

}  // namespace

InputFile::InputFile(const std::filesystem::path& path, std::string_view op) : path_(path), op_(op) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd_ < 0) fail("cannot open: {}", errno_text());
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const std::string why = errno_text();
    ::close(fd_);
    fail("cannot stat: {}", why);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    fail("is {}, not a regular file", file_kind(st.st_mode));
  }
  size_ = static_cast<std::uint64_t>(st.st_size);
}

InputFile::~InputFile() { ::close(fd_); }

void InputFile::read_at(void* out, std::uint64_t bytes, std::uint64_t offset) const {
  char* p = static_cast<char*>(out);
  while (bytes > 0) {
    const ssize_t n =
        ::pread(fd_, p, std::min<std::uint64_t>(bytes, std::uint64_t{1} << 30), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("read failed: {}", errno_text());
    if (n == 0) fail("the file ended early at byte {} (was it truncated while reading?)", offset);
    p += n;
    offset += static_cast<std::uint64_t>(n);
    bytes -= static_cast<std::uint64_t>(n);
  }
}

std::string InputFile::read_all(std::uint64_t max_bytes) const {
  if (size_ > max_bytes) fail("is {} bytes; at most {} are read", size_, max_bytes);
  std::string text(static_cast<std::size_t>(size_), '\0');
  read_at(text.data(), size_, 0);
  return text;
}

std::string read_regular_file(const std::filesystem::path& path, std::uint64_t max_bytes, std::string_view op) {
  return InputFile(path, op).read_all(max_bytes);
}

}  // namespace tessera::io
