// Pretrained weights: a timm ViT's state dict (tests/fixtures/make_timm_fixture.py wrote it
// with PyTorch) imported gives PyTorch's logits, exported gives the same tensors back, and a
// state dict Tessera cannot hold is refused naming what is wrong.
#include <cstring>
#include <fstream>
#include <iterator>

#include "support/test_support.h"
#include "tessera/train/checkpoint.h"
#include "tessera/train/trainer.h"
#include "tessera/models/vit.h"
#include "tessera/train/weights.h"

using namespace tessera;
namespace tt = tessera::train;
namespace fs = std::filesystem;

namespace {

const fs::path kFixtures = fs::path(TESSERA_SOURCE_DIR) / "tests" / "fixtures";
const fs::path kWeights = kFixtures / "timm_vit_ti_depth2.safetensors";

const fs::path kGapWeights = kFixtures / "timm_vit_gap_fcnorm.safetensors";

io::TensorMap fixture() { return io::load_safetensors(kWeights).tensors; }

// The logits of the checkpoint's model in f64 on the fixture's input, against PyTorch's.
void check_logits(const fs::path& checkpoint, const fs::path& expected_file) {
  const tt::Checkpoint ck = tt::load_checkpoint(checkpoint);
  auto model = tt::build_model(tt::load_config_string(ck.info.config_yaml));
  model->load_state_dict(ck.model);
  model->eval();
  model->to(DType::f64);
  const io::TensorMap expected = io::load_safetensors(expected_file).tensors;
  NoGradGuard no_grad;
  test::check_close((*model)(expected.at("input")), expected.at("logits"), 1e-5, 0.0);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(weights)

BOOST_AUTO_TEST_CASE(an_imported_timm_vit_gives_pytorchs_logits) {
  test::TempDir dir("import");
  const tt::TrainConfig cfg = tt::import_timm_vit(kWeights, dir / "ti.safetensors");
  const auto& v = cfg.model.as<models::ViTConfig>();
  BOOST_TEST(v.dim == 192);
  BOOST_TEST(v.heads == 3);
  BOOST_TEST(v.depth == 2);
  BOOST_TEST(v.mlp_dim == 768);
  BOOST_TEST(v.patch_size == 16);
  BOOST_TEST(v.image_h == 32);
  BOOST_TEST(v.channels == 3);
  BOOST_TEST(v.num_classes == 10);
  BOOST_TEST(v.class_token);
  BOOST_TEST((v.pool == models::Pool::cls));
  check_logits(dir / "ti.safetensors", kFixtures / "timm_vit_ti_depth2_expected.safetensors");
}

BOOST_AUTO_TEST_CASE(a_timm_vit_without_class_token_and_with_fc_norm_too) {
  test::TempDir dir("import_gap");
  const tt::TrainConfig cfg = tt::import_timm_vit(kGapWeights, dir / "gap.safetensors");
  const auto& v = cfg.model.as<models::ViTConfig>();
  BOOST_TEST(!v.class_token);
  BOOST_TEST(v.fc_norm);
  BOOST_TEST((v.pool == models::Pool::mean));
  BOOST_TEST(v.heads == 2);
  BOOST_TEST(v.patch_size == 8);
  BOOST_TEST(v.num_classes == 5);
  check_logits(dir / "gap.safetensors", kFixtures / "timm_vit_gap_fcnorm_expected.safetensors");
}

BOOST_AUTO_TEST_CASE(export_of_the_import_reproduces_the_fixtures_tensors) {
  test::TempDir dir("export");
  for (const fs::path& weights : {kGapWeights, kWeights}) {
    BOOST_TEST_CONTEXT(weights.filename()) {
      tt::import_timm_vit(weights, dir / "imported.safetensors");
      tt::export_weights(dir / "imported.safetensors", dir / "out.safetensors", DType::bf16);
      const io::SafetensorsFile out = io::load_safetensors(dir / "out.safetensors");
      const io::TensorMap want = io::load_safetensors(weights).tensors;
      BOOST_TEST(out.metadata.empty());  // a plain state dict
      BOOST_REQUIRE_EQUAL(out.tensors.size(), want.size());
      for (const auto& [name, t] : want) {
        BOOST_TEST_CONTEXT(name) {
          BOOST_REQUIRE(out.tensors.contains(name));
          const Tensor& got = out.tensors.at(name);
          BOOST_TEST((got.dtype() == t.dtype()));
          BOOST_TEST((got.shape() == t.shape()));
          BOOST_TEST(std::memcmp(got.raw_data(), t.raw_data(), t.nbytes()) == 0);
        }
      }
    }
  }
  // In f32 the values are the same numbers (the last import is the ViT-Ti fixture's).
  tt::export_weights(dir / "imported.safetensors", dir / "f32.safetensors");
  const io::TensorMap f32 = io::load_safetensors(dir / "f32.safetensors").tensors;
  BOOST_TEST((f32.at("pos_embed").dtype() == DType::f32));
  BOOST_TEST(f32.at("pos_embed").to_vector<double>() == fixture().at("pos_embed").to_vector<double>(),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(what_the_vit_cannot_hold_is_refused_by_name) {
  const auto refused = [](const io::TensorMap& w, const std::string& needle, tt::ImportOptions o = {}) {
    try {
      tt::timm_vit_config(w, o);
      BOOST_ERROR("accepted; expected a refusal naming " << needle);
    } catch (const ConfigError& e) {
      BOOST_TEST(std::string(e.what()).find(needle) != std::string::npos, e.what());
    }
  };
  io::TensorMap w = fixture();
  w["blocks.0.ls1.gamma"] = zeros({192});  // timm's layer scale
  w["reg_token"] = zeros({1, 4, 192});
  refused(w, "blocks.0.ls1.gamma, reg_token");

  w = fixture();
  w.erase("head.bias");
  w.erase("blocks.1.norm2.weight");
  refused(w, "blocks.1.norm2.weight is missing");
  refused(w, "head.bias is missing");

  w = fixture();
  w["pos_embed"] = zeros({1, 4, 192});  // 3 patch positions: no square grid
  refused(w, "not a square grid");

  w = fixture();
  w["blocks.1.mlp.fc1.weight"] = zeros({512, 192});  // disagrees with block 0
  refused(w, "blocks.1.mlp.fc1.weight is (512,192)");

  refused(fixture(), "does not split into 5 heads", {.heads = 5});
  BOOST_TEST(tt::timm_vit_config(fixture(), {.heads = 6}).model.as<models::ViTConfig>().heads == 6);
  refused({}, "patch_embed.proj.weight is missing");
}

BOOST_AUTO_TEST_CASE(position_tables_resample_as_pytorchs_bicubic_interpolate) {
  // tests/fixtures/make_pos_embed_fixture.py: timm's resample_abs_pos_embed, with and without
  // antialiasing, growing, shrinking, to a non-square grid and to the same grid.
  const io::TensorMap f = io::load_safetensors(kFixtures / "pos_embed_resample.safetensors").tensors;
  using Grid = std::array<std::int64_t, 2>;
  for (const auto& [from, to] : std::vector<std::pair<Grid, Grid>>{
           {{7, 7}, {8, 8}}, {{8, 8}, {5, 5}}, {{7, 7}, {4, 10}}, {{6, 6}, {6, 6}}}) {
    const std::string key = fmt::format("{}x{}_to_{}x{}", from[0], from[1], to[0], to[1]);
    for (const bool antialias : {true, false}) {
      BOOST_TEST_CONTEXT(key << (antialias ? " antialiased" : " plain")) {
        const Tensor got = models::resample_position_table(f.at(key + ".input"), 1, from, to, antialias);
        test::check_close(got, f.at(key + (antialias ? ".antialias" : ".plain")), 1e-10, 1e-12);
      }
    }
  }
  BOOST_CHECK_THROW(models::resample_position_table(f.at("7x7_to_8x8.input"), 1, {6, 6}, {8, 8}), ShapeError);
}

BOOST_AUTO_TEST_CASE(import_and_export_from_the_command_line) {
  test::TempDir dir("weights_cli");
  const fs::path ck = dir / "ti.safetensors", out = dir / "out.safetensors";
  test::CommandResult r = test::run_cli({"import", kWeights.string(), "-o", ck.string()}, dir.path());
  BOOST_TEST(r.status == 0, r.err);
  BOOST_TEST(r.out.find("dim 192, depth 2, 3 heads, MLP 768, 10 classes") != std::string::npos, r.out);
  r = test::run_cli({"export", ck.string(), "-o", out.string(), "--dtype", "bf16"}, dir.path());
  BOOST_TEST(r.status == 0, r.err);
  BOOST_TEST(fs::exists(out));
  r = test::run_cli({"export", ck.string(), "-o", out.string(), "--dtype", "f16"}, dir.path());
  BOOST_TEST(r.status == 2);
  // A file that is not a state dict: one line, the file named.
  r = test::run_cli({"import", (kFixtures / "make_timm_fixture.py").string(), "-o", ck.string()}, dir.path());
  BOOST_TEST(r.status == 1);
  BOOST_TEST(r.err.find("make_timm_fixture.py") != std::string::npos, r.err);
}

namespace {

// A small ViT on synthetic images of `image` pixels with `classes` classes.
tt::TrainConfig small_vit(const fs::path& out, int image, int classes) {
  return tt::load_config_string(fmt::format(R"(
model: {{image_size: {}, patch_size: 4, channels: 1, num_classes: {}, dim: 32, depth: 2, heads: 2, mlp_dim: 64}}
data: {{dataset: synthetic, synthetic: {{train_size: 64, test_size: 16}}, normalize: none}}
train: {{epochs: 1, batch_size: 16, seed: 3, threads: 2, output_dir: "{}"}}
schedule: {{warmup_epochs: 0}}
)", image, classes, out.string()));
}

}  // namespace

BOOST_AUTO_TEST_CASE(fine_tuning_starts_from_the_weights_resampling_positions) {
  test::TempDir dir("init_from");
  static std::FILE* devnull = std::fopen("/dev/null", "w");
  tt::TrainOptions quiet;
  quiet.out = devnull;
  tt::train(small_vit(dir / "pre", 16, 4), quiet);  // 4x4 patches, 4 classes
  const tt::Checkpoint pre = tt::load_checkpoint(dir / "pre" / tt::kLastCheckpoint);
  const auto tensor = [&](const std::string& name) {
    for (const auto& [n, t] : pre.model)
      if (n == name) return t;
    throw Error("no " + name);
  };
  // At 20x20 (5x5 patches) with 3 classes: a new head, the position table resampled.
  tt::TrainConfig cfg = small_vit(dir / "fine", 20, 3);
  cfg.train.init_from = dir / "pre" / tt::kLastCheckpoint;
  cfg.train.init_exclude = {"head.*"};
  auto model = tt::build_model(cfg);
  const std::string note = tt::init_weights_from(*model, cfg);
  BOOST_TEST(note.find("pos_embed 4x4 -> 5x5") != std::string::npos, note);
  for (const auto& [name, t] : model->state_dict()) {
    BOOST_TEST_CONTEXT(name) {
      if (name.starts_with("head.")) {
        BOOST_TEST((t.shape() != tensor(name).shape()));  // left at its initialisation
      } else if (name == "pos_embed") {
        test::check_close(t, models::resample_position_table(tensor(name), 1, {4, 4}, {5, 5}).to(DType::f32), 1e-6,
                          1e-7);
      } else {
        BOOST_TEST(t.to_vector<double>() == tensor(name).to_vector<double>(), boost::test_tools::per_element());
      }
    }
  }
  // Without init_exclude the head cannot be taken: the error names it and the way out.
  cfg.train.init_exclude = {};
  try {
    tt::init_weights_from(*tt::build_model(cfg), cfg);
    BOOST_ERROR("a head of 4 classes loaded into one of 3");
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    BOOST_TEST(m.find("head.weight is (4,32) in the file, (3,32) in the model") != std::string::npos, m);
    BOOST_TEST(m.find("train.init_exclude") != std::string::npos, m);
  }
  // And training runs from there, saying so in its log.
  cfg.train.init_exclude = {"head.*"};
  tt::train(cfg, quiet);
  std::ifstream log(dir / "fine" / tt::kLogFile);
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  BOOST_TEST(text.find("initialised from") != std::string::npos, text);
}

BOOST_AUTO_TEST_CASE(a_timm_state_dict_initialises_a_model_of_another_size) {
  // The ViT-Ti fixture (32x32, 2x2 patches) into a 48x48 model (3x3 patches) with 7 classes.
  test::TempDir dir("init_timm");
  tt::TrainConfig cfg = tt::timm_vit_config(fixture());
  auto& v = cfg.model.as<models::ViTConfig>();
  v.image_h = v.image_w = 48;
  v.num_classes = 7;
  cfg.train.init_from = kWeights;
  cfg.train.init_exclude = {"head.*"};
  auto model = tt::build_model(cfg);
  BOOST_TEST(tt::init_weights_from(*model, cfg).find("pos_embed 2x2 -> 3x3") != std::string::npos);
  cfg.train.init_exclude = {"head.*", "blocks.1.*"};  // patterns leave whole blocks alone
  BOOST_TEST(tt::init_weights_from(*tt::build_model(cfg), cfg).find("initialised from") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(layer_decay_scales_the_learning_rate_by_depth) {
  tt::TrainConfig cfg = small_vit("unused", 16, 4);
  cfg.optim.layer_decay = 0.5;
  auto model = tt::build_model(cfg);
  const auto opt = tt::make_optimizer(cfg, *model);
  // depth 2: the top (norm, head) 3; blocks.1 2; blocks.0 1; embeddings 0.
  const std::map<std::string, double> want{{"head.weight", 1.0}, {"norm.bias", 1.0}, {"blocks.1.mlp.fc1.weight", 0.5},
                                           {"blocks.0.attn.qkv.weight", 0.25}, {"pos_embed", 0.125},
                                           {"patch_embed.proj.weight", 0.125}};
  std::size_t seen = 0;
  for (std::size_t g = 0; g < opt->num_groups(); ++g)
    for (const std::string& name : opt->group(g).names)
      if (const auto it = want.find(name); it != want.end()) {
        BOOST_TEST(opt->lr(g) == cfg.optim.lr * it->second, name);
        ++seen;
      }
  BOOST_TEST(seen == want.size());
  // Weight decay groups survive the split: biases still get none.
  for (std::size_t g = 0; g < opt->num_groups(); ++g)
    if (opt->group(g).names.front().ends_with("bias")) BOOST_TEST(opt->weight_decay(g) == 0.0);
  // A model without blocks.N has no layers to decay.
  tt::TrainConfig resnet = tt::load_config_string("model: {name: resnet}\noptim: {layer_decay: 0.5}\n");
  BOOST_CHECK_THROW(tt::make_optimizer(resnet, *tt::build_model(resnet)), ConfigError);
}

BOOST_AUTO_TEST_SUITE_END()
