// Datasets and the DataLoader: IDX/CIFAR-10/image-folder readers on tiny files written
// here (good and corrupt), the synthetic dataset, fingerprints, transforms, and the
// loader's coverage, shuffling, determinism, resumption and error propagation.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>
#include <set>
#include <thread>

#include <sys/stat.h>

#include "tessera/datasets/datasets.h"
#include "support/test_support.h"
#include "tessera/train/data.h"

// The test writes PNG/BMP/JPEG files and gzip data with stb_image_write's own encoder
// (compiled in here, privately), independent of the zlib and stb_image the library reads with.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

using namespace tessera;
using namespace tessera::datasets;
namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

namespace {

// ------------------------------------------------------------------ file helpers

void write_file(const fs::path& path, const Bytes& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  BOOST_TEST_REQUIRE(out.good(), "cannot write " << path);
}

// A file of `size` bytes that starts with `head` and is a hole after it: as large as a
// test needs, taking no disk space. False where the file system cannot hold that size.
bool write_sparse_file(const fs::path& path, const Bytes& head, std::uintmax_t size) {
  write_file(path, head);
  std::error_code ec;
  fs::resize_file(path, size, ec);
  return !ec;
}

void put_be32(Bytes& b, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(v >> shift));
}

Bytes idx_images(std::uint32_t count, std::uint32_t rows, std::uint32_t cols, const Bytes& pixels,
                 std::uint32_t magic = 0x00000803) {
  Bytes b;
  put_be32(b, magic);
  put_be32(b, count);
  put_be32(b, rows);
  put_be32(b, cols);
  b.insert(b.end(), pixels.begin(), pixels.end());
  return b;
}

Bytes idx_labels(const Bytes& labels, std::uint32_t magic = 0x00000801) {
  Bytes b;
  put_be32(b, magic);
  put_be32(b, static_cast<std::uint32_t>(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

std::uint32_t reference_crc32(const Bytes& data) {  // bitwise CRC-32 (IEEE), the gzip trailer's
  std::uint32_t crc = 0xffffffffu;
  for (std::uint8_t byte : data) {
    crc ^= byte;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// A gzip member around stb_image_write's deflate stream (RFC 1952).
Bytes gzip(const Bytes& data) {
  int zlen = 0;
  unsigned char* z = stbi_zlib_compress(const_cast<unsigned char*>(data.data()),
                                        static_cast<int>(data.size()), &zlen, 8);
  BOOST_TEST_REQUIRE((z != nullptr && zlen > 6));
  // Header (10 bytes: magic, deflate, no flags, no time, Unix), deflate data, CRC, size.
  const std::size_t deflate = static_cast<std::size_t>(zlen) - 6;  // minus zlib header and Adler-32
  Bytes out(10 + deflate + 8, 0);
  out[0] = 0x1f;
  out[1] = 0x8b;
  out[2] = 8;
  out[9] = 3;
  std::memcpy(out.data() + 10, z + 2, deflate);
  STBIW_FREE(z);
  const std::uint32_t crc = reference_crc32(data), size = static_cast<std::uint32_t>(data.size());
  for (int i = 0; i < 4; ++i) {
    out[10 + deflate + i] = static_cast<std::uint8_t>(crc >> (8 * i));
    out[14 + deflate + i] = static_cast<std::uint8_t>(size >> (8 * i));
  }
  return out;
}

// Asserts `fn` throws E whose message contains every one of `parts`.
template <class E, class Fn>
void check_error(Fn&& fn, std::initializer_list<std::string> parts) {
  try {
    fn();
    BOOST_ERROR("no exception; expected one mentioning '" << *parts.begin() << "'");
  } catch (const E& e) {
    const std::string what = e.what();
    for (const auto& p : parts) BOOST_TEST(what.find(p) != std::string::npos, "'" << what << "' lacks '" << p << "'");
  }
}

// Three 2x3 images with distinct pixels, labels 7, 0, 9.
const Bytes kPixels = [] {
  Bytes p(18);
  std::iota(p.begin(), p.end(), std::uint8_t{10});
  return p;
}();
const Bytes kLabels{7, 0, 9};

// ------------------------------------------------------------------ in-memory datasets

std::shared_ptr<InMemoryDataset> tiny_dataset(std::int64_t n, ImageShape shape = {1, 2, 2},
                                              std::int64_t classes = 3) {
  Bytes pixels(static_cast<std::size_t>(n * shape.numel()));
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>((i * 37 + 11) % 256);
  std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) labels[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i % classes);
  return std::make_shared<InMemoryDataset>(InMemoryDataset::Info{"tiny", shape, classes, {}, {}},
                                           std::move(pixels), std::move(labels));
}

// Fails to read one index; counts reads so a test can see the worker stopped.
class FailingDataset final : public Dataset {
 public:
  FailingDataset(std::int64_t n, std::int64_t bad) : n_(n), bad_(bad) {}
  std::string name() const override { return "failing"; }
  std::int64_t size() const override { return n_; }
  std::int64_t num_classes() const override { return 2; }
  ImageShape image_shape() const override { return {1, 1, 1}; }
  Fingerprint fingerprint() const override { return {}; }
  mutable std::atomic<int> reads{0};

 protected:
  std::int64_t label_at(std::int64_t i) const override { return i % 2; }
  void read_image_at(std::int64_t i, std::span<std::uint8_t> out) const override {
    ++reads;
    if (i == bad_) throw DataError(fmt::format("failing: sample {} is unreadable", i));
    out[0] = static_cast<std::uint8_t>(i);
  }

 private:
  std::int64_t n_, bad_;
};

std::vector<Batch> collect(DataLoader& loader) {
  std::vector<Batch> out;
  for (const Batch& b : loader) out.push_back(b);
  return out;
}

bool same_batches(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].samples != b[i].samples || a[i].index != b[i].index || a[i].epoch != b[i].epoch ||
        a[i].images.to_vector<float>() != b[i].images.to_vector<float>() ||
        a[i].labels.to_vector<std::int64_t>() != b[i].labels.to_vector<std::int64_t>())
      return false;
  return true;
}

}  // namespace

// ==================================================================== IDX

BOOST_AUTO_TEST_SUITE(idx)

BOOST_AUTO_TEST_CASE(raw_files_round_trip) {
  test::TempDir dir("idx_raw");
  write_file(dir / "imgs", idx_images(3, 2, 3, kPixels));
  write_file(dir / "lbls", idx_labels(kLabels));
  const auto ds = load_idx(dir / "imgs", dir / "lbls", 10, "tiny");
  BOOST_TEST(ds->size() == 3);
  BOOST_TEST((ds->image_shape() == ImageShape{1, 2, 3}));
  BOOST_TEST(ds->num_classes() == 10);
  for (std::int64_t i = 0; i < 3; ++i) {
    BOOST_TEST(ds->label(i) == kLabels[static_cast<std::size_t>(i)]);
    const Bytes img = ds->image(i);
    BOOST_TEST((img == Bytes(kPixels.begin() + 6 * i, kPixels.begin() + 6 * (i + 1))));
  }
  BOOST_TEST(ds->class_names().at(9) == "9");
  const Fingerprint fp = ds->fingerprint();
  BOOST_TEST_REQUIRE(fp.entries.size() == 2u);
  BOOST_TEST(fp.entries[0].name == "imgs");
  BOOST_TEST(fp.entries[0].bytes == 16u + 18u);
  BOOST_TEST(fp.entries[0].digest ==
             fmt::format("crc32:{:08x}", reference_crc32(idx_images(3, 2, 3, kPixels))));
  BOOST_CHECK_THROW(ds->label(3), DataError);
  BOOST_CHECK_THROW(ds->image(-1), DataError);
}

BOOST_AUTO_TEST_CASE(gzip_files_round_trip_and_match_raw_fingerprints) {
  test::TempDir dir("idx_gz");
  write_file(dir / "raw" / "imgs", idx_images(3, 2, 3, kPixels));
  write_file(dir / "raw" / "lbls", idx_labels(kLabels));
  write_file(dir / "gz" / "imgs.gz", gzip(idx_images(3, 2, 3, kPixels)));
  write_file(dir / "gz" / "lbls.gz", gzip(idx_labels(kLabels)));
  const auto raw = load_idx(dir / "raw" / "imgs", dir / "raw" / "lbls", 10, "raw");
  const auto gz = load_idx(dir / "gz" / "imgs.gz", dir / "gz" / "lbls.gz", 10, "raw");
  BOOST_TEST(gz->size() == 3);
  BOOST_TEST((gz->pixels().size() == kPixels.size() &&
              std::equal(kPixels.begin(), kPixels.end(), gz->pixels().begin())));
  for (std::int64_t i = 0; i < 3; ++i) BOOST_TEST(gz->label(i) == raw->label(i));
  // Same content, so the same fingerprint: a dataset can be re-fetched compressed.
  BOOST_TEST((gz->fingerprint() == raw->fingerprint()));
  BOOST_TEST(fingerprint_diff(raw->fingerprint(), gz->fingerprint()).empty());
}

BOOST_AUTO_TEST_CASE(directory_lookup_finds_standard_names) {
  test::TempDir dir("idx_dir");
  write_file(dir / "train-images-idx3-ubyte.gz", gzip(idx_images(3, 2, 3, kPixels)));
  write_file(dir / "train-labels-idx1-ubyte", idx_labels(kLabels));
  write_file(dir / "t10k-images.idx3-ubyte", idx_images(1, 2, 3, Bytes(6, 1)));
  write_file(dir / "t10k-labels.idx1-ubyte.gz", gzip(idx_labels({4})));
  const IdxFiles files = find_idx_files(dir.path(), Split::train);
  BOOST_TEST(files.images.filename() == "train-images-idx3-ubyte.gz");
  BOOST_TEST(files.labels.filename() == "train-labels-idx1-ubyte");
  const auto train = load_mnist(dir.path(), Split::train);
  BOOST_TEST(train->name() == "mnist/train");
  BOOST_TEST(train->size() == 3);
  const auto test = load_fashion_mnist(dir.path(), Split::test);
  BOOST_TEST(test->size() == 1);
  BOOST_TEST(test->label(0) == 4);
  BOOST_TEST(test->class_names().at(9) == "Ankle boot");
  // A raw copy is preferred over a gzipped one next to it.
  write_file(dir / "train-images-idx3-ubyte", idx_images(3, 2, 3, kPixels));
  BOOST_TEST(find_idx_files(dir.path(), Split::train).images.filename() == "train-images-idx3-ubyte");

  test::TempDir empty("idx_empty");
  check_error<IoError>([&] { load_mnist(empty.path(), Split::test); },
                       {empty.path().string(), "t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"});
  check_error<IoError>([&] { load_mnist(empty / "nope", Split::train); }, {"not a directory"});
}

BOOST_AUTO_TEST_CASE(every_corruption_is_a_data_error_naming_the_file) {
  test::TempDir dir("idx_bad");
  const fs::path good_labels = dir / "good-labels";
  write_file(good_labels, idx_labels(kLabels));
  auto images_error = [&](const std::string& name, const Bytes& content,
                          std::initializer_list<std::string> parts) {
    write_file(dir / name, content);
    check_error<DataError>([&] { load_idx(dir / name, good_labels, 10, "t"); }, parts);
    check_error<DataError>([&] { read_idx_images(dir / name); }, {name});
  };
  images_error("bad-magic", idx_images(3, 2, 3, kPixels, 0x12340803), {"bad-magic", "bad magic number 0x12340803"});
  images_error("float-type", idx_images(3, 2, 3, kPixels, 0x00000d03), {"float-type", "element type 0x0d"});
  images_error("wrong-dims", idx_images(3, 2, 3, kPixels, 0x00000802), {"wrong-dims", "2 dimensions"});
  images_error("labels-as-images", idx_labels(kLabels), {"labels-as-images", "1 dimensions"});
  images_error("short-header", Bytes{0, 0, 8, 3, 0, 0}, {"short-header", "truncated", "16 bytes"});
  images_error("tiny", Bytes{0, 0}, {"tiny", "truncated"});
  images_error("zero-count", idx_images(0, 2, 3, {}), {"zero-count", "0 images"});
  Bytes truncated = idx_images(3, 2, 3, kPixels);
  truncated.pop_back();
  images_error("truncated", truncated,
               {"truncated: header says 3 images of 2x3 (34 bytes), file has 33 bytes"});
  Bytes trailing = idx_images(3, 2, 3, kPixels);
  trailing.push_back(0);
  trailing.push_back(0);
  images_error("trailing", trailing,
               {"trailing", "trailing data: header says 3 images of 2x3 (34 bytes), file has 36 bytes (2 extra)"});
  // A gzip file's check is on the decompressed size.
  images_error("trailing.gz", gzip(trailing), {"trailing.gz", "decompressed size is 36 bytes"});
  // The example from the issue: a 60000-image header on a 1000-byte file.
  Bytes big_header = idx_images(60000, 28, 28, Bytes(1000 - 16, 0));
  images_error("train-images-idx3-ubyte", big_header,
               {"train-images-idx3-ubyte: truncated: header says 60000 images of 28x28 (47040016 "
                "bytes), file has 1000 bytes"});
  // A hostile header whose size overflows 64 bits is still just truncated.
  images_error("huge", idx_images(0xffffffffu, 0xffffffffu, 0xffffffffu, {}), {"huge", "more than 2^63"});
  // Gzip data cut short.
  Bytes gz = gzip(idx_images(3, 2, 3, kPixels));
  gz.resize(gz.size() - 10);
  images_error("cut.gz", gz, {"cut.gz", "corrupt gzip"});

  // Labels: wrong magic, truncated, out of range, count mismatch.
  write_file(dir / "imgs", idx_images(3, 2, 3, kPixels));
  auto labels_error = [&](const std::string& name, const Bytes& content,
                          std::initializer_list<std::string> parts) {
    write_file(dir / name, content);
    check_error<DataError>([&] { load_idx(dir / "imgs", dir / name, 10, "t"); }, parts);
  };
  labels_error("lbl-magic", idx_labels(kLabels, 0x00000803), {"lbl-magic", "3 dimensions"});
  Bytes cut = idx_labels(kLabels);
  cut.pop_back();
  labels_error("lbl-cut", cut, {"lbl-cut", "truncated: header says 3 labels (11 bytes), file has 10 bytes"});
  labels_error("train-labels-idx1-ubyte", idx_labels({1, 12, 3}),
               {"train-labels-idx1-ubyte: label 12 at index 1 is out of range [0, 10)"});
  labels_error("lbl-count", idx_labels({1, 2}),
               {"has 3 images but labels file", "lbl-count", "has 2 labels"});
  check_error<IoError>([&] { read_idx_labels(dir / "missing"); }, {"missing", "cannot open"});
  check_error<IoError>([&] { read_idx_labels(dir.path()); }, {"not a regular file"});
}

BOOST_AUTO_TEST_CASE(a_gzip_bomb_behind_a_valid_header_is_trailing_data_read_no_further) {
  test::TempDir dir("idx_bomb");
  // A valid file, then 1 MiB of zeros, and a broken CRC in the gzip trailer: a reader that
  // decompressed the whole stream would meet the bad CRC (and, for a real bomb, gigabytes);
  // one that stops a little past the promised end reports trailing data.
  Bytes content = idx_images(3, 2, 3, kPixels);
  content.resize(content.size() + (1 << 20), 0);
  Bytes bomb = gzip(content);
  bomb[bomb.size() - 8] ^= 0xff;
  BOOST_TEST(bomb.size() < 64u << 10);
  write_file(dir / "bomb-idx3-ubyte.gz", bomb);
  check_error<DataError>([&] { read_idx_images(dir / "bomb-idx3-ubyte.gz"); },
                         {"bomb-idx3-ubyte.gz: trailing data: header says 3 images of 2x3 (34 bytes), "
                          "decompressed size is at least"});
  // A few bytes past the end are still counted exactly, and a sound trailer is checked.
  Bytes few = idx_images(3, 2, 3, kPixels);
  few.push_back(1);
  write_file(dir / "few.gz", gzip(few));
  check_error<DataError>([&] { read_idx_images(dir / "few.gz"); }, {"decompressed size is 35 bytes (1 extra)"});
  Bytes bad_crc = gzip(idx_images(3, 2, 3, kPixels));
  bad_crc[bad_crc.size() - 8] ^= 0xff;
  write_file(dir / "bad-crc.gz", bad_crc);
  check_error<DataError>([&] { read_idx_images(dir / "bad-crc.gz"); }, {"bad-crc.gz", "corrupt gzip"});
}

BOOST_AUTO_TEST_CASE(a_gzip_file_too_small_for_its_header_is_truncated_before_reading) {
  test::TempDir dir("idx_gz_small");
  // Deflate expands a byte into at most about 1032: these ~100 bytes cannot hold 47 MB.
  write_file(dir / "small.gz", gzip(idx_images(60000, 28, 28, Bytes(100, 0))));
  check_error<DataError>([&] { read_idx_images(dir / "small.gz"); },
                         {"small.gz: truncated: header says 60000 images of 28x28 (47040016 bytes), but",
                          "bytes of gzip decompress to at most"});
}

BOOST_AUTO_TEST_CASE(a_file_larger_than_the_memory_available_is_refused_before_reading) {
  test::TempDir dir("idx_memory");
  // 2^21 images of 2048x2048: 8 TiB, in a file that is almost all hole.
  const fs::path path = dir / "huge-idx3-ubyte";
  if (!write_sparse_file(path, idx_images(1u << 21, 2048, 2048, {}), 16 + (std::uintmax_t{1} << 43))) {
    BOOST_TEST_MESSAGE("the file system holds no 8 TiB sparse file: skipped");
    return;
  }
  check_error<DataError>([&] { read_idx_images(path); },
                         {"huge-idx3-ubyte: header says 2097152 images of 2048x2048 (8796093022224 bytes): "
                          "needs 8.0 TiB of memory, but only",
                          "is available"});
}

BOOST_AUTO_TEST_CASE(real_fashion_mnist_and_mnist_load_when_present) {
  const fs::path fashion = "/usr/share/datasets/fashion-mnist";
  if (fs::exists(fashion / "train-images-idx3-ubyte.gz")) {
    const auto train = load_fashion_mnist(fashion, Split::train);
    const auto test = load_fashion_mnist(fashion, Split::test);
    BOOST_TEST(train->size() == 60000);
    BOOST_TEST(test->size() == 10000);
    BOOST_TEST((train->image_shape() == ImageShape{1, 28, 28}));
    for (std::int64_t count : class_counts(*train)) BOOST_TEST(count == 6000);
    const ChannelStats stats = compute_channel_stats(*train);
    BOOST_TEST(std::abs(stats.mean[0] - 0.2860) < 5e-4);
    BOOST_TEST(std::abs(stats.std[0] - 0.3530) < 5e-4);
  } else {
    BOOST_TEST_MESSAGE("Fashion-MNIST not installed at " << fashion << ": skipped");
  }
  const char* env = std::getenv("TESSERA_MNIST_DIR");
  const fs::path mnist = env ? fs::path(env) : fs::path(TESSERA_SOURCE_DIR) / "data" / "mnist";
  if (fs::is_directory(mnist)) {
    const auto train = load_mnist(mnist, Split::train);
    BOOST_TEST(train->size() == 60000);
    BOOST_TEST(load_mnist(mnist, Split::test)->size() == 10000);
    const ChannelStats stats = compute_channel_stats(*train);
    BOOST_TEST(std::abs(stats.mean[0] - 0.1307) < 5e-4);
    BOOST_TEST(std::abs(stats.std[0] - 0.3081) < 5e-4);
  } else {
    BOOST_TEST_MESSAGE("MNIST not found at " << mnist << " (scripts/fetch_mnist.sh): skipped");
  }
}

BOOST_AUTO_TEST_SUITE_END()

// ==================================================================== CIFAR-10

BOOST_AUTO_TEST_SUITE(cifar10)

Bytes cifar_records(std::initializer_list<std::uint8_t> labels) {
  Bytes out;
  for (std::uint8_t label : labels) {
    out.push_back(label);
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 1024; ++p) out.push_back(static_cast<std::uint8_t>(label * 16 + c * 4 + p % 3));
  }
  return out;
}

BOOST_AUTO_TEST_CASE(batches_load_in_order_from_the_standard_layout) {
  test::TempDir dir("cifar");
  const fs::path sub = dir / "cifar-10-batches-bin";
  for (int i = 1; i <= 5; ++i) write_file(sub / fmt::format("data_batch_{}.bin", i), cifar_records({static_cast<std::uint8_t>(i), 0}));
  write_file(sub / "test_batch.bin", cifar_records({9, 3, 8}));
  const auto train = load_cifar10(dir.path(), Split::train);  // finds the subfolder
  BOOST_TEST(train->size() == 10);
  BOOST_TEST((train->image_shape() == ImageShape{3, 32, 32}));
  BOOST_TEST(train->label(0) == 1);
  BOOST_TEST(train->label(8) == 5);
  BOOST_TEST(train->class_names().at(9) == "truck");
  const Bytes img = train->image(8);  // label 5: channel c, pixel p = 80 + 4c + p % 3
  BOOST_TEST(img[0] == 80);
  BOOST_TEST(img[1] == 81);
  BOOST_TEST(img[1024] == 84);
  BOOST_TEST(img[2 * 1024 + 2] == 90);
  BOOST_TEST(train->fingerprint().entries.size() == 5u);
  const auto test = load_cifar10(sub, Split::test);  // or the folder itself
  BOOST_TEST(test->size() == 3);
  BOOST_TEST(test->label(2) == 8);
}

BOOST_AUTO_TEST_CASE(bad_batches_are_errors_naming_the_file) {
  test::TempDir dir("cifar_bad");
  Bytes partial = cifar_records({1, 2});
  partial.resize(partial.size() - 5);
  write_file(dir / "test_batch.bin", partial);
  check_error<DataError>([&] { load_cifar10(dir.path(), Split::test); },
                         {"test_batch.bin", "6141 bytes is not a positive multiple of the 3073-byte",
                          "1 whole records and 3068 bytes left over"});
  write_file(dir / "test_batch.bin", {});
  check_error<DataError>([&] { load_cifar10(dir.path(), Split::test); }, {"test_batch.bin", "0 bytes"});
  write_file(dir / "test_batch.bin", cifar_records({1, 10}));
  check_error<DataError>([&] { load_cifar10(dir.path(), Split::test); },
                         {"test_batch.bin: label 10 at index 1 is out of range [0, 10)"});
  write_file(dir / "data_batch_1.bin", cifar_records({1}));
  write_file(dir / "data_batch_2.bin", cifar_records({1}));
  check_error<IoError>([&] { load_cifar10(dir.path(), Split::train); },
                       {"incomplete", "data_batch_3.bin", "data_batch_5.bin"});
  test::TempDir empty("cifar_empty");
  check_error<IoError>([&] { load_cifar10(empty.path(), Split::train); },
                       {"no CIFAR-10 train batches", "cifar-10-batches-bin"});
}

BOOST_AUTO_TEST_CASE(batches_read_in_pieces_keep_the_fingerprint_of_the_whole_file) {
  test::TempDir dir("cifar_pieces");
  // 1500 records: more than one read's worth, so the CRC and the records span reads.
  Bytes content;
  for (int r = 0; r < 1500; ++r) {
    content.push_back(static_cast<std::uint8_t>(r % 10));
    for (int p = 0; p < 3072; ++p) content.push_back(static_cast<std::uint8_t>((r + p) % 251));
  }
  write_file(dir / "raw" / "test_batch.bin", content);
  write_file(dir / "gz" / "test_batch.bin", gzip(content));
  const auto raw = load_cifar10(dir / "raw", Split::test);
  const auto gz = load_cifar10(dir / "gz", Split::test);
  BOOST_TEST(raw->size() == 1500);
  BOOST_TEST(raw->label(1234) == 4);
  BOOST_TEST(raw->image(1400)[5] == (1400 + 5) % 251);
  BOOST_TEST_REQUIRE(raw->fingerprint().entries.size() == 1u);
  const FingerprintEntry entry = raw->fingerprint().entries[0];
  BOOST_TEST(entry.bytes == content.size());
  BOOST_TEST(entry.digest == fmt::format("crc32:{:08x}", reference_crc32(content)));
  BOOST_TEST((gz->fingerprint() == raw->fingerprint()));
  BOOST_TEST((gz->image(1400) == raw->image(1400)));
}

BOOST_AUTO_TEST_CASE(a_batch_larger_than_the_memory_available_is_refused_before_reading) {
  test::TempDir dir("cifar_memory");
  // 2^31 records (6 TiB), almost all hole.
  const std::uintmax_t records = std::uintmax_t{1} << 31;
  if (!write_sparse_file(dir / "test_batch.bin", cifar_records({3}), records * kCifarRecordBytes)) {
    BOOST_TEST_MESSAGE("the file system holds no 6 TiB sparse file: skipped");
    return;
  }
  check_error<DataError>([&] { load_cifar10(dir.path(), Split::test); },
                         {"cifar10/test: 2147483648 CIFAR-10 records in", "test_batch.bin",
                          "needs 6.0 TiB of memory, but only"});
}

BOOST_AUTO_TEST_SUITE_END()

// ==================================================================== image folders

namespace {

// w x h RGB image, interleaved, from a per-pixel colour function.
template <class Fn> Bytes rgb(int w, int h, Fn&& colour) {
  Bytes out;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const std::array<std::uint8_t, 3> c = colour(x, y);
      out.insert(out.end(), c.begin(), c.end());
    }
  return out;
}

void write_png(const fs::path& path, int w, int h, int comp, const Bytes& data) {
  fs::create_directories(path.parent_path());
  BOOST_TEST_REQUIRE(stbi_write_png(path.c_str(), w, h, comp, data.data(), w * comp) != 0);
}

// root/cat: one 4x4 PNG, red on the left half, blue on the right, plus a grey BMP.
// root/dog: one 4x4 greyscale PNG. Non-image files and hidden folders are ignored.
void make_folder(const fs::path& root) {
  write_png(root / "cat" / "a.png", 4, 4, 3, rgb(4, 4, [](int x, int) {
              return x < 2 ? std::array<std::uint8_t, 3>{200, 0, 0} : std::array<std::uint8_t, 3>{0, 0, 100};
            }));
  const Bytes grey(4 * 4 * 3, 60);
  BOOST_TEST_REQUIRE(stbi_write_bmp((root / "cat" / "b.BMP").c_str(), 4, 4, 3, grey.data()) != 0);
  Bytes mono(16);
  for (int i = 0; i < 16; ++i) mono[i] = static_cast<std::uint8_t>(i * 10);
  write_png(root / "dog" / "nested" / "m.png", 4, 4, 1, mono);
  write_file(root / "dog" / "notes.txt", {1, 2, 3});
  write_file(root / ".hidden" / "x.png", {1, 2, 3});
  write_file(root / "cat" / "._a.png", {1, 2, 3});
  write_file(root / "dog" / ".cache" / "y.png", {1, 2, 3});
}

// A 4x4 RGB PNG of one colour, told apart by `seed`.
void write_tiny_png(const fs::path& path, int seed) {
  const auto v = static_cast<std::uint8_t>(seed * 23 % 256);
  write_png(path, 4, 4, 3, rgb(4, 4, [&](int x, int y) {
              return std::array<std::uint8_t, 3>{v, static_cast<std::uint8_t>(x * 60), static_cast<std::uint8_t>(y * 60)};
            }));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(image_folder)

BOOST_AUTO_TEST_CASE(decodes_converts_channels_and_keeps_sorted_classes) {
  test::TempDir dir("imgf");
  make_folder(dir.path());
  for (bool preload : {true, false}) {
    ImageFolderDataset ds(dir.path(), {.channels = 3, .height = 4, .width = 4, .preload = preload});
    BOOST_TEST(ds.size() == 3);
    BOOST_TEST((ds.class_names() == std::vector<std::string>{"cat", "dog"}));
    BOOST_TEST(ds.label(0) == 0);
    BOOST_TEST(ds.label(1) == 0);
    BOOST_TEST(ds.label(2) == 1);
    BOOST_TEST(ds.file(0).filename() == "a.png");  // sorted: a.png before b.BMP
    const Bytes a = ds.image(0);                    // (3, 4, 4)
    BOOST_TEST(a[0] == 200);       // R at (0,0)
    BOOST_TEST(a[3] == 0);         // R at (0,3)
    BOOST_TEST(a[32 + 0] == 0);    // B at (0,0)
    BOOST_TEST(a[32 + 3] == 100);  // B at (0,3)
    const Bytes b = ds.image(1);
    BOOST_TEST(std::all_of(b.begin(), b.end(), [](std::uint8_t v) { return v == 60; }));
    const Bytes m = ds.image(2);  // grey replicated into R, G, B
    for (int c = 0; c < 3; ++c) BOOST_TEST(m[c * 16 + 5] == 50);
    BOOST_TEST(ds.fingerprint().entries.size() == 2u);
    BOOST_TEST(ds.fingerprint().entries[0].name == "cat/");
    BOOST_TEST(ds.fingerprint().entries[0].digest.starts_with(preload ? "crc32:" : "mtime:"));
  }
  // To grey: stb_image's luma, (77 R + 150 G + 29 B) >> 8.
  ImageFolderDataset grey(dir.path(), {.channels = 1, .height = 4, .width = 4});
  BOOST_TEST((grey.image_shape() == ImageShape{1, 4, 4}));
  const Bytes g = grey.image(0);
  BOOST_TEST(g[0] == (77 * 200) >> 8);
  BOOST_TEST(g[3] == (29 * 100) >> 8);
}

BOOST_AUTO_TEST_CASE(resizes_to_the_requested_size) {
  test::TempDir dir("imgf_resize");
  make_folder(dir.path());
  ImageFolderDataset small(dir.path(), {.channels = 3, .height = 2, .width = 2});
  const Bytes a = small.image(0);  // (3, 2, 2): left column red, right column blue
  BOOST_TEST(a.size() == 12u);
  BOOST_TEST(a[0] > 170);   // R, left
  BOOST_TEST(a[1] < 30);    // R, right
  BOOST_TEST(a[8] < 15);    // B, left
  BOOST_TEST(a[9] > 85);    // B, right
  ImageFolderDataset big(dir.path(), {.channels = 1, .height = 8, .width = 6});
  const Bytes b = big.image(1);  // a uniform image stays uniform
  BOOST_TEST(b.size() == 48u);
  BOOST_TEST(std::all_of(b.begin(), b.end(), [](std::uint8_t v) { return v == 60; }));
}

BOOST_AUTO_TEST_CASE(an_image_claiming_no_pixels_or_too_many_is_an_error) {
  // A PGM header of width 3 and height 0 decodes; resizing it used to abort (fuzz_image).
  const std::string pgm = "P5\n3 0\n255\n";
  const std::vector<std::uint8_t> bytes(pgm.begin(), pgm.end());
  Bytes out(16);
  check_error<DataError>([&] { decode_image(bytes, {1, 4, 4}, out, "flat.pgm"); },
                         {"flat.pgm", "empty (3x0 pixels)"});
  // A few header bytes can claim a huge image: refused before decoding (fuzz_image).
  const std::string huge = "P5\n20000 20000\n255\n";
  check_error<DataError>([&] { decode_image({reinterpret_cast<const std::uint8_t*>(huge.data()), huge.size()},
                                            {1, 4, 4}, out, "huge.pgm"); },
                         {"huge.pgm", "20000x20000 pixels is larger than"});
}

BOOST_AUTO_TEST_CASE(only_checked_formats_reach_the_decoder) {
  auto decode = [](const std::string& bytes, std::int64_t channels) {
    Bytes out(static_cast<std::size_t>(channels * 4 * 4));
    decode_image({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()},
                 {channels, 4, 4}, out, "x.png");
    return out;
  };
  // A 16-bit PNM converted to RGB made stb_image read past its buffer (fuzz_image).
  check_error<DataError>([&] { decode("P553\n553\n3838", 3); }, {"x.png", "maximum value 3838", "8-bit"});
  // Pixel bytes missing: stb_image would return whatever its buffer held.
  check_error<DataError>([&] { decode("P6 2 2 255\nabc", 1); }, {"x.png", "holds 3 bytes", "needs 12"});
  check_error<DataError>([&] { decode("P5 2", 1); }, {"x.png", "cut short"});
  check_error<DataError>([&] { decode("P5 2 2 255x", 1); }, {"x.png", "end in whitespace"});
  // A BMP header promising 4x3559427 pixels in 90 bytes: stb_image decoded it, slowly,
  // out of nothing (fuzz_image).
  std::string bmp(54, '\0');
  auto put32 = [&](std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) bmp[at + i] = static_cast<char>(v >> (8 * i));
  };
  bmp[0] = 'B', bmp[1] = 'M';
  put32(10, 54), put32(14, 40), put32(18, 4), put32(22, 3559427), put32(26, 1 | 24 << 16);
  check_error<DataError>([&] { decode(bmp + std::string(36, '\x7f'), 3); },
                         {"x.png", "BMP holds 90 bytes", "4x3559427 pixels of 24 bits need 42713178"});
  put32(30, 0x400000);  // an unknown compression, which stb_image decoded as none
  check_error<DataError>([&] { decode(bmp + std::string(36, '\x7f'), 3); },
                         {"x.png", "BMP compression 4194304 is not supported"});
  put32(30, 0), put32(18, 0xffffffff);  // width -1, once read as 4294967295 (fuzz_image)
  check_error<DataError>([&] { decode(bmp + std::string(36, '\x7f'), 3); }, {"x.png", "empty (-1x3559427"});
  put32(18, 4), put32(22, 2);  // two rows of 4 pixels, 12 bytes each: 24 bytes after the header
  const Bytes rgb = decode(bmp + std::string(24, '\x7f'), 3);
  BOOST_TEST(std::all_of(rgb.begin(), rgb.end(), [](std::uint8_t v) { return v == 0x7f; }));
  // Formats stb_image knows but Tessera does not hand it: GIF, PSD, Radiance HDR, ASCII PGM.
  for (const std::string other : {"GIF89a\x01\x00\x01\x00", "8BPS\x00\x01", "#?RADIANCE\n", "P2 1 1 255 7"})
    check_error<DataError>([&] { decode(other, 1); }, {"x.png", "not a PNG, JPEG, BMP or binary PGM/PPM"});
  // A valid one, with a comment in its header: 2x2 grey, resized to 4x4.
  const Bytes grey = decode("P5 # made by hand\n2 2\n255\n\x10\x10\x10\x10", 1);
  BOOST_TEST(std::all_of(grey.begin(), grey.end(), [](std::uint8_t v) { return v == 0x10; }));
}

BOOST_AUTO_TEST_CASE(bad_folders_and_files_are_errors) {
  test::TempDir dir("imgf_bad");
  make_folder(dir.path());
  write_file(dir / "dog" / "broken.jpg", {0xff, 0xd8, 0x00, 0x11, 0x22});
  check_error<DataError>([&] { ImageFolderDataset(dir.path(), {.height = 4, .width = 4}); },
                         {"broken.jpg", "cannot decode"});
  // Decoding on demand: the error comes with the read.
  ImageFolderDataset lazy(dir.path(), {.height = 4, .width = 4, .preload = false});
  BOOST_TEST(lazy.size() == 4);
  check_error<DataError>([&] { lazy.image(2); }, {"broken.jpg", "cannot decode"});
  BOOST_TEST(lazy.image(3).size() == 48u);

  fs::create_directories(dir / "empty_class");
  check_error<DataError>([&] { ImageFolderDataset(dir.path(), {.height = 4, .width = 4, .preload = false}); },
                         {"empty_class", "no images"});
  test::TempDir none("imgf_none");
  write_file(none / "loose.png", {1});
  check_error<DataError>([&] { ImageFolderDataset(none.path(), {.height = 4, .width = 4}); },
                         {none.path().string(), "no class folders"});
  check_error<IoError>([&] { ImageFolderDataset(none / "missing", {.height = 4, .width = 4}); },
                       {"missing", "not a directory"});
  check_error<ConfigError>([&] { ImageFolderDataset(none.path(), {.channels = 2, .height = 4, .width = 4}); },
                           {"channels must be 1 or 3"});
  check_error<ConfigError>([&] { ImageFolderDataset(none.path(), {}); }, {"height and width"});
}

BOOST_AUTO_TEST_CASE(a_limit_decodes_only_the_first_images) {
  test::TempDir dir("imgf_limit");
  const fs::path root = dir / "train";
  for (int i = 0; i < 3; ++i) write_tiny_png(root / "cat" / fmt::format("{}.png", i), i);
  for (int i = 0; i < 2; ++i) write_tiny_png(root / "dog" / fmt::format("{}.png", i), 10 + i);
  write_file(root / "dog" / "z_broken.jpg", {0xff, 0xd8, 0x00, 0x11});  // the last file
  check_error<DataError>([&] { ImageFolderDataset(root, {.height = 4, .width = 4}); }, {"z_broken.jpg"});
  const ImageFolderDataset all(root, {.height = 4, .width = 4, .preload = false});
  // The first 4 samples, as without a limit (every cat, then the first dog); the broken file
  // past them is never read.
  const ImageFolderDataset first(root, {.height = 4, .width = 4, .limit = 4});
  BOOST_TEST(first.size() == 4);
  BOOST_TEST(first.preloaded());
  BOOST_TEST(first.memory_bytes() == 4 * 48);
  BOOST_TEST((first.class_names() == std::vector<std::string>{"cat", "dog"}));
  for (std::int64_t i = 0; i < 4; ++i) {
    BOOST_TEST(first.label(i) == all.label(i));
    BOOST_TEST((first.image(i) == all.image(i)));
  }
  BOOST_TEST(first.label(3) == 1);
  const DatasetPtr made = make_dataset("image_folder", dir.path(), Split::train,
                                       {.image_shape = ImageShape{3, 4, 4}, .limit = 4});
  BOOST_TEST(made->size() == 4);
  check_error<ConfigError>([&] { make_dataset("image_folder", dir.path(), Split::train,
                                              {.image_shape = ImageShape{3, 4, 4}, .limit = -1}); },
                           {"limit", "-1"});
}

BOOST_AUTO_TEST_CASE(pixels_over_the_preload_budget_are_decoded_on_each_read) {
  test::TempDir dir("imgf_budget");
  for (int i = 0; i < 6; ++i) write_tiny_png(dir / (i % 2 ? "dog" : "cat") / fmt::format("{}.png", i), i);
  write_file(dir / "dog" / "z_broken.jpg", {0xff, 0xd8, 0x00, 0x11});
  const auto lazy = std::make_shared<ImageFolderDataset>(
      dir.path(), ImageFolderOptions{.height = 4, .width = 4, .preload_budget = 100});  // 7 x 48 bytes do not fit
  BOOST_TEST(!lazy->preloaded());
  BOOST_TEST(lazy->memory_bytes() == 0);
  check_error<DataError>([&] { lazy->image(6); }, {"z_broken.jpg", "cannot decode"});
  fs::remove(dir / "dog" / "z_broken.jpg");
  const auto eager = std::make_shared<ImageFolderDataset>(dir.path(), ImageFolderOptions{.height = 4, .width = 4});
  const auto lazy_now = std::make_shared<ImageFolderDataset>(
      dir.path(), ImageFolderOptions{.height = 4, .width = 4, .preload_budget = 100});
  BOOST_TEST(eager->preloaded());
  BOOST_TEST(eager->memory_bytes() == 6 * 48);
  // The fingerprint does not depend on the memory free: both read every file's content.
  BOOST_TEST((lazy_now->fingerprint() == eager->fingerprint()));
  // The loader's workers decode concurrently; the batches are those of the preloaded folder.
  auto batches = [](DatasetPtr d) {
    DataLoader loader(std::move(d), {.batch_size = 2, .shuffle = true, .seed = 5, .prefetch = 4, .workers = 4});
    return collect(loader);
  };
  BOOST_TEST(same_batches(batches(lazy_now), batches(eager)));

  // The case from the issue: tiny files at a large model size. 90 images of 3x2048x2048 are
  // 1.1 GiB decoded, over the default budget: nothing is decoded up front.
  for (int i = 0; i < 90; ++i) write_tiny_png(dir / "big" / "c" / fmt::format("{:02}.png", i), i);
  const ImageFolderDataset big(dir / "big", {.height = 2048, .width = 2048});
  BOOST_TEST(!big.preloaded());
  BOOST_TEST(big.memory_bytes() == 0);
}

BOOST_AUTO_TEST_CASE(a_test_split_follows_the_training_classes_by_name) {
  test::TempDir dir("imgf_classes");
  for (const char* c : {"cat", "dog", "zebra"}) write_tiny_png(dir / "train" / c / "0.png", 1);
  for (const char* c : {"cat", "zebra"}) write_tiny_png(dir / "test" / c / "0.png", 2);
  const ImageShape shape{3, 4, 4};
  const DatasetPtr train = make_dataset("image_folder", dir.path(), Split::train, {.image_shape = shape});
  const DatasetPtr test = make_dataset("image_folder", dir.path(), Split::test,
                                       {.image_shape = shape, .classes = train->class_names()});
  BOOST_TEST((test->class_names() == std::vector<std::string>{"cat", "dog", "zebra"}));
  BOOST_TEST(test->num_classes() == 3);
  BOOST_TEST(test->size() == 2);
  BOOST_TEST(test->label(0) == 0);
  BOOST_TEST(test->label(1) == 2);  // zebra, as in training (numbered alone it would be 1)
  BOOST_TEST(test->fingerprint().entries.size() == 2u);
  // A test class the training split does not have has no label to map to.
  write_tiny_png(dir / "test" / "horse" / "0.png", 3);
  check_error<DataError>([&] { make_dataset("image_folder", dir.path(), Split::test,
                                            {.image_shape = shape, .classes = train->class_names()}); },
                         {(dir / "test" / "horse").string(), "'horse'", "(cat, dog, zebra)"});
}

BOOST_AUTO_TEST_SUITE_END()

// ==================================================================== untrusted files

BOOST_AUTO_TEST_SUITE(file_types)

BOOST_AUTO_TEST_CASE(fifos_devices_directories_and_dangling_links_are_refused_by_name) {
  test::TempDir dir("file_types");
  // A FIFO: a read would wait for a writer forever.
  const fs::path fifo = dir / "train-images-idx3-ubyte";
  BOOST_TEST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  write_file(dir / "train-labels-idx1-ubyte", idx_labels(kLabels));
  check_error<IoError>([&] { load_mnist(dir.path(), Split::train); },
                       {fifo.string() + ": cannot open: a FIFO (named pipe), not a regular file"});
  // A device where a file is expected, through a link named like an IDX file: never ends.
  fs::create_symlink("/dev/zero", dir / "t10k-images-idx3-ubyte");
  write_file(dir / "t10k-labels-idx1-ubyte", idx_labels(kLabels));
  check_error<IoError>([&] { load_fashion_mnist(dir.path(), Split::test); },
                       {"t10k-images-idx3-ubyte: cannot open: a character device (a symbolic link to "
                        "/dev/zero), not a regular file"});
  fs::create_directory(dir / "a-directory");
  check_error<IoError>([&] { read_idx_labels(dir / "a-directory"); },
                       {"a-directory: cannot open: a directory, not a regular file"});
  fs::create_symlink(dir / "nowhere", dir / "dangling");
  check_error<IoError>([&] { read_idx_labels(dir / "dangling"); },
                       {"dangling: cannot open: a dangling symbolic link to", "nowhere"});
  fs::create_directories(dir / "cifar");
  fs::create_symlink("/dev/urandom", dir / "cifar" / "test_batch.bin");
  check_error<IoError>([&] { load_cifar10(dir / "cifar", Split::test); },
                       {"test_batch.bin: cannot open: a character device"});
  // An image folder names such an entry when it is listed, preloading or not.
  write_tiny_png(dir / "images" / "cat" / "a.png", 1);
  BOOST_TEST_REQUIRE(::mkfifo((dir / "images" / "cat" / "b.png").c_str(), 0600) == 0);
  for (bool preload : {true, false})
    check_error<IoError>([&] { ImageFolderDataset(dir / "images", {.height = 4, .width = 4, .preload = preload}); },
                         {"b.png: cannot read the image: a FIFO (named pipe), not a regular file"});
  check_error<IoError>([&] { read_image_file("/dev/zero"); }, {"/dev/zero: cannot open: a character device"});
}

BOOST_AUTO_TEST_SUITE_END()

// ==================================================================== synthetic, factory, fingerprints

BOOST_AUTO_TEST_SUITE(synthetic_and_factory)

BOOST_AUTO_TEST_CASE(synthetic_is_deterministic_balanced_and_learnable) {
  const SyntheticOptions o{.size = 400, .num_classes = 4, .shape = {2, 5, 3}, .seed = 11};
  const SyntheticDataset a(o), b(o);
  SyntheticOptions other_seed = o;
  other_seed.seed = 12;
  SyntheticOptions test_split = o;
  test_split.split = Split::test;
  const SyntheticDataset c(other_seed), t(test_split);
  BOOST_TEST(a.size() == 400);
  BOOST_TEST((a.image_shape() == ImageShape{2, 5, 3}));
  for (std::int64_t i : {0, 1, 57, 399}) {
    BOOST_TEST((a.image(i) == b.image(i)));
    BOOST_TEST((a.image(i) != c.image(i)));
    BOOST_TEST((a.image(i) != t.image(i)));
  }
  for (std::int64_t count : class_counts(a)) BOOST_TEST(count == 100);
  BOOST_TEST((a.fingerprint() == b.fingerprint()));
  BOOST_TEST(!(a.fingerprint() == c.fingerprint()));
  // Noise 0 reproduces the class pattern; the patterns differ between classes.
  SyntheticOptions clean = o;
  clean.noise = 0;
  const SyntheticDataset z(clean);
  const auto p1 = z.pattern(1);
  BOOST_TEST((z.image(5) == Bytes(p1.begin(), p1.end())));
  BOOST_TEST(!std::equal(p1.begin(), p1.end(), z.pattern(2).begin()));

  // Learnable: class means estimated on the train split classify the test split.
  const SyntheticOptions big{.size = 2000, .num_classes = 10, .shape = {1, 12, 12}, .seed = 3, .noise = 0.5};
  SyntheticOptions big_test = big;
  big_test.split = Split::test;
  const SyntheticDataset train(big), test(big_test);
  const std::size_t d = 144;
  std::vector<double> means(10 * d, 0.0);
  for (std::int64_t i = 0; i < train.size(); ++i) {
    const Bytes img = train.image(i);
    for (std::size_t p = 0; p < d; ++p) means[train.label(i) * d + p] += img[p] / 200.0;
  }
  int correct = 0;
  for (std::int64_t i = 0; i < test.size(); ++i) {
    const Bytes img = test.image(i);
    double best = 1e300;
    std::int64_t guess = -1;
    for (std::int64_t c = 0; c < 10; ++c) {
      double dist = 0;
      for (std::size_t p = 0; p < d; ++p) dist += std::pow(img[p] - means[c * d + p], 2);
      if (dist < best) { best = dist; guess = c; }
    }
    correct += guess == test.label(i);
  }
  BOOST_TEST(correct > 1900, correct << " of 2000 test samples classified correctly");
  check_error<ConfigError>([] { SyntheticDataset(SyntheticOptions{.size = 0}); }, {"size 0"});
}

BOOST_AUTO_TEST_CASE(factory_builds_by_name_and_rejects_unknown_ones) {
  test::TempDir dir("factory");
  write_file(dir / "train-images-idx3-ubyte", idx_images(3, 2, 3, kPixels));
  write_file(dir / "train-labels-idx1-ubyte", idx_labels(kLabels));
  BOOST_TEST(make_dataset("mnist", dir.path(), "train")->size() == 3);
  BOOST_TEST(make_dataset("Fashion-MNIST", dir.path(), Split::train)->name() == "fashion_mnist/train");
  check_error<ConfigError>(
      [&] { make_dataset("mnist", dir.path(), Split::train, {.image_shape = ImageShape{1, 28, 28}}); },
      {"image_shape (1,28,28)", "(1,2,3)"});
  check_error<ConfigError>([&] { make_dataset("imagenet", dir.path(), Split::train); },
                           {"unknown dataset 'imagenet'", "mnist, fashion_mnist, cifar10, image_folder, synthetic"});
  check_error<ConfigError>([&] { make_dataset("mnist", dir.path(), "validation"); },
                           {"'validation'", "train, test"});

  const DatasetPtr syn = make_dataset("synthetic", "", Split::test,
                                      {.image_shape = ImageShape{3, 8, 8}, .size = 50, .num_classes = 5});
  BOOST_TEST(syn->size() == 50);
  BOOST_TEST(syn->num_classes() == 5);
  BOOST_TEST(syn->name() == "synthetic/test");
  BOOST_TEST(make_dataset("synthetic", "", Split::train)->size() == 10000);

  make_folder(dir / "folder" / "train");
  make_folder(dir / "folder" / "val");
  check_error<ConfigError>([&] { make_dataset("image_folder", dir / "folder", Split::train); }, {"image_shape"});
  const DatasetPtr val = make_dataset("image_folder", dir / "folder", Split::test,
                                      {.image_shape = ImageShape{1, 4, 4}});
  BOOST_TEST(val->size() == 3);
  check_error<IoError>([&] { make_dataset("image_folder", dir.path(), Split::train, {.image_shape = ImageShape{1, 4, 4}}); },
                       {"no train folder"});
}

BOOST_AUTO_TEST_CASE(memory_bytes_counts_what_each_dataset_holds) {
  const auto tiny = tiny_dataset(5);  // 5 images of (1,2,2) and 5 int32 labels
  BOOST_TEST(tiny->memory_bytes() == 5 * 4 + 5 * 4);
  BOOST_TEST(SubsetDataset(tiny, 2).memory_bytes() == tiny->memory_bytes());
  test::TempDir dir("memory_bytes");
  write_file(dir / "imgs", idx_images(3, 2, 3, kPixels));
  write_file(dir / "lbls", idx_labels(kLabels));
  BOOST_TEST(load_idx(dir / "imgs", dir / "lbls", 10, "t")->memory_bytes() == 34 + 3 * 4);  // header kept
  const SyntheticDataset syn({.size = 1000, .num_classes = 4, .shape = {2, 5, 3}});
  BOOST_TEST(syn.memory_bytes() == 4 * 30);  // the class patterns only
}

BOOST_AUTO_TEST_CASE(fixed_class_datasets_refuse_another_class_list) {
  test::TempDir dir("fixed_classes");
  write_file(dir / "train-images-idx3-ubyte", idx_images(3, 2, 3, kPixels));
  write_file(dir / "train-labels-idx1-ubyte", idx_labels(kLabels));
  const std::vector<std::string> digits{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  BOOST_TEST(make_dataset("mnist", dir.path(), Split::train, {.classes = digits})->size() == 3);
  check_error<DataError>([&] { make_dataset("fashion_mnist", dir.path(), Split::train, {.classes = digits}); },
                         {"fashion_mnist/train", "(T-shirt/top, Trouser", "(0, 1, 2, 3"});
  write_file(dir / "test_batch.bin", cifar10::cifar_records({1}));
  check_error<DataError>([&] { make_dataset("cifar10", dir.path(), Split::test, {.classes = digits}); },
                         {"cifar10/test", "airplane"});
  BOOST_TEST(make_dataset("synthetic", "", Split::test, {.classes = {"0", "1", "2"}, .size = 9, .num_classes = 3})
                 ->num_classes() == 3);
  check_error<DataError>([&] { make_dataset("synthetic", "", Split::test, {.classes = {"0", "1"}, .size = 9, .num_classes = 3}); },
                         {"synthetic/test", "(0, 1, 2)", "(0, 1)"});
}

BOOST_AUTO_TEST_CASE(open_dataset_limits_before_decoding_and_follows_the_training_classes) {
  test::TempDir dir("open_dataset");
  write_tiny_png(dir / "train" / "cat" / "0.png", 1);
  write_tiny_png(dir / "train" / "cat" / "1.png", 2);
  write_tiny_png(dir / "train" / "dog" / "0.png", 3);
  write_file(dir / "train" / "zebra" / "0.jpg", {0xff, 0xd8, 0x00, 0x11});  // past train_limit: never read
  write_tiny_png(dir / "test" / "cat" / "0.png", 4);
  write_tiny_png(dir / "test" / "zebra" / "0.png", 5);
  const tessera::train::TrainConfig cfg = tessera::train::load_config_string(fmt::format(R"(
model: {{image_size: 4, patch_size: 2, channels: 3, num_classes: 3, dim: 8, depth: 1, heads: 1, mlp_dim: 8}}
data: {{dataset: image_folder, root: "{}", train_limit: 3, normalize: none}}
)", dir.path().string()), "folder.yaml");
  const DatasetPtr train = tessera::train::open_dataset(cfg, Split::train);
  BOOST_TEST(train->size() == 3);
  BOOST_TEST((train->class_names() == std::vector<std::string>{"cat", "dog", "zebra"}));
  const DatasetPtr test = tessera::train::open_dataset(cfg, Split::test, train->class_names());
  BOOST_TEST(test->label(1) == 2);
  BOOST_TEST(tessera::train::open_dataset(cfg, Split::test)->label(1) == 1);  // its own numbering
}

BOOST_AUTO_TEST_CASE(fingerprints_round_trip_and_report_changed_files) {
  test::TempDir dir("fingerprint");
  write_file(dir / "train-images-idx3-ubyte", idx_images(3, 2, 3, kPixels));
  write_file(dir / "train-labels-idx1-ubyte", idx_labels(kLabels));
  const Fingerprint before = load_mnist(dir.path(), Split::train)->fingerprint();
  BOOST_TEST(before.dataset == "mnist/train");
  BOOST_TEST((Fingerprint::parse(before.to_string()) == before));
  // Loading again (same content, new mtime) matches.
  write_file(dir / "train-labels-idx1-ubyte", idx_labels(kLabels));
  BOOST_TEST((load_mnist(dir.path(), Split::train)->fingerprint() == before));
  // One label changed: same size, different digest, named in the diff.
  write_file(dir / "train-labels-idx1-ubyte", idx_labels({7, 1, 9}));
  const Fingerprint after = load_mnist(dir.path(), Split::train)->fingerprint();
  BOOST_TEST(!(after == before));
  const std::string diff = fingerprint_diff(before, after);
  BOOST_TEST(diff.find("train-labels-idx1-ubyte: 11 bytes crc32:") == 0u, diff);
  BOOST_TEST(diff.find("train-images") == std::string::npos, diff);
  Fingerprint fewer = after;
  fewer.entries.pop_back();
  BOOST_TEST(fingerprint_diff(fewer, after) == "train-labels-idx1-ubyte: new");
  BOOST_TEST(fingerprint_diff(after, fewer) == "train-labels-idx1-ubyte: missing now");
  check_error<DataError>([] { Fingerprint::parse("nonsense"); }, {"line 1"});
  check_error<DataError>([] { Fingerprint::parse("dataset\tx\nfile\tbig\tcrc32:0"); }, {"line 2", "'big'"});
}

BOOST_AUTO_TEST_CASE(channel_stats_are_exact) {
  // Channel 0 holds 0 and 255 (mean 0.5, std 0.5); channel 1 holds 51 everywhere (0.2, 0).
  Bytes pixels{0, 255, 51, 51, 255, 0, 51, 51};
  const InMemoryDataset ds({"s", {2, 1, 2}, 2, {}, {}}, pixels, {0, 1});
  const ChannelStats s = compute_channel_stats(ds);
  BOOST_TEST(s.mean[0] == 0.5, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(s.std[0] == 0.5, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(s.mean[1] == 0.2, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(s.std[1] == 0.0);
  check_error<DataError>([] { InMemoryDataset({"s", {1, 1, 1}, 2, {}, {}}, {1, 2}, {0, 2}); },
                         {"label 2 at index 1 is out of range [0, 2)"});
  check_error<DataError>([] { InMemoryDataset({"s", {1, 1, 2}, 2, {}, {}}, {1, 2, 3}, {0, 1}); },
                         {"need 4 pixel bytes, got 3"});
}

BOOST_AUTO_TEST_SUITE_END()

// ==================================================================== transforms

BOOST_AUTO_TEST_SUITE(augmentation)

// in: one (1, 3, 3) image 1..9; returns the output of `t` for sample s.
std::vector<float> run(const TransformPtr& t, std::uint64_t sample, ImageShape in = {1, 3, 3}) {
  std::vector<float> x(static_cast<std::size_t>(in.numel()));
  std::iota(x.begin(), x.end(), 1.0f);
  std::vector<float> y(static_cast<std::size_t>(t->output_shape(in).numel()), -1.0f);
  SampleRng rng(5, RngDomain::augment, 0, sample, 0);
  t->apply(x, in, y, rng);
  return y;
}

using Image = std::vector<float>;

BOOST_AUTO_TEST_CASE(flip_mirrors_rows) {
  BOOST_TEST((run(transforms::random_horizontal_flip(1.0), 0) == Image{3, 2, 1, 6, 5, 4, 9, 8, 7}));
  BOOST_TEST((run(transforms::random_horizontal_flip(0.0), 0) == Image{1, 2, 3, 4, 5, 6, 7, 8, 9}));
  int flipped = 0;
  for (std::uint64_t s = 0; s < 400; ++s) flipped += run(transforms::random_horizontal_flip(0.5), s)[0] == 3;
  BOOST_TEST((flipped > 150 && flipped < 250), flipped << " of 400 flipped");
}

// The nine translations of 1..9 by (dy, dx) in [-1, 1]^2 with zero fill.
std::set<Image> shifted_by_one() {
  std::set<Image> out;
  for (int dy = -1; dy <= 1; ++dy)
    for (int dx = -1; dx <= 1; ++dx) {
      Image img(9, 0.0f);
      for (int y = 0; y < 3; ++y)
        for (int x = 0; x < 3; ++x) {
          const int sy = y - dy, sx = x - dx;
          if (sy >= 0 && sy < 3 && sx >= 0 && sx < 3) img[y * 3 + x] = static_cast<float>(sy * 3 + sx + 1);
        }
      out.insert(img);
    }
  return out;
}

BOOST_AUTO_TEST_CASE(crop_with_padding_and_shift_produce_exactly_the_nine_translations) {
  const std::set<Image> expected = shifted_by_one();
  BOOST_TEST_REQUIRE(expected.size() == 9u);
  BOOST_TEST(expected.count(Image{0, 0, 0, 0, 1, 2, 0, 4, 5}) == 1u);  // content moved down-right
  for (const TransformPtr& t : {transforms::random_crop({.padding = 1}), transforms::random_shift(1)}) {
    std::set<Image> seen;
    for (std::uint64_t s = 0; s < 300; ++s) {
      const Image y = run(t, s);
      BOOST_TEST(expected.count(y) == 1u, t->describe() << " produced an image that is no translation");
      seen.insert(y);
    }
    BOOST_TEST(seen.size() == 9u, t->describe() << " produced " << seen.size() << " of the 9 translations");
  }
  BOOST_TEST((run(transforms::random_shift(0), 3) == Image{1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

BOOST_AUTO_TEST_CASE(crop_to_a_smaller_window) {
  const TransformPtr t = transforms::random_crop({.height = 2, .width = 2});
  BOOST_TEST((t->output_shape({1, 3, 3}) == ImageShape{1, 2, 2}));
  const std::set<Image> expected{{1, 2, 4, 5}, {2, 3, 5, 6}, {4, 5, 7, 8}, {5, 6, 8, 9}};
  std::set<Image> seen;
  for (std::uint64_t s = 0; s < 100; ++s) seen.insert(run(t, s));
  BOOST_TEST((seen == expected));
  check_error<ConfigError>([] { transforms::random_crop({.height = 6, .padding = 1})->output_shape({1, 3, 3}); },
                           {"6x3 window does not fit"});
}

BOOST_AUTO_TEST_CASE(normalize_uses_per_channel_mean_and_std) {
  const TransformPtr t = transforms::normalize({0.5, 2.0}, {0.25, 4.0});
  std::vector<float> x{0.0f, 1.0f, 0.5f, 6.0f}, y(4);
  SampleRng rng(0, RngDomain::augment, 0, 0, 0);
  t->apply(x, {2, 1, 2}, y, rng);
  BOOST_TEST((y == std::vector<float>{-2.0f, 2.0f, -0.375f, 1.0f}));
  check_error<ConfigError>([&] { t->output_shape({3, 2, 2}); }, {"2 mean/std values", "3 channels"});
  check_error<ConfigError>([] { transforms::normalize({0.5}, {0.0}); }, {"std must be positive"});
  check_error<ConfigError>([] { transforms::normalize({0.5, 0.5}, {1.0}); }, {"mean has 2 values and std 1"});
  check_error<ConfigError>([] { transforms::random_horizontal_flip(1.5); }, {"p = 1.5"});
  check_error<ConfigError>([] { transforms::random_shift(-1); }, {"max_shift -1"});
}

BOOST_AUTO_TEST_CASE(sample_rng_streams_are_reproducible_and_distinct) {
  auto draws = [](std::uint64_t seed, std::uint64_t epoch, std::uint64_t sample, std::uint32_t stream) {
    SampleRng r(seed, RngDomain::augment, epoch, sample, stream);
    std::vector<std::uint32_t> v;
    for (int i = 0; i < 9; ++i) v.push_back(r.next_u32());
    return v;
  };
  BOOST_TEST((draws(1, 2, 3, 4) == draws(1, 2, 3, 4)));
  BOOST_TEST((draws(1, 2, 3, 4) != draws(2, 2, 3, 4)));
  BOOST_TEST((draws(1, 2, 3, 4) != draws(1, 3, 3, 4)));
  BOOST_TEST((draws(1, 2, 3, 4) != draws(1, 2, 4, 4)));
  BOOST_TEST((draws(1, 2, 3, 4) != draws(1, 2, 3, 5)));
  SampleRng r(9, RngDomain::augment, 0, 0, 0);
  std::vector<int> hist(5, 0);
  for (int i = 0; i < 5000; ++i) {
    const std::int64_t v = r.uniform_int(-2, 2);
    BOOST_TEST_REQUIRE((v >= -2 && v <= 2));
    ++hist[static_cast<std::size_t>(v + 2)];
  }
  for (int h : hist) BOOST_TEST((h > 850 && h < 1150), "bucket count " << h);
  BOOST_CHECK_THROW(SampleRng(0, RngDomain::augment, 0, 0, 256), Error);
}

BOOST_AUTO_TEST_SUITE_END()

// ==================================================================== DataLoader

BOOST_AUTO_TEST_SUITE(loader)

BOOST_AUTO_TEST_CASE(batches_cover_the_epoch_exactly_once) {
  const auto ds = tiny_dataset(10);
  DataLoader loader(ds, {.batch_size = 3, .seed = 4});
  BOOST_TEST(loader.num_batches() == 4);
  const std::vector<Batch> batches = collect(loader);
  BOOST_TEST_REQUIRE(batches.size() == 4u);
  std::vector<std::int64_t> seen;
  for (std::size_t k = 0; k < batches.size(); ++k) {
    const Batch& b = batches[k];
    BOOST_TEST(b.index == static_cast<std::int64_t>(k));
    BOOST_TEST(b.epoch == 0);
    BOOST_TEST(b.size() == (k < 3 ? 3 : 1));
    BOOST_TEST((b.images.shape() == Shape{b.size(), 1, 2, 2}));
    BOOST_TEST(b.images.dtype() == DType::f32);
    BOOST_TEST((b.labels.shape() == Shape{b.size()}));
    BOOST_TEST(b.labels.dtype() == DType::i64);
    const auto images = b.images.to_vector<float>();
    const auto labels = b.labels.to_vector<std::int64_t>();
    for (std::int64_t j = 0; j < b.size(); ++j) {
      const std::int64_t s = b.samples[static_cast<std::size_t>(j)];
      BOOST_TEST(labels[static_cast<std::size_t>(j)] == ds->label(s));
      const Bytes raw = ds->image(s);
      for (std::size_t p = 0; p < 4; ++p) BOOST_TEST(images[j * 4 + p] == raw[p] / 255.0f);
      seen.push_back(s);
    }
  }
  std::sort(seen.begin(), seen.end());
  std::vector<std::int64_t> all(10);
  std::iota(all.begin(), all.end(), 0);
  BOOST_TEST((seen == all));
}

BOOST_AUTO_TEST_CASE(drop_last_drops_the_short_batch) {
  DataLoader loader(tiny_dataset(10), {.batch_size = 3, .drop_last = true});
  BOOST_TEST(loader.num_batches() == 3);
  std::set<std::int64_t> seen;
  for (const Batch& b : collect(loader)) {
    BOOST_TEST(b.size() == 3);
    seen.insert(b.samples.begin(), b.samples.end());
  }
  BOOST_TEST(seen.size() == 9u);
  BOOST_TEST(DataLoader(tiny_dataset(2), {.batch_size = 3, .drop_last = true}).num_batches() == 0);
  BOOST_TEST(DataLoader(tiny_dataset(9), {.batch_size = 3, .drop_last = true}).num_batches() == 3);
}

BOOST_AUTO_TEST_CASE(shuffle_changes_per_epoch_and_repeats_per_seed) {
  const auto ds = tiny_dataset(50);
  DataLoader a(ds, {.batch_size = 8, .seed = 1}), b(ds, {.batch_size = 8, .seed = 1}),
      c(ds, {.batch_size = 8, .seed = 2}), plain(ds, {.batch_size = 8, .shuffle = false});
  std::vector<std::int64_t> identity(50);
  std::iota(identity.begin(), identity.end(), 0);
  for (std::int64_t e : {0, 1, 7}) {
    auto order = a.epoch_order(e);
    BOOST_TEST((order == b.epoch_order(e)));
    BOOST_TEST((order != c.epoch_order(e)));
    BOOST_TEST((order != identity));
    std::sort(order.begin(), order.end());
    BOOST_TEST((order == identity));  // a permutation
    BOOST_TEST((plain.epoch_order(e) == identity));
  }
  BOOST_TEST((a.epoch_order(0) != a.epoch_order(1)));
  // Each pass of a plain loop is the next epoch.
  const auto first = collect(a), second = collect(a);
  BOOST_TEST(first.front().epoch == 0);
  BOOST_TEST(second.front().epoch == 1);
  BOOST_TEST((first.front().samples != second.front().samples));
  BOOST_TEST(a.epoch() == 2);
  BOOST_TEST((same_batches(first, collect(b))));
}

BOOST_AUTO_TEST_CASE(batches_do_not_depend_on_prefetch_or_workers) {
  const auto ds = std::make_shared<SyntheticDataset>(SyntheticOptions{.size = 203, .shape = {3, 6, 5}});
  const std::vector<TransformPtr> pipeline{transforms::random_crop({.padding = 2}),
                                           transforms::random_horizontal_flip(),
                                           transforms::random_shift(1),
                                           transforms::normalize({0.5, 0.4, 0.3}, {0.2, 0.25, 0.3})};
  std::vector<std::vector<Batch>> runs;
  for (auto [prefetch, workers] : std::vector<std::pair<int, int>>{{0, 1}, {1, 1}, {3, 1}, {4, 3}, {2, 8}}) {
    DataLoader loader(ds, {.batch_size = 16, .seed = 9, .transforms = pipeline, .prefetch = prefetch,
                           .workers = workers});
    std::vector<Batch> all = collect(loader);
    const std::vector<Batch> next = collect(loader);
    all.insert(all.end(), next.begin(), next.end());
    runs.push_back(std::move(all));
  }
  BOOST_TEST_REQUIRE(runs[0].size() == 26u);
  for (std::size_t r = 1; r < runs.size(); ++r) BOOST_TEST(same_batches(runs[0], runs[r]), "run " << r);
  // Augmentation is per sample, not per batch position: another batch size gives each
  // sample the same pixels.
  DataLoader other(ds, {.batch_size = 5, .seed = 9, .transforms = pipeline});
  const Batch b = other.batch(1, 3);
  const std::int64_t sample = b.samples[2];
  const std::int64_t numel = 3 * 6 * 5;
  for (const Batch& ref : runs[0])
    for (std::size_t j = 0; j < ref.samples.size(); ++j)
      if (ref.epoch == 1 && ref.samples[j] == sample) {
        const auto x = ref.images.to_vector<float>(), y = b.images.to_vector<float>();
        BOOST_TEST(std::equal(x.begin() + j * numel, x.begin() + (j + 1) * numel, y.begin() + 2 * numel));
      }
}

BOOST_AUTO_TEST_CASE(augmentation_depends_on_seed_epoch_and_sample) {
  // 64 copies of one image: with no augmentation every row of the batch would be equal.
  const auto ds = std::make_shared<InMemoryDataset>(
      InMemoryDataset::Info{"copies", {1, 4, 4}, 1}, [] {
        Bytes p(64 * 16);
        for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<std::uint8_t>(1 + i % 16 * 15);
        return p;
      }(), std::vector<std::int32_t>(64, 0));
  const std::vector<TransformPtr> pipeline{transforms::random_crop({.padding = 2}),
                                           transforms::random_horizontal_flip()};
  auto images = [&](std::uint64_t seed, std::int64_t epoch) {
    DataLoader loader(ds, {.batch_size = 64, .shuffle = false, .seed = seed, .transforms = pipeline});
    return loader.batch(epoch, 0).images.to_vector<float>();
  };
  auto distinct_rows = [](const std::vector<float>& x) {
    std::set<std::vector<float>> rows;
    for (std::size_t j = 0; j < 64; ++j) rows.emplace(x.begin() + j * 16, x.begin() + (j + 1) * 16);
    return rows.size();
  };
  const auto base = images(1, 0);
  BOOST_TEST(distinct_rows(base) > 20u);  // samples draw independently (50 outcomes each)
  BOOST_TEST((images(1, 0) == base));
  auto changed_rows = [&](const std::vector<float>& other) {
    int n = 0;
    for (std::size_t j = 0; j < 64; ++j)
      n += !std::equal(base.begin() + j * 16, base.begin() + (j + 1) * 16, other.begin() + j * 16);
    return n;
  };
  BOOST_TEST(changed_rows(images(1, 1)) > 48, "another epoch re-draws the augmentation");
  BOOST_TEST(changed_rows(images(2, 0)) > 48, "another seed re-draws the augmentation");
}

BOOST_AUTO_TEST_CASE(starting_at_batch_k_equals_skipping_k_batches) {
  const auto ds = tiny_dataset(37, {1, 3, 3});
  const LoaderOptions opts{.batch_size = 5, .seed = 3,
                           .transforms = {transforms::random_shift(1), transforms::random_horizontal_flip()}};
  DataLoader full(ds, opts);
  full.set_epoch(4);
  const std::vector<Batch> all = collect(full);
  BOOST_TEST_REQUIRE(all.size() == 8u);
  for (std::int64_t k : {0, 1, 5, 7, 8}) {
    DataLoader resumed(ds, opts);
    resumed.set_epoch(4, k);
    const std::vector<Batch> rest = collect(resumed);
    BOOST_TEST(same_batches(rest, std::vector<Batch>(all.begin() + k, all.end())), "k = " << k);
    BOOST_TEST(resumed.epoch() == 5);
    BOOST_TEST(resumed.start_batch() == 0);
    if (k < 8) BOOST_TEST(same_batches({resumed.batch(4, k)}, {all[static_cast<std::size_t>(k)]}));
  }
  DataLoader bad(ds, opts);
  check_error<Error>([&] { bad.set_epoch(0, 9); }, {"start batch 9 is out of range [0, 8]"});
  check_error<Error>([&] { bad.set_epoch(-1); }, {"epoch -1"});
  check_error<Error>([&] { bad.batch(0, 8); }, {"index 8 is out of range [0, 8)"});
}

BOOST_AUTO_TEST_CASE(structured_bindings_and_transforms_in_batches) {
  // One 1x1x3 image [0, 51, 255] -> normalised with mean 0.2 and std 0.5.
  const auto ds = std::make_shared<InMemoryDataset>(InMemoryDataset::Info{"one", {1, 1, 3}, 2, {}, {}},
                                                    Bytes{0, 51, 255}, std::vector<std::int32_t>{1});
  DataLoader loader(ds, {.batch_size = 4, .transforms = {transforms::random_horizontal_flip(1.0),
                                                         transforms::normalize({0.2}, {0.5})}});
  int n = 0;
  for (auto [x, y] : loader) {
    ++n;
    BOOST_TEST((x.shape() == Shape{1, 1, 1, 3}));
    const auto v = x.to_vector<float>();
    BOOST_TEST(v[0] == (1.0f - 0.2f) / 0.5f, boost::test_tools::tolerance(1e-6f));
    BOOST_TEST(v[1] == (0.2f - 0.2f) / 0.5f, boost::test_tools::tolerance(1e-6f));
    BOOST_TEST(v[2] == (0.0f - 0.2f) / 0.5f, boost::test_tools::tolerance(1e-6f));
    BOOST_TEST(y.to_vector<std::int64_t>() == std::vector<std::int64_t>{1});
  }
  BOOST_TEST(n == 1);
  BOOST_TEST((DataLoader(ds, {.transforms = {transforms::random_crop({.height = 1, .width = 2})}}).image_shape() ==
              ImageShape{1, 1, 2}));
}

BOOST_AUTO_TEST_CASE(worker_errors_surface_in_the_consumer_at_their_batch) {
  for (std::int64_t prefetch : {0, 1, 3}) {
    const auto ds = std::make_shared<FailingDataset>(40, 17);
    DataLoader loader(ds, {.batch_size = 4, .shuffle = false, .prefetch = prefetch, .workers = 2});
    std::vector<std::int64_t> delivered;
    try {
      for (const Batch& b : loader) delivered.push_back(b.index);
      BOOST_ERROR("no exception with prefetch " << prefetch);
    } catch (const DataError& e) {
      BOOST_TEST(std::string(e.what()) == "failing: sample 17 is unreadable");
    }
    BOOST_TEST((delivered == std::vector<std::int64_t>{0, 1, 2, 3}), "prefetch " << prefetch);
    // Workers stop at the failure rather than read the whole epoch.
    BOOST_TEST(ds->reads.load() < 40, ds->reads.load() << " reads with prefetch " << prefetch);
  }
}

BOOST_AUTO_TEST_CASE(leaving_a_loop_early_stops_the_workers) {
  const auto ds = std::make_shared<FailingDataset>(100000, -1);
  DataLoader loader(ds, {.batch_size = 10, .shuffle = false, .prefetch = 3, .workers = 2});
  const auto start = std::chrono::steady_clock::now();
  for (const Batch& b : loader)
    if (b.index == 2) break;
  // The iterator is gone, so the workers have been joined; they prepared a few batches
  // past the consumer at most.
  const int reads = ds->reads.load();
  BOOST_TEST(reads <= 10 * (3 + 3 + 2), reads << " reads");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  BOOST_TEST(ds->reads.load() == reads);
  BOOST_TEST((std::chrono::steady_clock::now() - start < std::chrono::seconds(10)));
}

BOOST_AUTO_TEST_CASE(bad_options_are_config_errors) {
  const auto ds = tiny_dataset(4, {1, 2, 2});
  check_error<ConfigError>([&] { DataLoader(ds, {.batch_size = 0}); }, {"batch_size 0"});
  check_error<ConfigError>([&] { DataLoader(ds, {.prefetch = -1}); }, {"prefetch -1"});
  check_error<ConfigError>([&] { DataLoader(ds, {.workers = 0}); }, {"workers 0"});
  check_error<ConfigError>([&] { DataLoader(nullptr); }, {"no dataset"});
  check_error<ConfigError>([&] { DataLoader(ds, {.transforms = {transforms::normalize({0.1, 0.2, 0.3}, {1, 1, 1})}}); },
                           {"3 mean/std values", "(1,2,2)"});
  check_error<ConfigError>([&] { DataLoader(ds, {.transforms = {nullptr}}); }, {"null"});
}

BOOST_AUTO_TEST_CASE(images_are_fitted_to_the_model_by_centre_crop_or_resize) {
  // A 2x2 image [[0, 1], [2, 3]] (one channel).
  const std::vector<float> img{0, 1, 2, 3};
  SampleRng rng(0, RngDomain::augment, 0, 0, 0);
  const auto run = [&](const TransformPtr& t, std::int64_t h, std::int64_t w) {
    std::vector<float> out(static_cast<std::size_t>(h * w));
    BOOST_TEST((t->output_shape({1, 2, 2}) == ImageShape{1, h, w}));
    t->apply(img, {1, 2, 2}, out, rng);
    return out;
  };
  // Padded around, as torchvision's CenterCrop: 2x2 in the middle of 4x4, and of 5x3
  // (torchvision pads (5 - 2) // 2 = 1 row above, 2 below).
  BOOST_TEST(run(transforms::center_crop(4, 4), 4, 4) ==
                 (std::vector<float>{0, 0, 0, 0, 0, 0, 1, 0, 0, 2, 3, 0, 0, 0, 0, 0}),
             boost::test_tools::per_element());
  BOOST_TEST(run(transforms::center_crop(5, 3), 5, 3) ==
                 (std::vector<float>{0, 0, 0, 0, 1, 0, 2, 3, 0, 0, 0, 0, 0, 0, 0}),
             boost::test_tools::per_element());
  // Cut from round((2 - 1) / 2) = 0 (Python rounds halves to even), so the top-left pixel.
  BOOST_TEST(run(transforms::center_crop(1, 1), 1, 1) == (std::vector<float>{0}), boost::test_tools::per_element());
  // Bilinear, align_corners=False: PyTorch's F.interpolate(size=4, mode="bilinear") of the image.
  BOOST_TEST(run(transforms::resize(4, 4), 4, 4) ==
                 (std::vector<float>{0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3}),
             boost::test_tools::per_element());
  BOOST_CHECK_THROW(transforms::resize(0, 4), ConfigError);
}

BOOST_AUTO_TEST_CASE(data_fit_lets_a_dataset_of_another_size_train_a_model) {
  // 6x6 IDX images for a model of 8x8: refused, naming data.fit; fitted with it.
  test::TempDir dir("fit");
  for (const char* split : {"train", "t10k"}) {
    write_file(dir / fmt::format("{}-images-idx3-ubyte", split), idx_images(2, 6, 6, Bytes(72, 200)));
    write_file(dir / fmt::format("{}-labels-idx1-ubyte", split), idx_labels({1, 2}));
  }
  train::TrainConfig cfg = train::load_config_string(fmt::format(
      "model: {{image_size: 8, patch_size: 4}}\ndata: {{dataset: mnist, root: \"{}\", normalize: none}}\n",
      dir.path().string()));
  try {
    train::open_dataset(cfg, Split::train);
    BOOST_ERROR("6x6 images accepted by an 8x8 model");
  } catch (const ConfigError& e) {
    BOOST_TEST(std::string(e.what()).find("data.fit") != std::string::npos, e.what());
  }
  for (const train::Fit fit : {train::Fit::center, train::Fit::resize}) {
    cfg.data.fit = fit;
    const DatasetPtr data = train::open_dataset(cfg, Split::train);
    const DataLoader loader = train::make_loader(cfg, data, {}, false);
    const Batch b = loader.batch(0, 0);
    BOOST_TEST((b.images.shape() == Shape{2, 1, 8, 8}));
    const std::vector<float> px = b.images.to_vector<float>();
    const float corner = px[0], middle = px[4 * 8 + 4];
    BOOST_TEST(middle == 200.0f / 255.0f);
    BOOST_TEST(corner == (fit == train::Fit::center ? 0.0f : 200.0f / 255.0f));  // padding, or stretched
  }
}

BOOST_AUTO_TEST_SUITE_END()
