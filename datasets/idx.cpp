#include "tessera/datasets/idx.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "datasets/file_io.h"

namespace tessera::datasets {
namespace {

// How far past the promised end a reader looks for trailing data: enough to report a few
// extra bytes exactly, little enough that a decompression bomb behind a valid file costs
// nothing (its rest is never decompressed).
constexpr std::size_t kTrailingProbe = std::size_t{64} << 10;
// Content is read in pieces of this size so memory grows only with what the file holds.
constexpr std::size_t kReadChunk = std::size_t{16} << 20;

std::uint32_t read_be32(std::span<const std::uint8_t> b, std::size_t at) {
  return (std::uint32_t{b[at]} << 24) | (std::uint32_t{b[at + 1]} << 16) |
         (std::uint32_t{b[at + 2]} << 8) | std::uint32_t{b[at + 3]};
}

// "file has N bytes" or, for gzip, "decompressed size is N bytes" (N the bytes read, all
// there are when a read came back short).
std::string actual_size(const detail::InputFile& in) {
  return in.gzipped() ? fmt::format("decompressed size is {} bytes", in.bytes_read())
                      : fmt::format("file has {} bytes", in.file_size());
}

// A hostile header can claim up to 2^96 bytes, more than fmt prints or a file holds.
std::string byte_count(unsigned __int128 n) {
  return n >> 63 ? std::string("more than 2^63") : std::to_string(static_cast<std::uint64_t>(n));
}

// Checks the 4-byte magic: two zero bytes, element type 0x08 (unsigned byte), then the
// number of dimensions. `header` holds what could be read of the header.
void check_magic(const detail::InputFile& in, std::span<const std::uint8_t> header,
                 std::uint32_t expected, const char* what) {
  const std::string file = in.path().string();
  TESSERA_CHECK(header.size() >= 4, DataError,
                "{}: truncated: an IDX {} file starts with a 4-byte magic number, {}", file, what,
                actual_size(in));
  const std::uint32_t magic = read_be32(header, 0);
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

// Reads the header of `size` bytes (fewer when the file is shorter) and checks its magic.
std::vector<std::uint8_t> read_header(detail::InputFile& in, std::size_t size, std::uint32_t magic,
                                      const char* what) {
  std::vector<std::uint8_t> header(size);
  header.resize(in.read(header));
  check_magic(in, header, magic, what);
  TESSERA_CHECK(header.size() == size, DataError, "{}: truncated: the {} header is {} bytes, {}",
                in.path().string(), what, size, actual_size(in));
  return header;
}

// The whole content the header promises (header included, so the fingerprint covers the
// file as it is): `expected` bytes, of which the header has been read. Everything that can
// be refused without reading the data is refused first: a raw file of another size, a gzip
// file too small to decompress to the promise, a promise larger than the memory available.
// Then exactly the promise is read, and at most kTrailingProbe bytes more.
std::vector<std::uint8_t> read_promised(detail::InputFile& in, std::vector<std::uint8_t> header,
                                        unsigned __int128 expected, const std::string& header_says) {
  const std::string file = in.path().string(), need = byte_count(expected);
  if (!in.gzipped()) {
    const std::uint64_t got = in.file_size();
    TESSERA_CHECK(got >= expected, DataError, "{}: truncated: header says {} ({} bytes), file has {} bytes",
                  file, header_says, need, got);
    TESSERA_CHECK(got <= expected, DataError,
                  "{}: trailing data: header says {} ({} bytes), file has {} bytes ({} extra)", file,
                  header_says, need, got, got - static_cast<std::uint64_t>(expected));
  } else {
    const unsigned __int128 most = static_cast<unsigned __int128>(in.file_size()) * detail::kMaxDeflateRatio;
    TESSERA_CHECK(expected <= most, DataError,
                  "{}: truncated: header says {} ({} bytes), but {} bytes of gzip decompress to at "
                  "most {} bytes",
                  file, header_says, need, in.file_size(), byte_count(most));
  }
  detail::check_fits_in_memory(expected, fmt::format("{}: header says {} ({} bytes)", file, header_says, need));

  const auto total = static_cast<std::size_t>(expected);
  std::vector<std::uint8_t> content = std::move(header);
  content.reserve(total);  // address space only: pages are touched as the reads fill them
  while (content.size() < total) {
    const std::size_t at = content.size();
    content.resize(std::min(total, at + kReadChunk));
    const std::size_t got = in.read(std::span(content).subspan(at));
    TESSERA_CHECK(at + got == content.size(), DataError, "{}: truncated: header says {} ({} bytes), {}",
                  file, header_says, need, actual_size(in));
  }
  const std::uint64_t most = in.gzipped() ? in.file_size() * detail::kMaxDeflateRatio : in.file_size();
  std::vector<std::uint8_t> probe(std::min<std::uint64_t>(kTrailingProbe, most - std::min<std::uint64_t>(most, total) + 1));
  const std::size_t extra = in.read(probe);
  if (extra > 0) {
    // Below the probe's size the whole rest has been read and its size is exact.
    const bool exact = extra < probe.size();
    throw DataError(fmt::format("{}: trailing data: header says {} ({} bytes), {} {}{} bytes ({}{} extra)", file,
                                header_says, need, in.gzipped() ? "decompressed size is" : "file has",
                                exact ? "" : "at least ", total + extra, exact ? "" : "at least ", extra));
  }
  return content;
}

}  // namespace

IdxImages read_idx_images(const std::filesystem::path& path) {
  detail::InputFile in(path);
  std::vector<std::uint8_t> header = read_header(in, 16, kIdxImagesMagic, "images");
  IdxImages out;
  out.count = read_be32(header, 4);
  out.rows = read_be32(header, 8);
  out.cols = read_be32(header, 12);
  TESSERA_CHECK(out.count > 0 && out.rows > 0 && out.cols > 0, DataError,
                "{}: header says {} images of {}x{}: every size must be positive", path.string(),
                out.count, out.rows, out.cols);
  const unsigned __int128 expected =
      16 + static_cast<unsigned __int128>(out.count) * static_cast<std::uint64_t>(out.rows) *
               static_cast<std::uint64_t>(out.cols);
  out.content = read_promised(in, std::move(header), expected,
                              fmt::format("{} images of {}x{}", out.count, out.rows, out.cols));
  out.entry = detail::content_entry(path, out.content);
  return out;
}

IdxLabels read_idx_labels(const std::filesystem::path& path) {
  detail::InputFile in(path);
  std::vector<std::uint8_t> header = read_header(in, 8, kIdxLabelsMagic, "labels");
  const std::uint32_t count = read_be32(header, 4);
  TESSERA_CHECK(count > 0, DataError, "{}: header says 0 labels", path.string());
  IdxLabels out;
  out.content = read_promised(in, std::move(header), 8 + static_cast<unsigned __int128>(count),
                              fmt::format("{} labels", count));
  out.entry = detail::content_entry(path, out.content);
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
        // Whatever has the name is taken, so that a FIFO, a device or a dangling link in
        // its place is reported as such when it is opened rather than looked past.
        if (std::error_code ec; fs::exists(fs::symlink_status(dir / file, ec))) return dir / file;
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

DatasetSpec mnist_spec() {
  return {.name = "mnist",
          .summary = "MNIST handwritten digits: the four IDX files (raw or .gz), 28x28 grey, 10 classes",
          .open = [](const std::filesystem::path& root, Split split, const DatasetOptions&) -> DatasetPtr {
            return load_mnist(root, split);
          },
          .normalization = {{0.1307}, {0.3081}}};
}

DatasetSpec fashion_mnist_spec() {
  return {.name = "fashion_mnist",
          .summary = "Fashion-MNIST: IDX files as MNIST's, 28x28 grey, 10 named classes",
          .open = [](const std::filesystem::path& root, Split split, const DatasetOptions&) -> DatasetPtr {
            return load_fashion_mnist(root, split);
          },
          .normalization = {{0.2860}, {0.3530}}};
}

}  // namespace tessera::datasets
