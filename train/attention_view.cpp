#include "tessera/train/attention_view.h"

#include <stb/stb_image_write.h>

#include <algorithm>
#include <array>
#include <cmath>

#include <fmt/format.h>

#include "tessera/models/vit.h"
#include "tessera/train/data.h"
#include "tessera/train/trainer.h"

namespace tessera::train {
namespace {

// A perceptually ordered colour map from black through purple and orange to light yellow
// (stops after matplotlib's "inferno"), linear between the stops: v in [0, 1] -> RGB.
std::array<double, 3> heat(double v) {
  static constexpr std::array<std::array<double, 3>, 5> stops{
      {{0, 0, 4}, {87, 16, 110}, {188, 55, 84}, {249, 142, 9}, {252, 255, 164}}};
  v = std::clamp(v, 0.0, 1.0) * (stops.size() - 1);
  const auto i = std::min<std::size_t>(static_cast<std::size_t>(v), stops.size() - 2);
  const double f = v - static_cast<double>(i);
  std::array<double, 3> c{};
  for (std::size_t k = 0; k < 3; ++k) c[k] = (1 - f) * stops[i][k] + f * stops[i + 1][k];
  return c;
}

// The map (grid_h x grid_w, any scale) over the image (C, H, W bytes), scaled up by `zoom`.
void write_view(const std::filesystem::path& file, const std::vector<std::uint8_t>& image,
                const datasets::ImageShape& shape, std::vector<double> map, std::int64_t grid_h, std::int64_t grid_w,
                std::int64_t zoom) {
  const double top = *std::max_element(map.begin(), map.end());
  for (double& v : map) v = top > 0 ? v / top : 0.0;
  const std::int64_t W = shape.width * zoom, H = shape.height * zoom, plane = shape.height * shape.width;
  std::vector<float> grid(map.begin(), map.end()), smooth(static_cast<std::size_t>(H * W));
  datasets::SampleRng unused(0, datasets::RngDomain::augment, 0, 0, 0);
  datasets::transforms::resize(H, W)->apply(grid, {1, grid_h, grid_w}, smooth, unused);
  std::vector<std::uint8_t> rgb(static_cast<std::size_t>(H * W * 3));
  for (std::int64_t y = 0; y < H; ++y)
    for (std::int64_t x = 0; x < W; ++x) {
      const std::int64_t p = (y / zoom) * shape.width + x / zoom;
      const std::array<double, 3> h = heat(smooth[static_cast<std::size_t>(y * W + x)]);
      for (std::int64_t c = 0; c < 3; ++c) {
        const double pixel = image[static_cast<std::size_t>((shape.channels == 3 ? c * plane : 0) + p)];
        rgb[static_cast<std::size_t>((y * W + x) * 3 + c)] =
            static_cast<std::uint8_t>(std::lround(0.5 * pixel + 0.5 * h[static_cast<std::size_t>(c)]));
      }
    }
  TESSERA_CHECK(stbi_write_png(file.c_str(), static_cast<int>(W), static_cast<int>(H), 3, rgb.data(),
                               static_cast<int>(W * 3)) != 0,
                IoError, "attention: cannot write {}", file.string());
}

}  // namespace

std::vector<std::filesystem::path> write_attention_views(const Checkpoint& ck,
                                                         const std::vector<std::filesystem::path>& images,
                                                         const std::filesystem::path& dir,
                                                         const AttentionViewOptions& options) {
  TrainConfig cfg = load_config_string(ck.info.config_yaml, "checkpoint (config)");
  TESSERA_CHECK(cfg.model.name() == "vit", ConfigError,
                "attention: the checkpoint holds a {} model; attention maps are drawn for ViTs", cfg.model.name());
  cfg.train.device = Device::cpu();
  const std::unique_ptr<nn::UnaryModule> built = build_model(cfg);
  auto& vit = static_cast<models::ViT&>(*built);
  vit.load_state_dict(ck.model);
  vit.eval();
  const models::ViTConfig& v = vit.config;
  const datasets::ImageShape shape{v.channels, v.image_h, v.image_w};
  const std::int64_t grid_h = v.image_h / v.patch_size, grid_w = v.image_w / v.patch_size;
  const std::int64_t prefix = v.class_token ? 1 : 0;
  const std::int64_t zoom = std::max<std::int64_t>(1, (224 + std::max(v.image_h, v.image_w) - 1) / std::max(v.image_h, v.image_w));
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  TESSERA_CHECK(!ec, IoError, "attention: cannot create {}: {}", dir.string(), ec.message());

  NoGradGuard no_grad;
  std::vector<std::filesystem::path> written;
  std::vector<std::uint8_t> pixels(static_cast<std::size_t>(shape.numel()));
  for (const std::filesystem::path& file : images) {
    std::vector<float> x(pixels.size());
    read_model_input(file, shape, {ck.info.normalize_mean, ck.info.normalize_std}, pixels, x);
    const std::vector<Tensor> maps = vit.attention_maps(from_vector(x, {1, v.channels, v.image_h, v.image_w}));
    const std::string stem = file.stem().string();
    written.push_back(dir / (stem + "_rollout.png"));
    write_view(written.back(), pixels, shape, models::attention_rollout(maps, prefix).to_vector<double>(), grid_h,
               grid_w, zoom);
    if (!options.per_head) continue;
    TESSERA_CHECK(prefix == 1, ConfigError, "attention: per-head maps show the class token's row; this ViT has none");
    const Tensor& last = maps.back();  // (1, H, T, T)
    const std::vector<double> a = last.to_vector<double>();
    const std::int64_t T = last.size(2);
    for (std::int64_t h = 0; h < last.size(1); ++h) {
      const auto row = a.begin() + static_cast<std::ptrdiff_t>(h * T * T);
      written.push_back(dir / fmt::format("{}_head{}.png", stem, h));
      write_view(written.back(), pixels, shape, std::vector<double>(row + 1, row + T), grid_h, grid_w, zoom);
    }
  }
  return written;
}

}  // namespace tessera::train
