#include "tessera/datasets/cifar.h"

#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "datasets/file_io.h"

namespace tessera::datasets {

namespace {

constexpr std::size_t kImageBytes = kCifarRecordBytes - 1;
constexpr std::size_t kRecordsPerRead = 1024;  // 3 MiB at a time

// DataError unless `size` (the file's, or its decompressed content's) is whole records.
void check_whole_records(const std::filesystem::path& path, std::uint64_t size) {
  TESSERA_CHECK(size > 0 && size % kCifarRecordBytes == 0, DataError,
                "{}: {} bytes is not a positive multiple of the {}-byte CIFAR-10 record "
                "(1 label byte + 3x32x32 pixels){}",
                path.string(), size, kCifarRecordBytes,
                size > kCifarRecordBytes
                    ? fmt::format(": {} whole records and {} bytes left over", size / kCifarRecordBytes,
                                  size % kCifarRecordBytes)
                    : "");
}

// Appends one batch's records, read a few at a time (no copy of the whole file in memory),
// and returns its fingerprint entry: the CRC-32 of the content, as if it were read whole.
// A gzip batch's size is known only at its end, so it is refused once it decompresses to
// more than the memory available when it was opened.
FingerprintEntry read_batch(detail::InputFile& in, std::vector<std::uint8_t>& pixels,
                            std::vector<std::int32_t>& labels) {
  const std::string file = in.path().string();
  const std::int64_t budget = in.gzipped() ? static_cast<std::int64_t>(available_system_memory()) : 0;
  // Whole records per read; fewer for a small file (a fuzzer reads many), still more than
  // it can hold, so that its one read comes back short.
  const std::uint64_t most = in.gzipped() ? in.file_size() * detail::kMaxDeflateRatio : in.file_size();
  const std::uint64_t records_per_read = std::min<std::uint64_t>(kRecordsPerRead, most / kCifarRecordBytes + 1);
  std::vector<std::uint8_t> chunk(records_per_read * kCifarRecordBytes);
  std::uint32_t crc = 0;
  std::size_t index = 0;  // record index within this file
  while (true) {
    const std::size_t got = in.read(chunk);
    crc = detail::crc32(std::span(chunk).first(got), crc);
    if (got < chunk.size()) check_whole_records(in.path(), in.bytes_read());
    const std::size_t records = got / kCifarRecordBytes;
    TESSERA_CHECK(!in.gzipped() || in.bytes_read() <= static_cast<std::uint64_t>(budget), DataError,
                  "{}: decompresses to more than {}, the memory available", file,
                  format_bytes(static_cast<std::uint64_t>(budget)));
    const std::size_t first = labels.size();
    pixels.resize(pixels.size() + records * kImageBytes);
    labels.resize(first + records);
    for (std::size_t r = 0; r < records; ++r, ++index) {
      const std::uint8_t* rec = chunk.data() + r * kCifarRecordBytes;
      TESSERA_CHECK(rec[0] < 10, DataError, "{}: label {} at index {} is out of range [0, 10)", file,
                    int{rec[0]}, index);
      labels[first + r] = rec[0];
      std::memcpy(pixels.data() + (first + r) * kImageBytes, rec + 1, kImageBytes);
    }
    if (got < chunk.size()) break;
  }
  return detail::content_entry(in.path(), in.bytes_read(), crc);
}

}  // namespace

std::shared_ptr<InMemoryDataset> load_cifar10_files(const std::vector<std::filesystem::path>& files,
                                                    std::string name) {
  TESSERA_CHECK(!files.empty(), DataError, "{}: no CIFAR-10 batch files given", name);
  // Every batch is opened first, so that a raw batch of a wrong size, or batches together
  // larger than the memory available, are refused before any is read; and memory for the
  // raw ones is reserved once.
  std::vector<detail::InputFile> inputs;
  std::vector<std::string> names;
  std::uint64_t raw_records = 0;
  for (const auto& path : files) {
    const detail::InputFile& in = inputs.emplace_back(path);
    names.push_back(path.string());
    if (in.gzipped()) continue;
    check_whole_records(path, in.file_size());
    raw_records += in.file_size() / kCifarRecordBytes;
  }
  const unsigned __int128 raw_bytes = static_cast<unsigned __int128>(raw_records) * (kImageBytes + sizeof(std::int32_t));
  detail::check_fits_in_memory(raw_bytes,
                               fmt::format("{}: {} CIFAR-10 records in {}", name, raw_records, fmt::join(names, ", ")));
  std::vector<std::uint8_t> pixels;
  std::vector<std::int32_t> labels;
  pixels.reserve(raw_records * kImageBytes);
  labels.reserve(raw_records);
  Fingerprint fingerprint{name, {}};
  for (detail::InputFile& in : inputs) fingerprint.entries.push_back(read_batch(in, pixels, labels));
  InMemoryDataset::Info info{std::move(name), ImageShape{3, 32, 32}, 10,
                             {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                              "horse", "ship", "truck"},
                             std::move(fingerprint)};
  return std::make_shared<InMemoryDataset>(std::move(info), std::move(pixels), std::move(labels));
}

std::vector<std::filesystem::path> find_cifar10_files(const std::filesystem::path& dir, Split split) {
  namespace fs = std::filesystem;
  TESSERA_CHECK(fs::is_directory(dir), IoError,
                "{}: not a directory (expected the CIFAR-10 .bin batches in it)", dir.string());
  std::vector<std::string> names;
  if (split == Split::train)
    for (int i = 1; i <= 5; ++i) names.push_back(fmt::format("data_batch_{}.bin", i));
  else
    names.push_back("test_batch.bin");
  for (const fs::path& base : {dir, dir / "cifar-10-batches-bin"}) {
    std::vector<fs::path> found;
    std::vector<std::string> missing;
    for (const auto& n : names) {
      // As find_idx_files: a FIFO or device in a batch's place is refused when it is opened.
      if (std::error_code ec; fs::exists(fs::symlink_status(base / n, ec))) found.push_back(base / n);
      else missing.push_back(n);
    }
    if (missing.empty()) return found;
    // Some of the set present is a broken copy, not a different layout: say which are missing.
    TESSERA_CHECK(found.empty(), IoError, "{}: CIFAR-10 {} batches incomplete: missing {}",
                  base.string(), split_name(split), fmt::join(missing, ", "));
  }
  throw IoError(fmt::format("{}: no CIFAR-10 {} batches (looked for {} here and in "
                            "cifar-10-batches-bin/)",
                            dir.string(), split_name(split), fmt::join(names, ", ")));
}

std::shared_ptr<InMemoryDataset> load_cifar10(const std::filesystem::path& dir, Split split) {
  return load_cifar10_files(find_cifar10_files(dir, split), fmt::format("cifar10/{}", split_name(split)));
}

DatasetSpec cifar10_spec() {
  return {.name = "cifar10",
          .summary = "CIFAR-10: the binary batches (data_batch_1..5.bin, test_batch.bin), 32x32 RGB, 10 classes",
          .open = [](const std::filesystem::path& root, Split split, const DatasetOptions&) -> DatasetPtr {
            return load_cifar10(root, split);
          },
          .normalization = {{0.4914, 0.4822, 0.4465}, {0.2470, 0.2435, 0.2616}}};
}

}  // namespace tessera::datasets
