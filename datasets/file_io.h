// Helpers shared by the dataset readers: whole-file reads (gzip transparently), content
// checksums, and a parallel loop that carries exceptions out of OpenMP.
#pragma once

#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "datasets/dataset.h"

namespace tessera::datasets::detail {

struct FileContent {
  std::vector<std::uint8_t> bytes;  // decompressed when the file is gzip
  bool gzipped = false;
};

// Reads a whole file; gzip is recognised by its content, not its name. IoError when the
// file cannot be opened or read, DataError when a gzip stream is corrupt or truncated.
FileContent read_file(const std::filesystem::path& path);

std::uint32_t crc32(std::span<const std::uint8_t> bytes, std::uint32_t crc = 0);
std::string crc32_digest(std::span<const std::uint8_t> bytes);  // "crc32:1a2b3c4d"

// A fingerprint entry for content read from `path`: named by the file name without ".gz".
FingerprintEntry content_entry(const std::filesystem::path& path, std::span<const std::uint8_t> content);

// Calls fn(begin, end) on chunks of [0, n) in parallel (OpenMP). An exception thrown by fn
// cannot cross the OpenMP region, so it is caught and the one from the lowest chunk is
// rethrown afterwards: the error a caller sees does not depend on thread timing.
void parallel_chunks(std::int64_t n, std::int64_t chunk,
                     const std::function<void(std::int64_t, std::int64_t)>& fn);

}  // namespace tessera::datasets::detail
