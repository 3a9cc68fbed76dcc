#include "tessera/datasets/dataset.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "datasets/file_io.h"

namespace tessera::datasets {

std::string ImageShape::str() const { return fmt::format("({},{},{})", channels, height, width); }

std::string_view split_name(Split split) { return split == Split::train ? "train" : "test"; }

Split parse_split(std::string_view text) {
  if (text == "train") return Split::train;
  if (text == "test") return Split::test;
  throw ConfigError(fmt::format("dataset split '{}' is not valid (valid: train, test)", text));
}

// ------------------------------------------------------------------ fingerprints

std::string Fingerprint::to_string() const {
  std::string out = fmt::format("dataset\t{}\n", dataset);
  for (const FingerprintEntry& e : entries) out += fmt::format("{}\t{}\t{}\n", e.name, e.bytes, e.digest);
  return out;
}

Fingerprint Fingerprint::parse(std::string_view text) {
  auto fail = [&](std::size_t line, std::string_view why) {
    return DataError(fmt::format("Fingerprint::parse: line {}: {}", line, why));
  };
  std::vector<std::vector<std::string_view>> lines;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    std::vector<std::string_view> fields;
    while (true) {
      const std::size_t tab = line.find('\t');
      fields.push_back(line.substr(0, tab));
      if (tab == std::string_view::npos) break;
      line = line.substr(tab + 1);
    }
    lines.push_back(std::move(fields));
  }
  if (lines.empty() || lines[0].size() != 2 || lines[0][0] != "dataset")
    throw fail(1, "expected 'dataset<TAB><name>'");
  Fingerprint fp;
  fp.dataset = std::string(lines[0][1]);
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const auto& f = lines[i];
    if (f.size() != 3) throw fail(i + 1, fmt::format("expected 3 tab-separated fields, got {}", f.size()));
    FingerprintEntry e{std::string(f[0]), 0, std::string(f[2])};
    const std::string bytes(f[1]);
    char* end = nullptr;
    e.bytes = std::strtoull(bytes.c_str(), &end, 10);
    if (bytes.empty() || *end != '\0') throw fail(i + 1, fmt::format("size '{}' is not a number", bytes));
    fp.entries.push_back(std::move(e));
  }
  return fp;
}

std::string fingerprint_diff(const Fingerprint& stored, const Fingerprint& current) {
  std::vector<std::string> clauses;
  if (stored.dataset != current.dataset)
    clauses.push_back(fmt::format("dataset {} -> {}", stored.dataset, current.dataset));
  std::map<std::string, const FingerprintEntry*> now;
  for (const auto& e : current.entries) now[e.name] = &e;
  for (const auto& e : stored.entries) {
    auto it = now.find(e.name);
    if (it == now.end()) {
      clauses.push_back(fmt::format("{}: missing now", e.name));
      continue;
    }
    const FingerprintEntry& c = *it->second;
    if (c.bytes != e.bytes || c.digest != e.digest)
      clauses.push_back(fmt::format("{}: {} bytes {} -> {} bytes {}", e.name, e.bytes, e.digest,
                                    c.bytes, c.digest));
    now.erase(it);
  }
  for (const auto& [name, e] : now) clauses.push_back(fmt::format("{}: new", name));
  return fmt::format("{}", fmt::join(clauses, "; "));
}

// ------------------------------------------------------------------ Dataset

std::vector<std::string> Dataset::class_names() const {
  std::vector<std::string> names;
  for (std::int64_t c = 0; c < num_classes(); ++c) names.push_back(std::to_string(c));
  return names;
}

void Dataset::check_index(std::int64_t i, const char* what) const {
  TESSERA_CHECK(i >= 0 && i < size(), DataError, "{}: {} index {} is out of range [0, {})", name(),
                what, i, size());
}

std::int64_t Dataset::label(std::int64_t i) const {
  check_index(i, "label");
  return label_at(i);
}

void Dataset::read_image(std::int64_t i, std::span<std::uint8_t> out) const {
  check_index(i, "image");
  const ImageShape s = image_shape();
  TESSERA_CHECK(static_cast<std::int64_t>(out.size()) == s.numel(), ShapeError,
                "{}: read_image needs a buffer of {} bytes for an image {}, got {}", name(),
                s.numel(), s.str(), out.size());
  read_image_at(i, out);
}

std::vector<std::uint8_t> Dataset::image(std::int64_t i) const {
  std::vector<std::uint8_t> out(static_cast<std::size_t>(image_shape().numel()));
  read_image(i, out);
  return out;
}

// ------------------------------------------------------------------ InMemoryDataset

InMemoryDataset::InMemoryDataset(Info info, std::vector<std::uint8_t> pixels,
                                 std::vector<std::int32_t> labels, std::size_t pixel_offset)
    : info_(std::move(info)), pixels_(std::move(pixels)), offset_(pixel_offset),
      labels_(std::move(labels)) {
  const ImageShape& s = info_.shape;
  TESSERA_CHECK(s.channels > 0 && s.height > 0 && s.width > 0, DataError,
                "{}: image shape {} must be positive", info_.name, s.str());
  TESSERA_CHECK(info_.num_classes > 0, DataError, "{}: num_classes must be positive, got {}",
                info_.name, info_.num_classes);
  TESSERA_CHECK(info_.class_names.empty() ||
                    static_cast<std::int64_t>(info_.class_names.size()) == info_.num_classes,
                DataError, "{}: {} class names for {} classes", info_.name, info_.class_names.size(),
                info_.num_classes);
  const std::size_t need = labels_.size() * static_cast<std::size_t>(s.numel());
  TESSERA_CHECK(offset_ <= pixels_.size() && pixels_.size() - offset_ == need, DataError,
                "{}: {} labels of images {} need {} pixel bytes, got {}", info_.name, labels_.size(),
                s.str(), need, pixels_.size() - std::min(offset_, pixels_.size()));
  for (std::size_t i = 0; i < labels_.size(); ++i)
    TESSERA_CHECK(labels_[i] >= 0 && labels_[i] < info_.num_classes, DataError,
                  "{}: label {} at index {} is out of range [0, {})", info_.name, labels_[i], i,
                  info_.num_classes);
}

std::vector<std::string> InMemoryDataset::class_names() const {
  return info_.class_names.empty() ? Dataset::class_names() : info_.class_names;
}

std::int64_t InMemoryDataset::memory_bytes() const {
  return static_cast<std::int64_t>(pixels_.size() + labels_.size() * sizeof(std::int32_t));
}

std::span<const std::uint8_t> InMemoryDataset::pixels() const {
  return std::span<const std::uint8_t>(pixels_).subspan(offset_);
}

void InMemoryDataset::read_image_at(std::int64_t i, std::span<std::uint8_t> out) const {
  const std::size_t n = out.size();
  std::memcpy(out.data(), pixels_.data() + offset_ + static_cast<std::size_t>(i) * n, n);
}

// ------------------------------------------------------------------ statistics

ChannelStats compute_channel_stats(const Dataset& dataset) {
  const ImageShape s = dataset.image_shape();
  const std::int64_t n = dataset.size();
  TESSERA_CHECK(n > 0, DataError, "compute_channel_stats: {} is empty", dataset.name());
  const auto plane = static_cast<std::size_t>(s.height * s.width);
  const auto channels = static_cast<std::size_t>(s.channels);
  // hist[c][v]: how often channel c holds value v; exact, and summed without rounding.
  // hist[c][v]: how often channel c holds value v; exact, and summed without rounding.
  std::vector<std::array<std::uint64_t, 256>> hist(channels, std::array<std::uint64_t, 256>{});
  std::mutex mutex;
  detail::parallel_chunks(n, 1024, [&](std::int64_t begin, std::int64_t end) {
    std::vector<std::array<std::uint64_t, 256>> local(channels, std::array<std::uint64_t, 256>{});
    std::vector<std::uint8_t> img(static_cast<std::size_t>(s.numel()));
    for (std::int64_t i = begin; i < end; ++i) {
      dataset.read_image(i, img);
      for (std::size_t c = 0; c < channels; ++c)
        for (std::size_t p = 0; p < plane; ++p) ++local[c][img[c * plane + p]];
    }
    std::lock_guard lock(mutex);
    for (std::size_t c = 0; c < channels; ++c)
      for (int v = 0; v < 256; ++v) hist[c][v] += local[c][v];
  });
  ChannelStats stats;
  for (std::size_t c = 0; c < channels; ++c) {
    double count = 0, sum = 0;
    for (int v = 0; v < 256; ++v) {
      count += static_cast<double>(hist[c][v]);
      sum += static_cast<double>(hist[c][v]) * (v / 255.0);
    }
    const double mean = sum / count;
    double var = 0;
    for (int v = 0; v < 256; ++v) {
      const double d = v / 255.0 - mean;
      var += static_cast<double>(hist[c][v]) * d * d;
    }
    stats.mean.push_back(mean);
    stats.std.push_back(std::sqrt(var / count));
  }
  return stats;
}

std::vector<std::int64_t> class_counts(const Dataset& dataset) {
  std::vector<std::int64_t> counts(static_cast<std::size_t>(dataset.num_classes()), 0);
  for (std::int64_t i = 0; i < dataset.size(); ++i) ++counts[static_cast<std::size_t>(dataset.label(i))];
  return counts;
}

SubsetDataset::SubsetDataset(DatasetPtr base, std::int64_t count) : base_(std::move(base)), count_(count) {
  TESSERA_CHECK(base_ != nullptr, ConfigError, "SubsetDataset: no dataset given");
  TESSERA_CHECK(count > 0 && count <= base_->size(), ConfigError,
                "{}: a subset of {} samples is not possible (the dataset has {})", base_->name(), count,
                base_->size());
}

std::string SubsetDataset::name() const { return fmt::format("{}[:{}]", base_->name(), count_); }

}  // namespace tessera::datasets
