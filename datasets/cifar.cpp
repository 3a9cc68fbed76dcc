#include "datasets/cifar.h"

#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "datasets/file_io.h"

namespace tessera::datasets {

std::shared_ptr<InMemoryDataset> load_cifar10_files(const std::vector<std::filesystem::path>& files,
                                                    std::string name) {
  TESSERA_CHECK(!files.empty(), DataError, "{}: no CIFAR-10 batch files given", name);
  constexpr std::size_t kImage = kCifarRecordBytes - 1;
  std::vector<std::uint8_t> pixels;
  std::vector<std::int32_t> labels;
  Fingerprint fingerprint{name, {}};
  for (const auto& path : files) {
    const detail::FileContent f = detail::read_file(path);
    const std::size_t size = f.bytes.size();
    TESSERA_CHECK(size > 0 && size % kCifarRecordBytes == 0, DataError,
                  "{}: {} bytes is not a positive multiple of the {}-byte CIFAR-10 record "
                  "(1 label byte + 3x32x32 pixels){}",
                  path.string(), size, kCifarRecordBytes,
                  size > kCifarRecordBytes
                      ? fmt::format(": {} whole records and {} bytes left over",
                                    size / kCifarRecordBytes, size % kCifarRecordBytes)
                      : "");
    const std::size_t records = size / kCifarRecordBytes;
    const std::size_t first = labels.size();
    pixels.resize(pixels.size() + records * kImage);
    labels.resize(first + records);
    for (std::size_t r = 0; r < records; ++r) {
      const std::uint8_t* rec = f.bytes.data() + r * kCifarRecordBytes;
      TESSERA_CHECK(rec[0] < 10, DataError, "{}: label {} at index {} is out of range [0, 10)",
                    path.string(), int{rec[0]}, r);
      labels[first + r] = rec[0];
      std::memcpy(pixels.data() + (first + r) * kImage, rec + 1, kImage);
    }
    fingerprint.entries.push_back(detail::content_entry(path, f.bytes));
  }
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
      if (fs::is_regular_file(base / n)) found.push_back(base / n);
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

}  // namespace tessera::datasets
