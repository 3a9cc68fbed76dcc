#include "datasets/file_io.h"

#include <cerrno>
#include <cstring>
#include <mutex>

#include <fmt/format.h>
#include <zlib.h>

namespace tessera::datasets::detail {

FileContent read_file(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  TESSERA_CHECK(fs::exists(status), IoError, "{}: cannot open: no such file", path.string());
  TESSERA_CHECK(fs::is_regular_file(status), IoError, "{}: cannot open: not a regular file",
                path.string());
  const std::uintmax_t on_disk = fs::file_size(path, ec);

  errno = 0;
  gzFile f = gzopen(path.c_str(), "rb");
  TESSERA_CHECK(f != nullptr, IoError, "{}: cannot open: {}", path.string(),
                errno ? std::strerror(errno) : "out of memory");
  gzbuffer(f, 1 << 17);

  FileContent out;
  out.bytes.resize(ec ? std::uintmax_t{1} << 20 : std::max<std::uintmax_t>(on_disk, 1));
  std::size_t got = 0;
  while (true) {
    if (got == out.bytes.size()) out.bytes.resize(out.bytes.size() * 2);
    const std::size_t want = std::min<std::size_t>(out.bytes.size() - got, 1u << 30);
    const int n = gzread(f, out.bytes.data() + got, static_cast<unsigned>(want));
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  const std::string why = msg ? msg : "";
  out.gzipped = gzdirect(f) == 0;
  gzclose_r(f);
  if (err == Z_ERRNO)
    throw IoError(fmt::format("{}: read failed: {}", path.string(), std::strerror(errno)));
  if (err != Z_OK)
    throw DataError(fmt::format("{}: corrupt gzip data ({}) after {} decompressed bytes",
                                path.string(), why, got));
  out.bytes.resize(got);
  out.bytes.shrink_to_fit();
  return out;
}

std::uint32_t crc32(std::span<const std::uint8_t> bytes, std::uint32_t crc) {
  return static_cast<std::uint32_t>(::crc32_z(crc, bytes.data(), bytes.size()));
}

std::string crc32_digest(std::span<const std::uint8_t> bytes) {
  return fmt::format("crc32:{:08x}", crc32(bytes));
}

FingerprintEntry content_entry(const std::filesystem::path& path,
                               std::span<const std::uint8_t> content) {
  std::string name = path.filename().string();
  if (name.size() > 3 && name.ends_with(".gz")) name.resize(name.size() - 3);
  return {name, content.size(), crc32_digest(content)};
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
