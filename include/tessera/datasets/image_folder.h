// Image folders: root/<class>/**/*.{png,jpg,jpeg,bmp}, one class per subfolder (sorted by
// name), decoded with stb_image, converted to 1 or 3 channels and resized to a fixed size.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "tessera/datasets/dataset.h"
#include "tessera/datasets/factory.h"

namespace tessera::datasets {

struct ImageFolderOptions {
  std::int64_t channels = 3;  // 1 (grey, ITU-R BT.601 luma) or 3 (RGB); alpha is dropped
  std::int64_t height = 0;    // every image is resized to height x width (both required)
  std::int64_t width = 0;
  // true: decode up front (parallel) and keep uint8 pixels in memory when they fit the
  // preload budget, else decode on each read; the fingerprint covers every file's content.
  // false: keep only the file list and decode on each read; the fingerprint covers names,
  // sizes and modification times (large folders).
  bool preload = true;
  // Only the first `limit` images (class by class, files sorted within a class) are part of
  // the dataset, and only they are ever read; 0: all.
  std::int64_t limit = 0;
  // Empty: the classes are the subfolders, sorted by name. Otherwise the class list labels
  // follow (the training split's, for a test split): every subfolder must be one of them,
  // and some of them may have no subfolder here.
  std::vector<std::string> classes = {};
  // Decoded pixels are preloaded only up to this many bytes, and a quarter of the memory
  // available: images decoded at a large model size can take far more memory than files.
  std::int64_t preload_budget = std::int64_t{1} << 30;
};

class ImageFolderDataset final : public Dataset {
 public:
  // IoError when root is not a directory or an image's name is not a regular file (a FIFO,
  // a device, a dangling link); DataError naming the folder when there are no class folders,
  // a class folder holds no images or is not among options.classes, and naming the file when
  // one cannot be decoded (when preloading; otherwise on the read that meets it).
  ImageFolderDataset(const std::filesystem::path& root, ImageFolderOptions options,
                     std::string name = "");

  std::string name() const override { return name_; }
  std::int64_t size() const override { return static_cast<std::int64_t>(files_.size()); }
  std::int64_t num_classes() const override { return static_cast<std::int64_t>(classes_.size()); }
  ImageShape image_shape() const override { return shape_; }
  std::vector<std::string> class_names() const override { return classes_; }
  Fingerprint fingerprint() const override { return fingerprint_; }
  std::int64_t memory_bytes() const override { return static_cast<std::int64_t>(pixels_.size()); }

  bool preloaded() const { return preloaded_; }  // false: decoded on each read
  const std::filesystem::path& file(std::int64_t i) const { return files_.at(static_cast<std::size_t>(i)); }

  static bool is_image_file(const std::filesystem::path& path);  // by extension, any case

 protected:
  std::int64_t label_at(std::int64_t i) const override { return labels_[static_cast<std::size_t>(i)]; }
  void read_image_at(std::int64_t i, std::span<std::uint8_t> out) const override;

 private:
  std::string name_;
  ImageShape shape_;
  bool preloaded_ = false;
  std::vector<std::string> classes_;
  std::vector<std::filesystem::path> files_;
  std::vector<std::int32_t> labels_;
  std::vector<std::uint8_t> pixels_;  // when preloaded: (N, C, H, W)
  Fingerprint fingerprint_;
};

// Images are refused above this many pixels (32 Mi: e.g. 8192x4096), before decoding.
inline constexpr std::int64_t kMaxImagePixels = std::int64_t{1} << 25;

// An encoded image is refused above this many bytes, before it is read: more than any
// image within kMaxImagePixels needs, even stored uncompressed with alpha.
inline constexpr std::int64_t kMaxImageFileBytes = std::int64_t{1} << 28;

// The bytes of an encoded image file, read as they are (images are compressed formats of
// their own, never gzipped). IoError naming the path when it is not a regular file or cannot
// be read, DataError when it is larger than kMaxImageFileBytes.
std::vector<std::uint8_t> read_image_file(const std::filesystem::path& path);

// Decodes an encoded image (PNG, JPEG, BMP, or 8-bit binary PGM/PPM; told apart by content,
// never by file name) to `shape` (channels 1 or 3, resized as needed) in (C, H, W) order.
// `what` names the source in the DataError for any other or undecodable data.
void decode_image(std::span<const std::uint8_t> encoded, const ImageShape& shape,
                  std::span<std::uint8_t> out, const std::string& what);

// Its registry entry (factory.h).
DatasetSpec image_folder_spec();

}  // namespace tessera::datasets
