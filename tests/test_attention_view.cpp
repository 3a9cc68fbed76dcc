// Attention pictures: the rollout on hand-computed and known attention (uniform, identity),
// a ViT whose attention is uniform by construction, and `tessera attention` drawing it.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include <cmath>

#include "support/test_support.h"
#include "tessera/datasets/image_folder.h"
#include "tessera/models/vit.h"
#include "tessera/train/checkpoint.h"
#include "tessera/train/trainer.h"

using namespace tessera;
namespace tt = tessera::train;
namespace fs = std::filesystem;

namespace {

// (B, H, T, T) maps with every row `row` (of length T).
Tensor maps_of(std::int64_t B, std::int64_t H, const std::vector<std::vector<double>>& rows) {
  std::vector<double> v;
  for (std::int64_t i = 0; i < B * H; ++i)
    for (const auto& r : rows) v.insert(v.end(), r.begin(), r.end());
  const auto T = static_cast<std::int64_t>(rows.size());
  return from_vector(v, {B, H, T, T}, {.dtype = DType::f64});
}

// A 16x16 grey ViT whose query and key projections are zero: every score is equal, so every
// attention row is uniform.
models::ViTConfig uniform_vit_config() {
  models::ViTConfig c;
  c.image_h = c.image_w = 16, c.patch_size = 4, c.channels = 1, c.num_classes = 3;
  c.dim = 16, c.depth = 2, c.heads = 2, c.mlp_dim = 32;
  return c;
}
void make_attention_uniform(nn::Module& vit) {
  for (const auto& [name, p] : vit.named_parameters())
    if (name.find("attn.qkv") != std::string::npos) Tensor(p).fill_(0.0);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(attention_view)

BOOST_AUTO_TEST_CASE(rollout_on_known_attention) {
  // One block, two heads, a class token and one patch: the heads' class rows [0.2, 0.8] and
  // [0.6, 0.4] average to [0.4, 0.6]; half with the identity: [0.7, 0.3]. The patch: 0.3.
  std::vector<double> v{0.2, 0.8, 0.5, 0.5, 0.6, 0.4, 0.5, 0.5};
  const Tensor one = from_vector(v, {1, 2, 2, 2}, {.dtype = DType::f64});
  BOOST_TEST(models::attention_rollout({one}, 1).to_vector<double>() == (std::vector<double>{0.3}),
             boost::test_tools::tolerance(1e-12) << boost::test_tools::per_element());
  // Identity attention moves nothing between tokens: nothing reaches the class token.
  const Tensor eye = maps_of(2, 3, {{1, 0, 0, 0, 0}, {0, 1, 0, 0, 0}, {0, 0, 1, 0, 0}, {0, 0, 0, 1, 0}, {0, 0, 0, 0, 1}});
  BOOST_TEST(models::attention_rollout({eye, eye, eye}, 1).to_vector<double>() == std::vector<double>(8, 0.0),
             boost::test_tools::per_element());
  // Uniform attention spreads evenly: every patch the same, with or without a class token.
  const std::vector<double> flat(5, 0.2);
  const Tensor uniform = maps_of(1, 2, {flat, flat, flat, flat, flat});
  for (const std::int64_t prefix : {0, 1}) {
    const std::vector<double> r = models::attention_rollout({uniform, uniform}, prefix).to_vector<double>();
    BOOST_TEST(r.size() == static_cast<std::size_t>(5 - prefix));
    for (double x : r) BOOST_TEST(x == r.front(), boost::test_tools::tolerance(1e-12));
    BOOST_TEST(r.front() > 0.0);
  }
  BOOST_CHECK_THROW(models::attention_rollout({}, 1), Error);
  BOOST_CHECK_THROW(models::attention_rollout({uniform, one}, 1), ShapeError);
}

BOOST_AUTO_TEST_CASE(a_vit_without_query_and_key_attends_uniformly) {
  models::ViT vit(uniform_vit_config());
  make_attention_uniform(vit);
  vit.eval();
  NoGradGuard no_grad;
  const std::vector<Tensor> maps = vit.attention_maps(test::input({2, 1, 16, 16}, 5, -1, 1, false).to(DType::f32));
  BOOST_REQUIRE(maps.size() == 2u);
  for (const Tensor& m : maps) {
    BOOST_TEST((m.shape() == Shape{2, 2, 17, 17}));
    for (double a : m.to_vector<double>()) BOOST_TEST(a == 1.0 / 17, boost::test_tools::tolerance(1e-5));
  }
}

BOOST_AUTO_TEST_CASE(the_command_draws_uniform_attention_as_an_even_overlay) {
  test::TempDir dir("attention_view");
  tt::TrainConfig cfg;
  cfg.model.as<models::ViTConfig>() = uniform_vit_config();
  auto model = tt::build_model(cfg);
  make_attention_uniform(*model);
  tt::CheckpointInfo info;
  info.config_yaml = tt::dump_config(cfg);
  tt::save_checkpoint(dir / "uniform.safetensors", *model, {}, info);
  // A ramp of grey levels. With uniform attention the map is at its maximum everywhere, so
  // each picture is the image (scaled by 14 to 224) half and half with the map's brightest
  // colour, (252, 255, 164).
  std::vector<std::uint8_t> ramp(16 * 16);
  for (std::size_t i = 0; i < ramp.size(); ++i) ramp[i] = static_cast<std::uint8_t>(i);
  BOOST_REQUIRE(stbi_write_png((dir / "ramp.png").c_str(), 16, 16, 1, ramp.data(), 16) != 0);
  const test::CommandResult r = test::run_cli({"attention", "--checkpoint", (dir / "uniform.safetensors").string(),
                                               (dir / "ramp.png").string(), "-o", (dir / "views").string(),
                                               "--per-head"},
                                              dir.path());
  BOOST_TEST_REQUIRE(r.status == 0, r.err);
  const double top[3] = {252, 255, 164};
  for (const char* name : {"ramp_rollout.png", "ramp_head0.png", "ramp_head1.png"}) {
    BOOST_TEST_CONTEXT(name) {
      BOOST_TEST(r.out.find(name) != std::string::npos, r.out);
      std::vector<std::uint8_t> rgb(3 * 224 * 224);  // (C, H, W)
      datasets::decode_image(datasets::read_image_file(dir / "views" / name), {3, 224, 224}, rgb, name);
      std::size_t wrong = 0;
      for (std::size_t c = 0; c < 3; ++c)
        for (std::size_t y = 0; y < 224; ++y)
          for (std::size_t x = 0; x < 224; ++x) {
            const double pixel = ramp[(y / 14) * 16 + x / 14];
            wrong += rgb[(c * 224 + y) * 224 + x] != static_cast<std::uint8_t>(std::lround(0.5 * pixel + 0.5 * top[c]));
          }
      BOOST_TEST(wrong == 0u);
    }
  }
  // Not a ViT: refused with a config error (exit 2).
  tt::TrainConfig resnet = tt::load_config_string("model: {name: resnet}\n");
  tt::CheckpointInfo resnet_info;
  resnet_info.config_yaml = tt::dump_config(resnet);
  tt::save_checkpoint(dir / "resnet.safetensors", *tt::build_model(resnet), {}, resnet_info);
  const test::CommandResult bad = test::run_cli(
      {"attention", "--checkpoint", (dir / "resnet.safetensors").string(), (dir / "ramp.png").string(), "-o",
       (dir / "views").string()},
      dir.path());
  BOOST_TEST(bad.status == 2);
  BOOST_TEST(bad.err.find("attention maps are drawn for ViTs") != std::string::npos, bad.err);
}

BOOST_AUTO_TEST_SUITE_END()
