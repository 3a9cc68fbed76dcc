#include "tessera/train/data.h"

#include "tessera/datasets/image_folder.h"

namespace tessera::train {

datasets::DatasetPtr open_dataset(const TrainConfig& cfg, datasets::Split split,
                                  const std::vector<std::string>& classes) {
  const ModelInput m = cfg.model.input();
  const datasets::ImageShape want{m.channels, m.height, m.width};
  datasets::DatasetOptions opts;
  opts.limit = split == datasets::Split::train ? cfg.data.train_limit : cfg.data.test_limit;
  opts.classes = classes;
  const datasets::DatasetSpec& spec = datasets::dataset_spec(cfg.data.dataset);
  if (spec.generated || spec.decoded_at_model_size) opts.image_shape = want;
  if (spec.generated) {
    opts.size = split == datasets::Split::train ? cfg.data.synthetic.train_size : cfg.data.synthetic.test_size;
    opts.num_classes = m.num_classes;
    opts.seed = cfg.train.seed;
  }
  datasets::DatasetPtr d = datasets::make_dataset(spec.name, dataset_root(cfg.data), split, opts);
  const datasets::ImageShape have = d->image_shape();
  TESSERA_CHECK(have.channels == want.channels, ConfigError,
                "data.dataset: {} images are {} but the model takes {} (model.channels)", d->name(), have.str(),
                want.str());
  TESSERA_CHECK(have == want || cfg.data.fit != Fit::none, ConfigError,
                "data.dataset: {} images are {} but the model takes {} (model.image_size; or data.fit: center or "
                "resize fits the images to the model)",
                d->name(), have.str(), want.str());
  TESSERA_CHECK(d->num_classes() <= m.num_classes, ConfigError,
                "model.num_classes: {} has {} classes but the model predicts {}", d->name(), d->num_classes(),
                m.num_classes);
  return d;
}

datasets::ChannelStats normalization(const TrainConfig& cfg, const datasets::Dataset& train) {
  const Normalize& n = cfg.data.normalize;
  switch (n.mode) {
    case Normalize::Mode::none: return {};
    case Normalize::Mode::custom: {
      const std::size_t c = static_cast<std::size_t>(cfg.model.input().channels);
      auto fit = [c](const std::vector<double>& v) { return v.size() == 1 ? std::vector<double>(c, v[0]) : v; };
      datasets::ChannelStats s{fit(n.mean), fit(n.stddev)};
      TESSERA_CHECK(s.mean.size() == c && s.std.size() == c, ConfigError,
                    "data.normalize: {} means and {} stds for {} channels (give one value or one per channel)",
                    n.mean.size(), n.stddev.size(), c);
      return s;
    }
    case Normalize::Mode::dataset:
      // The statistics everyone uses for the dataset's training split, where it has them:
      // computing them again from a subset (train_limit) would make results depend on it.
      if (const datasets::ChannelStats& s = datasets::dataset_spec(cfg.data.dataset).normalization; !s.mean.empty())
        return s;
      return datasets::compute_channel_stats(train);
  }
  return {};
}

void read_model_input(const std::filesystem::path& file, const datasets::ImageShape& shape,
                      const datasets::ChannelStats& stats, std::span<std::uint8_t> pixels, std::span<float> out) {
  datasets::decode_image(datasets::read_image_file(file), shape, pixels, file.string());
  const std::int64_t plane = shape.height * shape.width;
  for (std::size_t i = 0; i < pixels.size(); ++i) {
    const auto c = static_cast<std::size_t>(static_cast<std::int64_t>(i) / plane);
    const double v = pixels[i] / 255.0;
    out[i] = static_cast<float>(stats.mean.empty() ? v : (v - stats.mean[c]) / stats.std[c]);
  }
}

datasets::DataLoader make_loader(const TrainConfig& cfg, datasets::DatasetPtr dataset,
                                 const datasets::ChannelStats& stats, bool training, int rank, int ranks) {
  std::vector<datasets::TransformPtr> pipeline;
  const ModelInput m = cfg.model.input();
  if (cfg.data.fit == Fit::center) pipeline.push_back(datasets::transforms::center_crop(m.height, m.width));
  if (cfg.data.fit == Fit::resize) pipeline.push_back(datasets::transforms::resize(m.height, m.width));
  if (training) {
    const Augment& a = cfg.data.augment;
    if (a.random_crop_padding > 0) pipeline.push_back(datasets::transforms::random_crop({.padding = a.random_crop_padding}));
    if (a.horizontal_flip) pipeline.push_back(datasets::transforms::random_horizontal_flip());
    if (a.random_shift > 0) pipeline.push_back(datasets::transforms::random_shift(a.random_shift));
  }
  if (!stats.mean.empty()) pipeline.push_back(datasets::transforms::normalize(stats));
  return datasets::DataLoader(std::move(dataset),
                              {.batch_size = training ? cfg.train.batch_size : cfg.train.eval_batch_size,
                               .shuffle = training,
                               .drop_last = false,
                               .seed = cfg.train.seed,
                               .transforms = std::move(pipeline),
                               .prefetch = cfg.data.workers > 0 ? cfg.data.prefetch : 0,
                               .workers = std::max(cfg.data.workers, 1),
                               .shard_index = rank,
                               .shard_count = ranks});
}

}  // namespace tessera::train
