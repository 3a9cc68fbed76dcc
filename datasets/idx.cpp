#include "datasets/idx.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "datasets/file_io.h"

namespace tessera::datasets {
namespace {

std::uint32_t read_be32(const std::vector<std::uint8_t>& b, std::size_t at) {
  return (std::uint32_t{b[at]} << 24) | (std::uint32_t{b[at + 1]} << 16) |
         (std::uint32_t{b[at + 2]} << 8) | std::uint32_t{b[at + 3]};
}

// "file has N bytes" or, for gzip, "decompressed size is N bytes".
std::string actual_size(const detail::FileContent& f) {
  return fmt::format("{} {} bytes", f.gzipped ? "decompressed size is" : "file has", f.bytes.size());
}

// Checks the 4-byte magic: two zero bytes, element type 0x08 (unsigned byte), then the
// number of dimensions.
void check_magic(const std::filesystem::path& path, const detail::FileContent& f,
                 std::uint32_t expected, const char* what) {
  const std::string file = path.string();
  TESSERA_CHECK(f.bytes.size() >= 4, DataError,
                "{}: truncated: an IDX {} file starts with a 4-byte magic number, {}", file, what,
                actual_size(f));
  const std::uint32_t magic = read_be32(f.bytes, 0);
  TESSERA_CHECK((magic >> 16) == 0, DataError,
                "{}: bad magic number 0x{:08x}: not an IDX file (expected 0x{:08x} for {})", file,
                magic, expected, what);
  const std::uint32_t type = (magic >> 8) & 0xff;
  TESSERA_CHECK(type == 0x08, DataError,
                "{}: bad magic number 0x{:08x}: element type 0x{:02x} is not supported (expected "
                "0x{:08x}, unsigned bytes, for {})",
                file, magic, type, expected, what);
  const std::uint32_t dims = magic & 0xff, want_dims = expected & 0xff;
  TESSERA_CHECK(dims == want_dims, DataError,
                "{}: bad magic number 0x{:08x}: {} dimensions, but {} have {} (expected 0x{:08x})",
                file, magic, dims, what, want_dims, expected);
}

void check_size(const std::filesystem::path& path, const detail::FileContent& f,
                unsigned __int128 expected, const std::string& header_says) {
  const std::uint64_t got = f.bytes.size();
  // A hostile header can claim up to 2^96 bytes, more than fmt prints or a file holds.
  const std::string need = expected >> 63 ? std::string("more than 2^63")
                                           : std::to_string(static_cast<std::uint64_t>(expected));
  TESSERA_CHECK(got >= expected, DataError, "{}: truncated: header says {} ({} bytes), {}",
                path.string(), header_says, need, actual_size(f));
  TESSERA_CHECK(got <= expected, DataError,
                "{}: trailing data: header says {} ({} bytes), {} ({} extra)", path.string(),
                header_says, need, actual_size(f), got - static_cast<std::uint64_t>(expected));
}

}  // namespace

IdxImages read_idx_images(const std::filesystem::path& path) {
  detail::FileContent f = detail::read_file(path);
  check_magic(path, f, kIdxImagesMagic, "images");
  TESSERA_CHECK(f.bytes.size() >= 16, DataError,
                "{}: truncated: the images header is 16 bytes, {}", path.string(), actual_size(f));
  IdxImages out;
  out.count = read_be32(f.bytes, 4);
  out.rows = read_be32(f.bytes, 8);
  out.cols = read_be32(f.bytes, 12);
  TESSERA_CHECK(out.count > 0 && out.rows > 0 && out.cols > 0, DataError,
                "{}: header says {} images of {}x{}: every size must be positive", path.string(),
                out.count, out.rows, out.cols);
  const unsigned __int128 expected =
      16 + static_cast<unsigned __int128>(out.count) * static_cast<std::uint64_t>(out.rows) *
               static_cast<std::uint64_t>(out.cols);
  check_size(path, f, expected,
             fmt::format("{} images of {}x{}", out.count, out.rows, out.cols));
  out.entry = detail::content_entry(path, f.bytes);
  out.content = std::move(f.bytes);
  return out;
}

IdxLabels read_idx_labels(const std::filesystem::path& path) {
  detail::FileContent f = detail::read_file(path);
  check_magic(path, f, kIdxLabelsMagic, "labels");
  TESSERA_CHECK(f.bytes.size() >= 8, DataError, "{}: truncated: the labels header is 8 bytes, {}",
                path.string(), actual_size(f));
  const std::uint32_t count = read_be32(f.bytes, 4);
  TESSERA_CHECK(count > 0, DataError, "{}: header says 0 labels", path.string());
  check_size(path, f, 8 + static_cast<unsigned __int128>(count), fmt::format("{} labels", count));
  IdxLabels out;
  out.entry = detail::content_entry(path, f.bytes);
  out.content = std::move(f.bytes);
  return out;
}

std::shared_ptr<InMemoryDataset> load_idx(const std::filesystem::path& images_path,
                                          const std::filesystem::path& labels_path,
                                          std::int64_t num_classes, std::string name,
                                          std::vector<std::string> class_names) {
  IdxImages images = read_idx_images(images_path);
  IdxLabels labels = read_idx_labels(labels_path);
  TESSERA_CHECK(images.count == labels.count(), DataError,
                "{}: images file {} has {} images but labels file {} has {} labels", name,
                images_path.string(), images.count, labels_path.string(), labels.count());
  std::vector<std::int32_t> label_values(static_cast<std::size_t>(labels.count()));
  for (std::size_t i = 0; i < label_values.size(); ++i) {
    const int v = labels.content[labels.offset + i];
    TESSERA_CHECK(v < num_classes, DataError, "{}: label {} at index {} is out of range [0, {})",
                  labels_path.string(), v, i, num_classes);
    label_values[i] = v;
  }
  InMemoryDataset::Info info{std::move(name), ImageShape{1, images.rows, images.cols}, num_classes,
                             std::move(class_names), {}};
  info.fingerprint = {info.name, {images.entry, labels.entry}};
  return std::make_shared<InMemoryDataset>(std::move(info), std::move(images.content),
                                           std::move(label_values), images.offset);
}

IdxFiles find_idx_files(const std::filesystem::path& dir, Split split) {
  namespace fs = std::filesystem;
  TESSERA_CHECK(fs::is_directory(dir), IoError, "{}: not a directory (expected the IDX files in it)",
                dir.string());
  const std::string prefix = split == Split::train ? "train" : "t10k";
  auto find = [&](const std::string& kind, const std::string& suffix) {
    std::vector<std::string> tried;
    for (const char* sep : {"-", "."})
      for (const char* ext : {"", ".gz"}) {
        const std::string file = fmt::format("{}-{}{}{}{}", prefix, kind, sep, suffix, ext);
        if (fs::is_regular_file(dir / file)) return dir / file;
        tried.push_back(file);
      }
    throw IoError(fmt::format("{}: no {} {} file (looked for {})", dir.string(), split_name(split),
                              kind, fmt::join(tried, ", ")));
  };
  return {find("images", "idx3-ubyte"), find("labels", "idx1-ubyte")};
}

std::shared_ptr<InMemoryDataset> load_mnist(const std::filesystem::path& dir, Split split) {
  const IdxFiles files = find_idx_files(dir, split);
  return load_idx(files.images, files.labels, 10, fmt::format("mnist/{}", split_name(split)));
}

std::shared_ptr<InMemoryDataset> load_fashion_mnist(const std::filesystem::path& dir, Split split) {
  const IdxFiles files = find_idx_files(dir, split);
  return load_idx(files.images, files.labels, 10, fmt::format("fashion_mnist/{}", split_name(split)),
                  {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"});
}

}  // namespace tessera::datasets
