// Helpers shared by the dataset readers: files opened only when they are regular files and
// read as a stream (gzip transparently), memory checks, content checksums, and a parallel
// loop that carries exceptions out of OpenMP.
#pragma once

#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "tessera/datasets/dataset.h"

namespace tessera::datasets::detail {

// A dataset file open for one sequential read. Every dataset file comes from outside, so it
// is checked on the opened descriptor to be a regular file: a FIFO would block the read
// forever and a device such as /dev/zero never ends. Reading is a stream, so a reader can
// check a header before it commits memory to what the header promises.
class InputFile {
 public:
  enum class Content { gzip_or_raw, raw };  // gzip is recognised by its content, not its name

  // IoError naming the path and what it is when it is missing, a dangling symbolic link,
  // a directory, FIFO, device or socket, or cannot be opened.
  explicit InputFile(const std::filesystem::path& path, Content content = Content::gzip_or_raw);
  ~InputFile();
  InputFile(InputFile&& other) noexcept;
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  InputFile& operator=(InputFile&&) = delete;

  // Fills `out` and returns its size, or fewer bytes at the end of the (decompressed)
  // content. IoError when the read fails, DataError when gzip data is corrupt or truncated.
  std::size_t read(std::span<std::uint8_t> out);

  const std::filesystem::path& path() const { return path_; }
  bool gzipped() const { return gzipped_; }
  std::uint64_t file_size() const { return file_size_; }    // on disk, when it was opened
  std::uint64_t bytes_read() const { return bytes_read_; }  // decompressed, so far

 private:
  std::filesystem::path path_;
  int fd_ = -1;           // raw reads; -1 once owned by gz_
  void* gz_ = nullptr;    // gzFile: zlib's handle, kept out of this header
  bool gzipped_ = false;
  std::uint64_t file_size_ = 0, bytes_read_ = 0;
};

// Why `path` is not a file to read ("a directory", "a FIFO (named pipe)", "a dangling
// symbolic link to x", ...), from the path itself; empty for a regular file. For listings,
// which should name such an entry before anything is opened.
std::string not_a_regular_file(const std::filesystem::path& path);

// Deflate cannot expand one compressed byte into more than about 1032 bytes (a 258-byte
// match in 2 bits), so a gzip file of n bytes promising more is truncated or hostile.
inline constexpr std::uint64_t kMaxDeflateRatio = 1032;

// DataError "<what>: needs <bytes> of memory, but only <available> is available" when
// `bytes` is more than the memory available now.
void check_fits_in_memory(unsigned __int128 bytes, const std::string& what);

std::uint32_t crc32(std::span<const std::uint8_t> bytes, std::uint32_t crc = 0);
std::string crc32_digest(std::uint32_t crc);                  // "crc32:1a2b3c4d"
std::string crc32_digest(std::span<const std::uint8_t> bytes);

// A fingerprint entry for content read from `path`: named by the file name without ".gz".
FingerprintEntry content_entry(const std::filesystem::path& path, std::span<const std::uint8_t> content);
FingerprintEntry content_entry(const std::filesystem::path& path, std::uint64_t bytes, std::uint32_t crc);

// Calls fn(begin, end) on chunks of [0, n) in parallel (OpenMP). An exception thrown by fn
// cannot cross the OpenMP region, so it is caught and the one from the lowest chunk is
// rethrown afterwards: the error a caller sees does not depend on thread timing.
void parallel_chunks(std::int64_t n, std::int64_t chunk,
                     const std::function<void(std::int64_t, std::int64_t)>& fn);

}  // namespace tessera::datasets::detail
