#include "tessera/datasets/image_folder.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>

#include "datasets/file_io.h"

namespace tessera::datasets {

namespace fs = std::filesystem;

bool ImageFolderDataset::is_image_file(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

namespace {

// Every image, whatever its format: not empty, and within kMaxImagePixels (checked on the
// header, before stb_image allocates and decodes).
void check_image_size(std::int64_t width, std::int64_t height, const std::string& what) {
  TESSERA_CHECK(width > 0 && height > 0, DataError, "{}: the image is empty ({}x{} pixels)", what,
                width, height);
  TESSERA_CHECK(width * height <= kMaxImagePixels, DataError,
                "{}: {}x{} pixels is larger than the {} pixels an image may have", what, width,
                height, kMaxImagePixels);
}

// stb_image decodes a dozen formats, told apart by content; its rarely used decoders are the
// least hardened (fuzz_image found Debian's 16-bit PNM path reading past its buffer). Only
// these formats reach it, and PNM only once its header and pixel bytes have been checked here.
enum class ImageFormat { png, jpeg, bmp, pnm, unknown };

ImageFormat sniff_format(std::span<const std::uint8_t> b) {
  auto starts = [&](std::initializer_list<std::uint8_t> magic) {
    return b.size() >= magic.size() && std::equal(magic.begin(), magic.end(), b.begin());
  };
  if (starts({0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'})) return ImageFormat::png;
  if (starts({0xff, 0xd8})) return ImageFormat::jpeg;
  if (starts({'B', 'M'})) return ImageFormat::bmp;
  if (starts({'P', '5'}) || starts({'P', '6'})) return ImageFormat::pnm;
  return ImageFormat::unknown;
}

// A binary PGM (P5) or PPM (P6): "P5 <width> <height> <maxval>" separated by whitespace or
// '#' comments (to the end of the line), one whitespace byte, then width*height*channels
// bytes of 8-bit samples.
void check_pnm(std::span<const std::uint8_t> b, const std::string& what) {
  std::size_t pos = 2;
  auto fields = std::array<std::int64_t, 3>{};
  for (std::int64_t& field : fields) {
    for (;;) {
      while (pos < b.size() && std::isspace(b[pos])) ++pos;
      if (pos < b.size() && b[pos] == '#')
        while (pos < b.size() && b[pos] != '\n' && b[pos] != '\r') ++pos;
      else
        break;
    }
    TESSERA_CHECK(pos < b.size() && std::isdigit(b[pos]), DataError,
                  "{}: PNM header is cut short or not a number", what);
    for (field = 0; pos < b.size() && std::isdigit(b[pos]); ++pos) {
      field = field * 10 + (b[pos] - '0');
      TESSERA_CHECK(field <= kMaxImagePixels, DataError, "{}: PNM header value is too large", what);
    }
  }
  const auto [width, height, maxval] = fields;
  TESSERA_CHECK(maxval >= 1 && maxval <= 255, DataError,
                "{}: PNM with maximum value {} (only 8-bit PGM/PPM, maximum 1 to 255, is supported)",
                what, maxval);
  check_image_size(width, height, what);
  TESSERA_CHECK(pos < b.size() && std::isspace(b[pos]), DataError,
                "{}: PNM header does not end in whitespace", what);
  const std::int64_t channels = b[1] == '5' ? 1 : 3;
  const auto have = static_cast<std::int64_t>(b.size() - pos - 1);
  TESSERA_CHECK(have >= width * height * channels, DataError,
                "{}: PNM holds {} bytes of pixels, its {}x{}x{} header needs {}", what, have, width,
                height, channels, width * height * channels);
}

// An uncompressed BMP (stb_image decodes no other kind) stores every row: the file must hold
// what its header promises, or stb_image would decode a huge image out of a few bytes
// (fuzz_image: 71 bytes claiming 4x16777213 pixels).
void check_bmp(std::span<const std::uint8_t> b, const std::string& what) {
  auto u32 = [&](std::size_t at) {
    return static_cast<std::uint32_t>(b[at]) | static_cast<std::uint32_t>(b[at + 1]) << 8 |
           static_cast<std::uint32_t>(b[at + 2]) << 16 | static_cast<std::uint32_t>(b[at + 3]) << 24;
  };
  auto u16 = [&](std::size_t at) { return static_cast<std::uint32_t>(b[at] | b[at + 1] << 8); };
  TESSERA_CHECK(b.size() >= 26, DataError, "{}: BMP header is cut short", what);
  const std::uint32_t data_offset = u32(10), header_size = u32(14);
  const bool core = header_size == 12;  // OS/2 BITMAPCOREHEADER: 16-bit sides, no compression
  TESSERA_CHECK(core || (header_size >= 40 && b.size() >= 34), DataError,
                "{}: BMP header is cut short or of unknown size {}", what, header_size);
  // Signed 32-bit sides in the usual header (a negative height: rows stored top-down).
  auto side = [&](std::size_t at) { return std::int64_t{static_cast<std::int32_t>(u32(at))}; };
  const std::int64_t width = core ? std::int64_t{u16(18)} : side(18);
  const std::int64_t height = core ? std::int64_t{u16(20)} : side(22);
  const std::uint32_t bits = core ? u16(24) : u16(28), compression = core ? 0 : u32(30);
  // stb_image refuses RLE (1, 2) but decodes any other unknown value as uncompressed.
  TESSERA_CHECK(compression == 0 || compression == 3, DataError,
                "{}: BMP compression {} is not supported (only uncompressed BMP)", what, compression);
  const std::int64_t rows = std::abs(height);
  check_image_size(width, rows, what);
  const std::int64_t row_bytes = (bits * width + 31) / 32 * 4;
  const std::int64_t needed = data_offset + row_bytes * rows;
  TESSERA_CHECK(static_cast<std::int64_t>(b.size()) >= needed, DataError,
                "{}: BMP holds {} bytes, its {}x{} pixels of {} bits need {}", what, b.size(), width,
                rows, bits, needed);
}

}  // namespace

void decode_image(std::span<const std::uint8_t> encoded, const ImageShape& shape,
                  std::span<std::uint8_t> out, const std::string& what) {
  TESSERA_CHECK(shape.channels == 1 || shape.channels == 3, ConfigError,
                "decode_image: {} channels requested; 1 or 3 are supported", shape.channels);
  TESSERA_CHECK(static_cast<std::int64_t>(out.size()) == shape.numel(), ShapeError,
                "decode_image: output holds {} bytes, shape {} needs {}", out.size(), shape.str(),
                shape.numel());
  TESSERA_CHECK(encoded.size() <= static_cast<std::size_t>(INT32_MAX), DataError,
                "{}: {} bytes is too large to decode", what, encoded.size());
  switch (sniff_format(encoded)) {
    case ImageFormat::unknown:
      throw DataError(fmt::format("{}: cannot decode image: not a PNG, JPEG, BMP or binary PGM/PPM image", what));
    case ImageFormat::pnm: check_pnm(encoded, what); break;
    case ImageFormat::bmp: check_bmp(encoded, what); break;
    case ImageFormat::png:
    case ImageFormat::jpeg: break;
  }
  auto cannot_decode = [&] {
    const char* why = stbi_failure_reason();
    return DataError(fmt::format("{}: cannot decode image: {}", what, why ? why : "unknown reason"));
  };
  int w = 0, h = 0, file_channels = 0;
  const int c = static_cast<int>(shape.channels);
  // A header can claim a huge image in a few bytes (found by fuzz_image: 18 bytes declaring
  // 20480x14389); refuse before stb_image allocates and decodes it. A header stb_image cannot
  // read is refused too, so that nothing is decoded unchecked.
  if (!stbi_info_from_memory(encoded.data(), static_cast<int>(encoded.size()), &w, &h, &file_channels))
    throw cannot_decode();
  // stb_image accepts a PNG or JPEG header with a zero side too; stb_image_resize asserts on it.
  check_image_size(w, h, what);
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(encoded.data(), static_cast<int>(encoded.size()), &w, &h,
                            &file_channels, c),
      stbi_image_free);
  if (!pixels) throw cannot_decode();
  // pixels: (h, w, c) interleaved; resize in that layout, then split into planes.
  std::vector<std::uint8_t> resized;
  const std::uint8_t* hwc = pixels.get();
  if (h != shape.height || w != shape.width) {
    resized.resize(static_cast<std::size_t>(shape.numel()));
    const int ok = stbir_resize_uint8(pixels.get(), w, h, 0, resized.data(), static_cast<int>(shape.width),
                                      static_cast<int>(shape.height), 0, c);
    TESSERA_CHECK(ok, DataError, "{}: cannot resize {}x{} to {}x{}", what, w, h, shape.width,
                  shape.height);
    hwc = resized.data();
  }
  const std::int64_t plane = shape.height * shape.width;
  for (std::int64_t p = 0; p < plane; ++p)
    for (int ch = 0; ch < c; ++ch) out[ch * plane + p] = hwc[p * c + ch];
}

std::vector<std::uint8_t> read_image_file(const fs::path& path) {
  detail::InputFile in(path, detail::InputFile::Content::raw);
  TESSERA_CHECK(in.file_size() <= static_cast<std::uint64_t>(kMaxImageFileBytes), DataError,
                "{}: {} bytes is larger than the {} bytes an image file may have", path.string(),
                in.file_size(), kMaxImageFileBytes);
  std::vector<std::uint8_t> bytes(in.file_size());
  bytes.resize(in.read(bytes));  // a file that shrank since it was opened gives what it has
  return bytes;
}

ImageFolderDataset::ImageFolderDataset(const fs::path& root, ImageFolderOptions options,
                                       std::string name)
    : name_(name.empty() ? fmt::format("image_folder:{}", root.string()) : std::move(name)),
      shape_{options.channels, options.height, options.width} {
  TESSERA_CHECK(options.channels == 1 || options.channels == 3, ConfigError,
                "{}: channels must be 1 or 3, got {}", name_, options.channels);
  TESSERA_CHECK(options.height > 0 && options.width > 0, ConfigError,
                "{}: the image height and width must be given (got {}x{})", name_, options.height,
                options.width);
  TESSERA_CHECK(options.limit >= 0, ConfigError, "{}: the limit must not be negative, got {}", name_,
                options.limit);
  TESSERA_CHECK(fs::is_directory(root), IoError, "{}: not a directory", root.string());

  // Hidden entries (".git", macOS "._name.png" resource forks) are never data.
  auto hidden = [](const fs::path& p) { return p.filename().string().starts_with("."); };
  struct ClassFiles {
    std::size_t first = 0, count = 0;
  };
  std::vector<ClassFiles> spans;  // per class in classes_
  try {
    std::vector<std::string> folders;
    for (const auto& entry : fs::directory_iterator(root))
      if (entry.is_directory() && !hidden(entry.path())) folders.push_back(entry.path().filename().string());
    std::sort(folders.begin(), folders.end());
    TESSERA_CHECK(!folders.empty(), DataError,
                  "{}: no class folders (expected one subfolder of images per class)", root.string());
    classes_ = options.classes.empty() ? folders : options.classes;
    // Labels are indices into classes_: a folder outside the list would have no label that
    // means the same class as in the training split.
    for (const std::string& folder : folders)
      TESSERA_CHECK(std::find(classes_.begin(), classes_.end(), folder) != classes_.end(), DataError,
                    "{}: class folder '{}' is not one of the training split's classes ({})",
                    (root / folder).string(), folder, fmt::join(classes_, ", "));
    spans.resize(classes_.size());
    for (std::size_t c = 0; c < classes_.size(); ++c) {
      if (!std::binary_search(folders.begin(), folders.end(), classes_[c])) continue;
      const fs::path dir = root / classes_[c];
      std::vector<fs::path> found;
      for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) {
        if (hidden(it->path())) {
          if (it->is_directory()) it.disable_recursion_pending();
          continue;
        }
        if (it->is_directory() || !is_image_file(it->path())) continue;
        // An image name on a FIFO or a device would block or never end the read that meets it.
        TESSERA_CHECK(it->is_regular_file(), IoError, "{}: cannot read the image: {}", it->path().string(),
                      detail::not_a_regular_file(it->path()));
        found.push_back(it->path());
      }
      TESSERA_CHECK(!found.empty(), DataError,
                    "{}: class folder has no images (.png, .jpg, .jpeg, .bmp)", dir.string());
      std::sort(found.begin(), found.end());
      spans[c] = {files_.size(), found.size()};
      for (auto& f : found) {
        files_.push_back(std::move(f));
        labels_.push_back(static_cast<std::int32_t>(c));
      }
    }
  } catch (const fs::filesystem_error& e) {
    throw IoError(fmt::format("{}: cannot list the image folder: {}", root.string(), e.what()));
  }
  // The limit cuts the listing, not the dataset after loading: files past it are never read.
  if (options.limit > 0 && options.limit < size()) {
    const auto keep = static_cast<std::size_t>(options.limit);
    files_.resize(keep);
    labels_.resize(keep);
    for (ClassFiles& s : spans) s.count = s.first >= keep ? 0 : std::min(s.count, keep - s.first);
  }
  fingerprint_.dataset = name_;

  const std::int64_t n = size();
  const auto numel = static_cast<std::size_t>(shape_.numel());
  const std::int64_t budget = std::min(options.preload_budget, static_cast<std::int64_t>(available_system_memory() / 4));
  preloaded_ = options.preload &&
               static_cast<unsigned __int128>(n) * numel <= static_cast<unsigned __int128>(std::max<std::int64_t>(budget, 0));
  // Per-file checksums: of the content when preloading was asked for (whether or not the
  // pixels fit, so the fingerprint does not depend on the memory free), else of the name,
  // size and modification time.
  std::vector<std::uint64_t> bytes(files_.size());
  std::vector<std::uint32_t> checks(files_.size());
  if (options.preload) {
    if (preloaded_) pixels_.resize(static_cast<std::size_t>(n) * numel);
    detail::parallel_chunks(n, 16, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        const auto k = static_cast<std::size_t>(i);
        const std::vector<std::uint8_t> encoded = read_image_file(files_[k]);
        if (preloaded_)
          decode_image(encoded, shape_, std::span(pixels_).subspan(k * numel, numel), files_[k].string());
        bytes[k] = encoded.size();
        checks[k] = detail::crc32(encoded);
      }
    });
  } else {
    for (std::size_t k = 0; k < files_.size(); ++k) {
      std::error_code ec1, ec2;
      bytes[k] = fs::file_size(files_[k], ec1);
      const auto mtime = fs::last_write_time(files_[k], ec2).time_since_epoch().count();
      TESSERA_CHECK(!ec1 && !ec2, IoError, "{}: cannot stat: {}", files_[k].string(),
                    (ec1 ? ec1 : ec2).message());
      checks[k] = detail::crc32({reinterpret_cast<const std::uint8_t*>(&mtime), sizeof mtime});
    }
  }
  for (std::size_t c = 0; c < classes_.size(); ++c) {
    if (spans[c].count == 0) continue;  // no folder in this split, or past the limit
    std::uint64_t total = 0;
    std::uint32_t crc = 0;
    for (std::size_t k = spans[c].first; k < spans[c].first + spans[c].count; ++k) {
      const std::string rel = fs::relative(files_[k], root).generic_string();
      const std::string line = fmt::format("{}\t{}\t{:08x}\n", rel, bytes[k], checks[k]);
      crc = detail::crc32({reinterpret_cast<const std::uint8_t*>(line.data()), line.size()}, crc);
      total += bytes[k];
    }
    fingerprint_.entries.push_back(
        {classes_[c] + "/", total, fmt::format("{}:{:08x}", options.preload ? "crc32" : "mtime", crc)});
  }
}

void ImageFolderDataset::read_image_at(std::int64_t i, std::span<std::uint8_t> out) const {
  const auto k = static_cast<std::size_t>(i);
  if (preloaded_) {
    std::copy_n(pixels_.begin() + static_cast<std::ptrdiff_t>(k * out.size()), out.size(), out.begin());
    return;
  }
  // Everything here is local to the call: the loader's workers read concurrently.
  decode_image(read_image_file(files_[k]), shape_, out, files_[k].string());
}

DatasetSpec image_folder_spec() {
  return {.name = "image_folder",
          .summary = "root/train/<class>/*.png|jpg|bmp (and root/test or root/val), decoded at the model's size",
          .open = [](const std::filesystem::path& root, Split split, const DatasetOptions& o) -> DatasetPtr {
            TESSERA_CHECK(o.image_shape.has_value(), ConfigError,
                          "make_dataset: image_folder needs image_shape (channels, height, width)");
            std::vector<std::string> tried{std::string(split_name(split))};
            if (split == Split::test) tried.push_back("val");
            for (const std::string& sub : tried)
              if (std::filesystem::is_directory(root / sub))
                return std::make_shared<ImageFolderDataset>(
                    root / sub,
                    ImageFolderOptions{.channels = o.image_shape->channels,
                                       .height = o.image_shape->height,
                                       .width = o.image_shape->width,
                                       .preload = o.preload,
                                       .limit = o.limit,
                                       .classes = o.classes},
                    fmt::format("image_folder/{}", split_name(split)));
            throw IoError(fmt::format("{}: no {} folder for the {} split", root.string(), fmt::join(tried, " or "),
                                      split_name(split)));
          },
          .fixed_classes = false,
          .decoded_at_model_size = true};
}

}  // namespace tessera::datasets
