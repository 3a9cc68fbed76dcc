// The Vision Transformer: presets, configuration errors, end-to-end gradients of a tiny
// model in every variant, and learning (64 random images driven to 100% training accuracy).
#include "tessera/models/vit.h"
#include "tessera/optim/optim.h"
#include "tessera/autograd/safetensors.h"
#include "support/test_support.h"

using namespace tessera;
namespace utf = boost::unit_test;
using models::ViT;
using models::ViTConfig;

namespace {

ViTConfig tiny_config() {
  ViTConfig c;
  c.image_h = c.image_w = 8;
  c.patch_size = 4;
  c.channels = 2;
  c.num_classes = 3;
  c.dim = 8;
  c.depth = 2;
  c.heads = 2;
  c.mlp_dim = 12;
  return c;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(vit)

BOOST_AUTO_TEST_CASE(preset_parameter_counts_equal_timms) {
  // timm: vit_tiny/small/base_patch16_224 with 1000 classes.
  BOOST_TEST(ViT(ViTConfig::preset("vit-tiny/16")).num_parameters() == 5717416);
  BOOST_TEST(ViT(ViTConfig::preset("vit-small/16")).num_parameters() == 22050664);
  BOOST_TEST(ViT(ViTConfig::preset("vit-base/16")).num_parameters() == 86567656);
  // The tutorial's MNIST model: the same count as the PyTorch peer's "seed" model.
  BOOST_TEST(ViT(ViTConfig::preset("seed-mnist")).num_parameters() == 2143754);
  BOOST_CHECK_THROW(ViTConfig::preset("vit-huge/14"), ConfigError);
}

BOOST_AUTO_TEST_CASE(parameter_names_follow_timm) {
  ViT m(tiny_config());
  std::vector<std::string> names;
  for (auto& [n, t] : m.named_parameters()) names.push_back(n);
  for (const char* want : {"patch_embed.proj.weight", "patch_embed.proj.bias", "cls_token", "pos_embed",
                           "blocks.0.norm1.weight", "blocks.0.attn.qkv.weight", "blocks.0.attn.proj.bias",
                           "blocks.1.norm2.bias", "blocks.1.mlp.fc1.weight", "blocks.1.mlp.fc2.bias",
                           "norm.weight", "head.weight", "head.bias"})
    BOOST_TEST((std::find(names.begin(), names.end(), want) != names.end()), "missing " << want);
  BOOST_TEST((m.pos_embed.shape() == Shape{1, 5, 8}));
}

BOOST_AUTO_TEST_CASE(initialisation_as_timm) {
  ViTConfig c = ViTConfig::preset("vit-tiny/16");
  ViT m(c);
  auto stats = [](const Tensor& t) {
    const std::vector<float> v = t.to_vector<float>();
    double s = 0, s2 = 0;
    for (float x : v) s += x, s2 += double(x) * x;
    const double mean = s / v.size();
    return std::pair{mean, std::sqrt(s2 / v.size() - mean * mean)};
  };
  const auto [qm, qs] = stats(m.blocks[0].named_parameters()[2].second);  // attn.qkv.weight
  BOOST_TEST(std::abs(qm) < 1e-3);
  BOOST_TEST(std::abs(qs - 0.02) < 1e-3);
  BOOST_TEST(std::abs(stats(m.pos_embed).second - 0.02) < 2e-3);
  BOOST_TEST(stats(m.cls_token).second < 1e-5);
  for (auto& [n, t] : m.named_parameters()) {
    if (n.ends_with("norm1.weight") || n == "norm.weight") BOOST_TEST(stats(t).first == 1.0);
    if (n.ends_with("qkv.bias") || n == "head.bias") BOOST_TEST(stats(t).second == 0.0);
  }
}

BOOST_AUTO_TEST_CASE(bad_configurations_are_clear_errors) {
  auto fails_with = [](ViTConfig c, const std::string& fragment) {
    try {
      ViT m(c);
      BOOST_ERROR("no error for " << fragment);
    } catch (const ConfigError& e) {
      BOOST_TEST(std::string(e.what()).find(fragment) != std::string::npos, e.what());
    }
  };
  ViTConfig c = tiny_config();
  c.patch_size = 3;
  fails_with(c, "not divisible into 3x3 patches");
  c = tiny_config();
  c.heads = 3;
  fails_with(c, "dim 8 is not divisible by heads 3");
  c = tiny_config();
  c.depth = 0;
  fails_with(c, "depth must be positive");
  c = tiny_config();
  c.dropout = 1.0;
  fails_with(c, "dropout must be in [0, 1)");
  c = tiny_config();
  c.dim = 6;
  c.heads = 2;
  c.pos_embed = models::PosEmbed::sincos;
  fails_with(c, "divisible by 4");
  ViT m(tiny_config());
  BOOST_CHECK_THROW(m(zeros({2, 2, 8, 9})), ShapeError);
}

BOOST_AUTO_TEST_CASE(images_of_another_size_or_channel_count_are_clear_errors) {
  ViT m(ViTConfig::preset("seed-mnist"));
  for (const Shape& wrong : {Shape{2, 1, 32, 32}, Shape{2, 3, 28, 28}, Shape{1, 28, 28}}) {
    try {
      m(ones(wrong));
      BOOST_ERROR("no error for a wrong input shape");
    } catch (const ShapeError& e) {
      BOOST_TEST(std::string(e.what()).find("must be (B, 1, 28, 28)") != std::string::npos, e.what());
    }
  }
}

BOOST_AUTO_TEST_CASE(gradcheck_tiny_vit_every_variant) {
  for (auto norm : {nn::NormPlacement::pre, nn::NormPlacement::post})
    for (auto pool : {models::Pool::cls, models::Pool::mean})
      for (auto pos : {models::PosEmbed::learned, models::PosEmbed::sincos}) {
        ViTConfig c = tiny_config();
        c.norm = norm, c.pool = pool, c.pos_embed = pos;
        BOOST_TEST_CONTEXT(models::to_string(norm) << "-norm, " << models::to_string(pool) << " pool, "
                                                   << models::to_string(pos) << " positions") {
          ViT m(c);
          m.to(DType::f64);
          std::vector<Tensor> inputs{test::input({2, 2, 8, 8}, 3)};
          for (const Tensor& p : m.parameters()) inputs.push_back(p);
          const Tensor labels = from_vector<std::int64_t>({0, 2});
          test::check_gradients([&](const std::vector<Tensor>& in) { return cross_entropy(m(in[0]), labels); },
                                inputs);
        }
      }
}

BOOST_AUTO_TEST_CASE(gradcheck_tiny_vit_without_class_token_with_fc_norm) {
  // timm's average-pooling head: no class token, the final LayerNorm after pooling.
  for (const bool class_token : {false, true}) {
    ViTConfig c = tiny_config();
    c.pool = models::Pool::mean, c.class_token = class_token, c.fc_norm = true;
    BOOST_TEST_CONTEXT("class token " << class_token) {
      ViT m(c);
      BOOST_TEST(m.cls_token.defined() == class_token);
      BOOST_TEST(m.pos_embed.size(1) == c.num_patches() + (class_token ? 1 : 0));
      BOOST_TEST(m.fc_norm != nullptr);
      m.to(DType::f64);
      std::vector<Tensor> inputs{test::input({2, 2, 8, 8}, 4)};
      for (const Tensor& p : m.parameters()) inputs.push_back(p);
      const Tensor labels = from_vector<std::int64_t>({1, 0});
      test::check_gradients([&](const std::vector<Tensor>& in) { return cross_entropy(m(in[0]), labels); }, inputs);
    }
  }
  ViTConfig bad = tiny_config();
  bad.class_token = false;  // with pool: cls
  BOOST_CHECK_THROW(ViT{bad}, ConfigError);
}

BOOST_AUTO_TEST_CASE(summary_table) {
  ViT m(tiny_config());
  const std::string table = nn::summary(m, [&] { m(zeros({1, 2, 8, 8})); });
  BOOST_TEST(table.find("PatchEmbedding (patch_embed)") != std::string::npos, table);
  BOOST_TEST(table.find("EncoderBlock (1)") != std::string::npos, table);
  BOOST_TEST(table.find("(1,5,8)") != std::string::npos, table);
  BOOST_TEST(table.find("(1,3)") != std::string::npos, table);
  BOOST_TEST(table.find("Total params: 1,419") != std::string::npos, table);
  BOOST_TEST(m.num_parameters() == 1419);
}

// Golden values written by PyTorch (tests/fixtures/make_vit_golden.py): the tiny model's
// logits, loss, every parameter gradient, and the parameters after three AdamW steps.
void check_golden(const std::string& variant, DType dtype, double rtol, double atol, bool bf16 = false) {
  const AutocastGuard precision(bf16 ? DType::bf16 : DType::f32);
  const io::SafetensorsFile golden =
      io::load_safetensors(std::string(TESSERA_SOURCE_DIR) + "/tests/fixtures/vit_golden_" + variant + ".safetensors");
  const auto& t = golden.tensors;
  ViTConfig c = tiny_config();
  c.mlp_dim = 16;
  c.norm = variant == "pre" ? nn::NormPlacement::pre : nn::NormPlacement::post;
  ViT m(c);
  m.to(dtype);
  nn::NamedTensors weights;
  for (const auto& [name, p] : m.named_parameters()) weights.emplace_back(name, t.at("param." + name));
  m.load_state_dict(weights);
  const Tensor x = t.at("input").to(dtype), y = t.at("labels");
  const Tensor logits = m(x);
  const Tensor loss = cross_entropy(logits, y);
  test::check_close(logits, t.at("logits"), rtol, atol);
  test::check_close(loss.reshape({1}), t.at("loss"), rtol, atol);
  backward(loss);
  for (const auto& [name, p] : m.named_parameters())
    BOOST_TEST_CONTEXT("gradient of " << name) { test::check_close(p.grad(), t.at("grad." + name), rtol, atol); }
  // Adam divides by the gradient's running RMS, so gradients near zero turn bf16 rounding
  // into lr-sized steps: compare the optimizer steps in f32 and f64 only.
  if (bf16) return;
  optim::AdamW opt(m.parameters(), {.lr = 1e-2, .weight_decay = 0.05});  // decay on all, as the script
  opt.step();  // the gradients of step 1 are already there
  for (int i = 0; i < 2; ++i) {
    opt.zero_grad();
    backward(cross_entropy(m(x), y));
    opt.step();
  }
  for (const auto& [name, p] : m.named_parameters())
    BOOST_TEST_CONTEXT("after 3 AdamW steps: " << name) {
      if (name.ends_with("attn.qkv.bias")) {
        // The key bias has an exactly-zero gradient (softmax ignores a shift common to a
        // row), so Adam normalises rounding noise in both frameworks into lr-sized steps:
        // compare the query and value biases only.
        const Tensor want = t.at("after3." + name);
        for (std::int64_t part : {0, 2})
          test::check_close(slice(p, 0, part * c.dim, (part + 1) * c.dim), slice(want, 0, part * c.dim, (part + 1) * c.dim),
                            rtol, atol);
      } else {
        test::check_close(p, t.at("after3." + name), rtol, atol);
      }
    }
}

BOOST_AUTO_TEST_CASE(matches_pytorch_golden_pre_norm) {
  check_golden("pre", DType::f64, 1e-5, 1e-10);
  check_golden("pre", DType::f32, 2e-4, 1e-6);
}

BOOST_AUTO_TEST_CASE(matches_pytorch_golden_post_norm) {
  check_golden("post", DType::f64, 1e-5, 1e-10);
  check_golden("post", DType::f32, 2e-4, 1e-6);
}

BOOST_AUTO_TEST_CASE(bf16_mixed_precision_stays_close_to_pytorch, *utf::precondition(test::needs_bf16)) {
  // bf16 keeps 8 significant bits: logits, loss and gradients within 3% (+3e-3).
  check_golden("pre", DType::f32, 3e-2, 3e-3, true);
  check_golden("post", DType::f32, 3e-2, 3e-3, true);
}

void learn_64_random_images(DType precision) {
  const AutocastGuard autocast(precision);
  manual_seed(5);
  ViTConfig c = tiny_config();
  c.dim = 32, c.heads = 4, c.mlp_dim = 64, c.num_classes = 4;
  ViT m(c);
  Generator g(11);
  const Tensor images = randn({64, 2, 8, 8}, {}, g);
  const Tensor labels = randint({64}, 4, g);
  optim::AdamW opt(optim::split_weight_decay(m.named_parameters(), 0.01), {.lr = 3e-3});
  double accuracy = 0;
  for (int step = 0; step < 300 && accuracy < 1.0; ++step) {
    const Tensor logits = m(images);
    const Tensor loss = cross_entropy(logits, labels);
    opt.zero_grad();
    backward(loss);
    opt.step();
    const std::vector<std::int64_t> pred = argmax(logits, 1).to_vector<std::int64_t>();
    const std::vector<std::int64_t> y = labels.to_vector<std::int64_t>();
    int right = 0;
    for (std::size_t i = 0; i < y.size(); ++i) right += pred[i] == y[i];
    accuracy = right / 64.0;
  }
  BOOST_TEST(accuracy == 1.0);
}

BOOST_AUTO_TEST_CASE(learns_64_random_images) { learn_64_random_images(DType::f32); }
BOOST_AUTO_TEST_CASE(learns_64_random_images_in_bf16, *utf::precondition(test::needs_bf16)) { learn_64_random_images(DType::bf16); }

BOOST_AUTO_TEST_SUITE_END()
