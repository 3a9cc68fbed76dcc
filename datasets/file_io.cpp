#include "datasets/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <mutex>
#include <system_error>

#include <fmt/format.h>
#include <zlib.h>

namespace tessera::datasets::detail {
namespace {

namespace fs = std::filesystem;

// std::strerror is not thread-safe, and the loader's workers open image files concurrently.
std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

std::string link_note(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_symlink(fs::symlink_status(path, ec))) return "";
  const fs::path target = fs::read_symlink(path, ec);
  return ec ? " (through a symbolic link)" : fmt::format(" (a symbolic link to {})", target.string());
}

std::string describe_not_regular(const fs::path& path, mode_t mode) {
  const char* kind = S_ISDIR(mode)    ? "a directory"
                     : S_ISFIFO(mode) ? "a FIFO (named pipe)"
                     : S_ISCHR(mode)  ? "a character device"
                     : S_ISBLK(mode)  ? "a block device"
                     : S_ISSOCK(mode) ? "a socket"
                                      : "of an unknown file type";
  return fmt::format("{}{}, not a regular file", kind, link_note(path));
}

// Why stat() failed with `err`: a missing file, a link pointing nowhere, or the system's word.
std::string missing_reason(const fs::path& path, int err) {
  if (err != ENOENT) return errno_text(err);
  struct stat link {};
  if (::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode)) {
    std::error_code ec;
    return fmt::format("a dangling symbolic link to {}", fs::read_symlink(path, ec).string());
  }
  return "no such file";
}

gzFile as_gz(void* p) { return static_cast<gzFile>(p); }

}  // namespace

std::string not_a_regular_file(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return missing_reason(path, errno);
  return S_ISREG(st.st_mode) ? "" : describe_not_regular(path, st.st_mode);
}

InputFile::InputFile(const fs::path& path, Content content) : path_(path) {
  // O_NONBLOCK: opening a FIFO blocks until a writer comes; with it, the open returns and
  // fstat below refuses the FIFO. It is cleared again for the regular file.
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd_ < 0) {
    const int err = errno;
    const std::string why = not_a_regular_file(path);
    throw IoError(fmt::format("{}: cannot open: {}", path.string(), why.empty() ? errno_text(err) : why));
  }
  struct stat st {};
  const int stat_err = ::fstat(fd_, &st) == 0 ? 0 : errno;
  if (stat_err != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw IoError(fmt::format("{}: cannot open: {}", path.string(),
                              stat_err ? errno_text(stat_err) : describe_not_regular(path, st.st_mode)));
  }
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
  file_size_ = static_cast<std::uint64_t>(st.st_size);
  if (content == Content::raw) return;
  gzFile gz = gzdopen(fd_, "rb");
  if (gz == nullptr) {
    ::close(fd_);
    throw IoError(fmt::format("{}: cannot open: out of memory", path.string()));
  }
  fd_ = -1;  // gzclose closes it
  gz_ = gz;
  gzbuffer(gz, 1 << 17);
  gzipped_ = gzdirect(gz) == 0;
}

InputFile::InputFile(InputFile&& other) noexcept
    : path_(std::move(other.path_)), fd_(other.fd_), gz_(other.gz_), gzipped_(other.gzipped_),
      file_size_(other.file_size_), bytes_read_(other.bytes_read_) {
  other.fd_ = -1;
  other.gz_ = nullptr;
}

InputFile::~InputFile() {
  if (gz_ != nullptr) gzclose_r(as_gz(gz_));
  if (fd_ >= 0) ::close(fd_);
}

std::size_t InputFile::read(std::span<std::uint8_t> out) {
  std::size_t got = 0;
  if (gz_ == nullptr) {
    while (got < out.size()) {
      const ssize_t n = ::read(fd_, out.data() + got, std::min<std::size_t>(out.size() - got, 1u << 30));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw IoError(fmt::format("{}: read failed: {}", path_.string(), errno_text(errno)));
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
    }
    bytes_read_ += got;
    return got;
  }
  while (got < out.size()) {
    const auto want = static_cast<unsigned>(std::min<std::size_t>(out.size() - got, 1u << 30));
    const int n = gzread(as_gz(gz_), out.data() + got, want);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  const int read_errno = errno;
  bytes_read_ += got;
  if (got < out.size()) {  // the end, or an error zlib holds until asked
    int err = Z_OK;
    const char* msg = gzerror(as_gz(gz_), &err);
    if (err == Z_ERRNO)
      throw IoError(fmt::format("{}: read failed: {}", path_.string(), errno_text(read_errno)));
    if (err != Z_OK)
      throw DataError(fmt::format("{}: corrupt gzip data ({}) after {} decompressed bytes", path_.string(),
                                  msg ? msg : "", bytes_read_));
  }
  return got;
}

void check_fits_in_memory(unsigned __int128 bytes, const std::string& what) {
  const std::size_t have = available_system_memory();
  TESSERA_CHECK(bytes <= have, DataError, "{}: needs {} of memory, but only {} is available", what,
                format_bytes(bytes >> 64 ? UINT64_MAX : static_cast<std::uint64_t>(bytes)), format_bytes(have));
}

std::uint32_t crc32(std::span<const std::uint8_t> bytes, std::uint32_t crc) {
  return static_cast<std::uint32_t>(::crc32_z(crc, bytes.data(), bytes.size()));
}

std::string crc32_digest(std::uint32_t crc) { return fmt::format("crc32:{:08x}", crc); }

std::string crc32_digest(std::span<const std::uint8_t> bytes) { return crc32_digest(crc32(bytes)); }

FingerprintEntry content_entry(const fs::path& path, std::uint64_t bytes, std::uint32_t crc) {
  std::string name = path.filename().string();
  if (name.size() > 3 && name.ends_with(".gz")) name.resize(name.size() - 3);
  return {name, bytes, crc32_digest(crc)};
}

FingerprintEntry content_entry(const fs::path& path, std::span<const std::uint8_t> content) {
  return content_entry(path, content.size(), crc32(content));
}

void parallel_chunks(std::int64_t n, std::int64_t chunk,
                     const std::function<void(std::int64_t, std::int64_t)>& fn) {
  if (n <= 0) return;
  chunk = std::max<std::int64_t>(chunk, 1);
  const std::int64_t chunks = (n + chunk - 1) / chunk;
  std::mutex mutex;
  std::int64_t failed_chunk = chunks;
  std::exception_ptr failure;
#pragma omp parallel for schedule(dynamic, 1)
  for (std::int64_t c = 0; c < chunks; ++c) {
    try {
      fn(c * chunk, std::min(n, (c + 1) * chunk));
    } catch (...) {
      std::lock_guard lock(mutex);
      if (c < failed_chunk) {
        failed_chunk = c;
        failure = std::current_exception();
      }
    }
  }
  if (failure) std::rethrow_exception(failure);
}

}  // namespace tessera::datasets::detail
