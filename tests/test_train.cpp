// Training from a config: a tiny run that learns and whose checkpoint evaluates the same,
// exact resume (after an epoch and mid-epoch), stopping on a non-finite loss, and the CLI's
// exit codes and messages.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "support/test_support.h"
#include "tessera/datasets/factory.h"
#include "tessera/train/data.h"
#include "tessera/train/memory.h"
#include "tessera/train/trainer.h"
#include "tessera/train/weights.h"

using namespace tessera;
namespace tt = tessera::train;
namespace fs = std::filesystem;
using json = nlohmann::json;

using tessera::test::vit;

namespace {

// A small ViT on 512 synthetic 16x16 images (a learnable pattern per class).
tt::TrainConfig tiny_config(const fs::path& out) {
  return tt::load_config_string(fmt::format(R"(
model: {{image_size: 16, patch_size: 4, channels: 1, num_classes: 4, dim: 32, depth: 2, heads: 2, mlp_dim: 64,
         drop_path: 0.1, dropout: 0.1}}
data: {{dataset: synthetic, synthetic: {{train_size: 512, test_size: 128}}, normalize: none}}
optim: {{name: adamw, lr: 3.0e-3}}
schedule: {{name: cosine, warmup_epochs: 0.5}}
train: {{epochs: 3, batch_size: 32, eval_batch_size: 64, seed: 7, threads: 2, output_dir: "{}", log_interval: 4}}
)", out.string()), "tiny.yaml");
}

std::vector<json> read_metrics(const fs::path& dir) {
  std::ifstream in(dir / tt::kMetricsFile);
  std::vector<json> lines;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(json::parse(line));
  return lines;
}

// Metrics without the wall-clock fields, which legitimately differ between runs.
json comparable(json m) {
  for (const char* k : {"epoch_seconds", "train_images_per_second", "elapsed_seconds"}) m.erase(k);
  return m;
}

tt::TrainOptions quiet() {
  static std::FILE* devnull = std::fopen("/dev/null", "w");
  tt::TrainOptions options;
  options.out = devnull;
  options.live_progress = false;
  return options;
}

using test::CommandResult;
using test::run_cli;

}  // namespace

BOOST_AUTO_TEST_SUITE(training)

BOOST_AUTO_TEST_CASE(tiny_run_learns_and_its_checkpoint_evaluates_the_same) {
  test::TempDir dir("train_tiny");
  const tt::TrainConfig cfg = tiny_config(dir.path());
  const tt::TrainResult r = tt::train(cfg, quiet());
  BOOST_TEST((r.status == tt::TrainResult::Status::finished));
  BOOST_TEST(r.epochs_done == 3);
  const std::vector<json> m = read_metrics(dir.path());
  BOOST_TEST_REQUIRE(m.size() == 3u);
  BOOST_TEST(m[2]["train_loss"].get<double>() < m[0]["train_loss"].get<double>());  // the loss went down
  BOOST_TEST(m[2]["test_loss"].get<double>() < std::log(4.0) * 0.8);                 // below chance level
  BOOST_TEST(m[2]["test_accuracy"].get<double>() > 0.5);                             // chance is 0.25
  for (const char* f : {tt::kLastCheckpoint, tt::kBestCheckpoint, tt::kConfigFile}) BOOST_TEST(fs::exists(dir / f));

  // The last checkpoint, loaded into a fresh model, gives the logged accuracy exactly.
  const tt::Checkpoint ck = tt::load_checkpoint(dir / tt::kLastCheckpoint);
  BOOST_TEST(ck.info.state.epoch == 3);
  BOOST_TEST(ck.info.state.global_step == 48);
  auto model = tt::build_model(cfg);
  model->load_state_dict(ck.model);
  datasets::DataLoader loader =
      tt::make_loader(cfg, tt::open_dataset(cfg, datasets::Split::test), {ck.info.normalize_mean, ck.info.normalize_std}, false);
  const tt::EvalResult ev = tt::evaluate(*model, loader, Device::cpu());
  BOOST_TEST(ev.accuracy == m[2]["test_accuracy"].get<double>());
  BOOST_TEST(ev.loss == m[2]["test_loss"].get<double>(), boost::test_tools::tolerance(1e-12));

  // The confusion matrix counts every image once, its diagonal the right ones.
  BOOST_TEST_REQUIRE(ev.classes == 4);
  std::int64_t total = 0, diagonal = 0;
  for (std::int64_t k = 0; k < 4; ++k)
    for (std::int64_t j = 0; j < 4; ++j) {
      total += ev.confusion[static_cast<std::size_t>(k * 4 + j)];
      if (k == j) diagonal += ev.confusion[static_cast<std::size_t>(k * 4 + j)];
    }
  BOOST_TEST(total == ev.samples);
  BOOST_TEST(static_cast<double>(diagonal) / static_cast<double>(total) == ev.accuracy);

  // The CLI's eval reads the same checkpoint back with the same accuracy, per class too, and
  // writes the matrix.
  const CommandResult e = run_cli({"eval", (dir / tt::kConfigFile).string(), "--checkpoint",
                                   (dir / tt::kLastCheckpoint).string(), "-o", (dir / "eval").string()},
                                  dir.path());
  BOOST_TEST(e.status == 0, e.err);
  BOOST_TEST(e.out.find(fmt::format("accuracy {:.2f}%", 100 * ev.accuracy)) != std::string::npos, e.out);
  std::ifstream in(dir / "eval" / "confusion.json");
  const json c = json::parse(in);
  BOOST_TEST(c["images"].get<std::int64_t>() == ev.samples);
  BOOST_TEST(c["accuracy"].get<double>() == ev.accuracy);
  BOOST_TEST_REQUIRE(c["per_class"].size() == 4u);
  for (std::size_t k = 0; k < 4; ++k) {
    const std::vector<std::int64_t> row = c["confusion"][k].get<std::vector<std::int64_t>>();
    BOOST_TEST(row == std::vector<std::int64_t>(ev.confusion.begin() + static_cast<std::ptrdiff_t>(k * 4),
                                                ev.confusion.begin() + static_cast<std::ptrdiff_t>(k * 4 + 4)),
               boost::test_tools::per_element());
    const std::int64_t images = c["per_class"][k]["images"].get<std::int64_t>();
    if (images > 0) {
      BOOST_TEST(c["per_class"][k]["accuracy"].get<double>() == static_cast<double>(row[k]) / images);
      BOOST_TEST(e.out.find(fmt::format("{:>6} images, accuracy {:.2f}%", images, 100.0 * row[k] / images)) !=
                 std::string::npos, e.out);
    }
  }
}

BOOST_AUTO_TEST_CASE(resume_after_an_epoch_or_mid_epoch_is_exact) {
  test::TempDir whole("train_whole"), after_epoch("train_resume_epoch"), mid_epoch("train_resume_mid");
  tt::train(tiny_config(whole.path()), quiet());
  const std::vector<json> reference = read_metrics(whole.path());
  const tt::Checkpoint ref_ck = tt::load_checkpoint(whole / tt::kLastCheckpoint);
  // 16 steps per epoch: stop at the end of epoch 1, and in the middle of epoch 2.
  for (auto [dir, stop] : {std::pair{&after_epoch, 16}, std::pair{&mid_epoch, 21}}) {
    BOOST_TEST_CONTEXT("stopped at step " << stop) {
      tt::TrainOptions first = quiet();
      first.stop_at_step = stop;
      const tt::TrainResult r1 = tt::train(tiny_config(dir->path()), first);
      BOOST_TEST((r1.status == tt::TrainResult::Status::interrupted));
      tt::TrainOptions second = quiet();
      second.resume = dir->path();
      const tt::TrainResult r2 = tt::train(tiny_config(dir->path()), second);
      BOOST_TEST((r2.status == tt::TrainResult::Status::finished));
      const std::vector<json> m = read_metrics(dir->path());
      BOOST_TEST_REQUIRE(m.size() == reference.size());
      for (std::size_t i = 0; i < m.size(); ++i) BOOST_TEST(comparable(m[i]) == comparable(reference[i]), m[i].dump());
      const tt::Checkpoint ck = tt::load_checkpoint(dir->path() / tt::kLastCheckpoint);
      for (std::size_t i = 0; i < ck.model.size(); ++i)
        BOOST_TEST(max_abs_diff(ck.model[i].second, ref_ck.model[i].second) == 0.0, ck.model[i].first);
    }
  }
}

BOOST_AUTO_TEST_CASE(resume_refuses_another_model_or_changed_data) {
  test::TempDir dir("train_refuse");
  tt::TrainConfig cfg = tiny_config(dir.path());
  cfg.train.epochs = 1;
  tt::train(cfg, quiet());
  tt::TrainOptions resume = quiet();
  resume.resume = dir.path();
  tt::TrainConfig other = cfg;
  vit(other).dim = 48;
  vit(other).heads = 4;
  try {
    tt::train(other, resume);
    BOOST_ERROR("resumed with a different model");
  } catch (const ConfigError& e) {
    const std::string w = e.what();
    BOOST_TEST(w.find("model.dim: 32 -> 48") != std::string::npos, w);
    BOOST_TEST(w.find("model.heads: 2 -> 4") != std::string::npos, w);
  }
  // Whatever changes the samples, their order, the draws or the arithmetic is refused, all
  // differences listed at once (row 6 of the reliability issue: batch size 16 replayed 576 samples).
  tt::TrainConfig other_run = cfg;
  other_run.train.batch_size = 16;
  other_run.train.seed = 8;
  other_run.data.synthetic.train_size = 300;
  other_run.train.label_smoothing = 0.1;
  try {
    tt::train(other_run, resume);
    BOOST_ERROR("resumed with another batch size, seed and data");
  } catch (const ConfigError& e) {
    const std::string w = e.what();
    for (const char* diff : {"train.batch_size: 32 -> 16", "train.seed: 7 -> 8", "data.synthetic.train_size: 512 -> 300",
                             "train.label_smoothing: 0.0 -> 0.1", "cannot continue exactly"})
      BOOST_TEST(w.find(diff) != std::string::npos, w);
  }
  // Where, how fast and how it is evaluated may change; so may train.epochs.
  tt::TrainConfig same_run = cfg;
  same_run.train.threads = 1;
  same_run.train.eval_batch_size = 16;
  same_run.train.log_interval = 1;
  same_run.train.epochs = 2;
  BOOST_TEST((tt::train(same_run, resume).status == tt::TrainResult::Status::finished));
}

BOOST_AUTO_TEST_CASE(a_dataset_of_ones_own_is_one_registration_away_from_a_config) {
  // Registered by the program (as a new built-in one is, with one line in datasets/factory.cpp):
  // the config names it, the trainer opens it, the docs list it.
  datasets::register_dataset(
      {.name = "stripes",
       .summary = "8x8 images whose class is which row of each 4x4 patch is striped",
       .open = [](const fs::path&, datasets::Split split, const datasets::DatasetOptions&) -> datasets::DatasetPtr {
         const std::int64_t n = split == datasets::Split::train ? 64 : 16;
         std::vector<std::uint8_t> pixels(static_cast<std::size_t>(n * 64), 0);
         std::vector<std::int32_t> labels;
         for (std::int64_t i = 0; i < n; ++i) {
           labels.push_back(static_cast<std::int32_t>(i % 4));
           for (const std::int64_t row : {i % 4, i % 4 + 4})  // the same row of every 4x4 patch
             for (int x = 0; x < 8; ++x) pixels[static_cast<std::size_t>(i * 64 + row * 8 + x)] = 255;
         }
         return std::make_shared<datasets::InMemoryDataset>(
             datasets::InMemoryDataset::Info{"stripes", {1, 8, 8}, 4}, std::move(pixels), std::move(labels));
       }});
  BOOST_CHECK_THROW(datasets::register_dataset({.name = "Stripes", .summary = "", .open = nullptr}), ConfigError);
  test::TempDir dir("train_own_dataset");
  tt::TrainConfig cfg = tt::load_config_string(fmt::format(R"(
model: {{image_size: 8, patch_size: 4, num_classes: 4, dim: 16, depth: 1, heads: 2, mlp_dim: 16}}
data: {{dataset: stripes}}
optim: {{lr: 5.0e-3}}
schedule: {{warmup_epochs: 0}}
train: {{epochs: 10, batch_size: 8, output_dir: "{}"}}
)", dir.path().string()));
  const tt::TrainResult r = tt::train(cfg, quiet());
  BOOST_TEST(r.best_accuracy > 0.9);
  BOOST_TEST(tt::config_reference_markdown().find("stripes") != std::string::npos);
  try {
    tt::load_config_string("data: {dataset: stripe}");
    BOOST_ERROR("no error");
  } catch (const ConfigError& e) {
    BOOST_TEST(std::string(e.what()).find("did you mean stripes?") != std::string::npos, e.what());
  }
}

BOOST_AUTO_TEST_CASE(resume_refuses_dataset_files_that_changed) {
  // MNIST-format files of 8x8 images, written here; one pixel changes between the runs.
  test::TempDir dir("train_changed_data");
  const auto be32 = [](std::string& s, std::uint32_t v) {
    for (int shift : {24, 16, 8, 0}) s += static_cast<char>((v >> shift) & 0xff);
  };
  auto write_split = [&](const std::string& prefix, std::uint32_t n, char first_pixel) {
    std::string images, labels;
    be32(images, 0x803), be32(images, n), be32(images, 8), be32(images, 8);
    be32(labels, 0x801), be32(labels, n);
    for (std::uint32_t i = 0; i < n; ++i) {
      images += std::string(64, static_cast<char>(i * 7));
      labels += static_cast<char>(i % 10);
    }
    images[16] = first_pixel;
    std::ofstream(dir / (prefix + "-images-idx3-ubyte"), std::ios::binary) << images;
    std::ofstream(dir / (prefix + "-labels-idx1-ubyte"), std::ios::binary) << labels;
  };
  write_split("train", 40, 1);
  write_split("t10k", 20, 1);
  tt::TrainConfig cfg = tiny_config(dir / "run");
  vit(cfg).image_h = vit(cfg).image_w = 8;
  vit(cfg).num_classes = 10;
  cfg.data.dataset = "mnist";
  cfg.data.root = dir.path();
  cfg.train.epochs = 1;
  tt::train(cfg, quiet());
  write_split("train", 40, 2);
  tt::TrainOptions resume = quiet();
  resume.resume = dir / "run";
  cfg.train.epochs = 2;
  try {
    tt::train(cfg, resume);
    BOOST_ERROR("resumed on changed data");
  } catch (const DataError& e) {
    const std::string w = e.what();
    BOOST_TEST(w.find("training data changed") != std::string::npos, w);
    BOOST_TEST(w.find("train-images-idx3-ubyte") != std::string::npos, w);
  }
}

BOOST_AUTO_TEST_CASE(a_non_finite_loss_stops_and_keeps_the_last_good_checkpoint) {
  test::TempDir dir("train_nan");
  tt::TrainConfig cfg = tiny_config(dir.path());
  cfg.train.epochs = 2;
  tt::TrainOptions first = quiet();
  first.stop_at_step = 16;  // one good epoch, checkpointed
  tt::train(cfg, first);
  // Weights at the edge of f32's range (finite, so the checkpoint loads): the next step's
  // logits overflow. The resumed run must stop without touching the good checkpoint.
  {
    tt::Checkpoint ck = tt::load_checkpoint(dir / tt::kLastCheckpoint);
    auto model = tt::build_model(cfg);
    model->load_state_dict(ck.model);
    for (const auto& [name, p] : model->named_parameters())
      if (name == "head.weight") Tensor(p).fill_(3e38);
    tt::save_checkpoint(dir / tt::kLastCheckpoint, *model, ck.optimizer, ck.info);
  }
  const auto good = fs::last_write_time(dir / tt::kLastCheckpoint);
  const std::string good_bytes = [&] {
    std::ifstream in(dir / tt::kLastCheckpoint, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  tt::TrainOptions resume = quiet();
  resume.resume = dir.path();
  const tt::TrainResult r = tt::train(cfg, resume);
  BOOST_TEST((r.status == tt::TrainResult::Status::diverged));
  BOOST_TEST(r.message.find("became") != std::string::npos, r.message);
  BOOST_TEST(r.message.find(tt::kLastCheckpoint) != std::string::npos, r.message);
  BOOST_TEST((fs::last_write_time(dir / tt::kLastCheckpoint) == good));
  std::ifstream in(dir / tt::kLastCheckpoint, std::ios::binary);
  BOOST_TEST((std::string(std::istreambuf_iterator<char>(in), {}) == good_bytes));
}

BOOST_AUTO_TEST_CASE(cli_exit_codes_and_one_line_errors) {
  test::TempDir dir("train_cli");
  const fs::path cfg = dir / "bad.yaml";
  std::ofstream(cfg) << "model:\n  dim: 64\n  depht: 3\n";
  CommandResult r = run_cli({"summary", cfg.string()}, dir.path());
  BOOST_TEST(r.status == 2);
  BOOST_TEST(r.err.find("bad.yaml:3:3: model.depht") != std::string::npos, r.err);
  BOOST_TEST(r.err.find("did you mean") != std::string::npos, r.err);
  BOOST_TEST(std::count(r.err.begin(), r.err.end(), '\n') == 1, r.err);

  std::ofstream(dir / "good.yaml") << "model: {depth: 1}\n";
  r = run_cli({"summary", (dir / "good.yaml").string(), "--set", "optim.lr=fast"}, dir.path());
  BOOST_TEST(r.status == 2);
  BOOST_TEST(r.err.find("--set optim.lr") != std::string::npos, r.err);
  r = run_cli({"summary", (dir / "missing.yaml").string()}, dir.path());
  BOOST_TEST(r.status == 2);
  r = run_cli({"frobnicate"}, dir.path());
  BOOST_TEST(r.status == 2);
  r = run_cli({"summary", (dir / "good.yaml").string()}, dir.path());
  BOOST_TEST(r.status == 0, r.err);
  BOOST_TEST(r.out.find("Total params") != std::string::npos);
  for (const char* cmd : {"train", "eval", "predict", "summary", "gradcheck", "bench"}) {
    r = run_cli({cmd, "--help"}, dir.path());
    BOOST_TEST(r.status == 0, cmd);
    BOOST_TEST(r.out.find("Usage") != std::string::npos, cmd);
  }
  // A missing dataset is a clear failure (status 1), naming the directory.
  std::ofstream(dir / "nodata.yaml") << "data: {root: " << (dir / "nowhere").string() << "}\ntrain: {output_dir: "
                                     << (dir / "run").string() << "}\n";
  r = run_cli({"train", (dir / "nodata.yaml").string()}, dir.path());
  BOOST_TEST(r.status == 1);
  BOOST_TEST(r.err.find("nowhere") != std::string::npos, r.err);
}

BOOST_AUTO_TEST_CASE(cli_gradcheck_and_predict) {
  test::TempDir dir("train_cli2");
  std::ofstream(dir / "tiny.yaml") << "model: {image_size: 8, patch_size: 4, dim: 8, depth: 1, heads: 2, mlp_dim: 8}\n";
  CommandResult r = run_cli({"gradcheck", (dir / "tiny.yaml").string(), "--samples", "3"}, dir.path());
  BOOST_TEST(r.status == 0, r.out << r.err);
  BOOST_TEST(r.out.find("blocks.0.attn.qkv.weight") != std::string::npos, r.out);
  BOOST_TEST(r.out.find("all gradients match") != std::string::npos, r.out);

  // predict: a checkpoint of the tiny run, and two PNGs of the synthetic classes.
  tt::TrainConfig cfg = tiny_config(dir / "run");
  cfg.train.epochs = 1;
  tt::train(cfg, quiet());
  const datasets::DatasetPtr test = tt::open_dataset(cfg, datasets::Split::test);
  std::vector<std::string> args{"predict", "--checkpoint", (dir / "run" / tt::kLastCheckpoint).string(), "--top-k", "2"};
  for (int i = 0; i < 2; ++i) {
    // A binary PGM is among the formats stb_image reads.
    const fs::path p = dir / fmt::format("img{}.pgm", i);
    std::ofstream f(p, std::ios::binary);
    f << "P5\n16 16\n255\n";
    const std::vector<std::uint8_t> px = test->image(i);
    f.write(reinterpret_cast<const char*>(px.data()), static_cast<std::streamsize>(px.size()));
    args.push_back(p.string());
  }
  r = run_cli(args, dir.path());
  BOOST_TEST(r.status == 0, r.err);
  BOOST_TEST(std::count(r.out.begin(), r.out.end(), '%') == 4, r.out);  // 2 images x top 2
  r = run_cli({"predict", "--checkpoint", (dir / "tiny.yaml").string(), (dir / "img0.pgm").string()}, dir.path());
  BOOST_TEST(r.status == 1);
  BOOST_TEST(r.err.find("tiny.yaml") != std::string::npos, r.err);
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------- every registered model

BOOST_AUTO_TEST_SUITE(every_model)

namespace {

// A registered model with its defaults, made small where it has the keys, on synthetic data.
std::string model_run_config(const std::string& model, const fs::path& out) {
  std::string keys = fmt::format("name: {}, image_size: 12", model);
  const models::ModelSpec& spec = models::model_spec(model);
  auto has = [&](const char* k) {
    return std::any_of(spec.keys.begin(), spec.keys.end(), [&](const models::ModelKey& m) { return m.key == k; });
  };
  if (model == "vit") keys += ", patch_size: 4, dim: 16, depth: 1, heads: 2, mlp_dim: 16, drop_path: 0.1, dropout: 0.1";
  if (has("width")) keys += ", width: 4";
  if (has("stages")) keys += ", stages: 2";
  if (has("num_classes")) keys += ", num_classes: 3";
  return fmt::format(R"(model: {{{}}}
data: {{dataset: synthetic, synthetic: {{train_size: 48, test_size: 16}}, normalize: none, augment: {{random_shift: 1}}}}
schedule: {{warmup_epochs: 0.5}}
train: {{epochs: 2, batch_size: 8, eval_batch_size: 8, seed: 3, threads: 1, output_dir: "{}"}}
)", keys, out.string());
}

}  // namespace

// The commands and resume work for every model the registry holds (a model added later is
// covered without editing this test).
BOOST_AUTO_TEST_CASE(every_command_works_for_every_registered_model) {
  for (const std::string& model : models::model_names())
    BOOST_TEST_CONTEXT("model " << model) {
      test::TempDir dir("every_model_" + model);
      const fs::path config = dir / "model.yaml";
      std::ofstream(config) << model_run_config(model, dir / "run");
      CommandResult r = run_cli({"train", config.string()}, dir.path());
      BOOST_TEST_REQUIRE(r.status == 0, r.out << r.err);
      BOOST_TEST(r.out.find("model: " + model) != std::string::npos, r.out);
      const std::string last = (dir / "run" / tt::kLastCheckpoint).string();
      r = run_cli({"eval", config.string(), "--checkpoint", last}, dir.path());
      BOOST_TEST(r.status == 0, r.err);
      BOOST_TEST(r.out.find("16 test images") != std::string::npos, r.out);
      r = run_cli({"summary", config.string()}, dir.path());
      BOOST_TEST(r.status == 0, r.err);
      BOOST_TEST(r.out.find("Total params") != std::string::npos, r.out);
      r = run_cli({"gradcheck", config.string(), "--samples", "2"}, dir.path());
      BOOST_TEST(r.status == 0, r.out << r.err);
      BOOST_TEST(r.out.find("all gradients match") != std::string::npos, r.out);
      r = run_cli({"bench", "--config", config.string(), "--steps", "1", "--threads", "1"}, dir.path());
      BOOST_TEST(r.status == 0, r.err);
      BOOST_TEST(r.out.find("config=" + config.string()) != std::string::npos, r.out);
      BOOST_TEST(r.out.find("train_img_s=") != std::string::npos, r.out);
      {
        const fs::path image = dir / "image.pgm";
        std::ofstream f(image, std::ios::binary);
        f << "P5\n12 12\n255\n" << std::string(144, '\x80');
      }
      r = run_cli({"predict", "--checkpoint", last, (dir / "image.pgm").string(), "--top-k", "2"}, dir.path());
      BOOST_TEST(r.status == 0, r.err);
      BOOST_TEST(std::count(r.out.begin(), r.out.end(), '%') == 2, r.out);
      r = run_cli({"train", config.string(), "--set", "train.epochs=3", "--resume", (dir / "run").string()},
                  dir.path());
      BOOST_TEST(r.status == 0, r.err);
      BOOST_TEST(r.out.find("resuming from") != std::string::npos, r.out);
    }
}

// Stopped mid-epoch and resumed, every model (batch norm's running statistics included)
// ends with the weights and buffers of the run that never stopped, bit for bit.
BOOST_AUTO_TEST_CASE(every_registered_model_resumes_exactly) {
  for (const std::string& model : models::model_names())
    BOOST_TEST_CONTEXT("model " << model) {
      test::TempDir whole("exact_whole_" + model), resumed("exact_resumed_" + model);
      const auto config = [&](const fs::path& out) { return tt::load_config_string(model_run_config(model, out)); };
      tt::train(config(whole.path()), quiet());
      tt::TrainOptions first = quiet();
      first.stop_at_step = 9;  // 6 steps per epoch: in the middle of the second
      BOOST_TEST_REQUIRE((tt::train(config(resumed.path()), first).status == tt::TrainResult::Status::interrupted));
      tt::TrainOptions second = quiet();
      second.resume = resumed.path();
      BOOST_TEST_REQUIRE((tt::train(config(resumed.path()), second).status == tt::TrainResult::Status::finished));
      const tt::Checkpoint a = tt::load_checkpoint(whole / tt::kLastCheckpoint);
      const tt::Checkpoint b = tt::load_checkpoint(resumed / tt::kLastCheckpoint);
      BOOST_TEST_REQUIRE(a.model.size() == b.model.size());
      for (std::size_t i = 0; i < a.model.size(); ++i)
        BOOST_TEST(max_abs_diff(a.model[i].second, b.model[i].second) == 0.0, a.model[i].first);
      BOOST_TEST(read_metrics(whole.path()).back()["test_loss"] == read_metrics(resumed.path()).back()["test_loss"]);
    }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(shipped_configs)

BOOST_AUTO_TEST_CASE(every_config_loads_and_builds_its_model) {
  std::vector<std::string> seen;
  for (const auto& entry : fs::directory_iterator(fs::path(TESSERA_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".yaml") continue;
    seen.push_back(entry.path().filename().string());
    BOOST_TEST_CONTEXT(entry.path().filename().string()) {
      const tt::TrainConfig cfg = tt::load_config(entry.path());
      BOOST_TEST(tt::build_model(cfg)->num_parameters() > 0);
    }
  }
  std::sort(seen.begin(), seen.end());
  BOOST_TEST((seen == std::vector<std::string>{"fashion_mnist_finetune.yaml", "fashion_mnist_vit.yaml",
                                               "mnist_resnet.yaml", "mnist_sagan_cnn.yaml", "mnist_vit.yaml",
                                               "seed_mnist.yaml", "vit_tiny_cifar10.yaml"}));
  // The default is small: at most 0.5 M parameters.
  BOOST_TEST(tt::build_model(tt::load_config(fs::path(TESSERA_SOURCE_DIR) / "configs/mnist_vit.yaml"))->num_parameters() <=
             500000);
}

BOOST_AUTO_TEST_CASE(the_fine_tuning_config_starts_from_the_default_models_weights) {
  // configs/fashion_mnist_finetune.yaml takes what configs/mnist_vit.yaml trains.
  test::TempDir dir("finetune_config");
  const auto mnist = tt::build_model(tt::load_config(fs::path(TESSERA_SOURCE_DIR) / "configs/mnist_vit.yaml"));
  tt::save_checkpoint(dir / "best.safetensors", *mnist, {}, {});
  tt::TrainConfig fine = tt::load_config(fs::path(TESSERA_SOURCE_DIR) / "configs/fashion_mnist_finetune.yaml");
  BOOST_TEST(fine.train.init_from == "runs/mnist_vit/best.safetensors");
  fine.train.init_from = dir / "best.safetensors";
  const std::string note = tt::init_weights_from(*tt::build_model(fine), fine);
  BOOST_TEST(note.find("pos_embed 7x7 -> 8x8") != std::string::npos, note);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(training_faults)

BOOST_AUTO_TEST_CASE(a_kill_while_writing_a_checkpoint_leaves_the_previous_one_loadable) {
  // A helper rewrites a run's checkpoint in a loop; SIGKILL lands at varying points of a
  // write. The checkpoint must always load (the old or the new one, never a torn one), and
  // the run must resume from it.
  test::TempDir dir("train_kill");
  tt::TrainConfig cfg = tiny_config(dir.path());
  vit(cfg).dim = 128, vit(cfg).mlp_dim = 512, vit(cfg).depth = 4;  // about 10 MB with the optimizer state
  cfg.train.epochs = 1;
  tt::train(cfg, quiet());
  const fs::path last = dir / tt::kLastCheckpoint;
  const std::string writer = std::string(TESSERA_BINARY_DIR) + "/tests/checkpoint_writer";
  // Each kill lands at a different point of a write: after the writer's first temporary file
  // appears (its start-up takes a varying time), plus a delay spread over one write.
  auto writing = [&](pid_t writer_pid) {
    const std::string prefix = fmt::format(".last.safetensors.tmp-{}-", writer_pid);
    for (const auto& e : fs::directory_iterator(dir.path()))
      if (e.path().filename().string().starts_with(prefix)) return true;
    return false;
  };
  for (int delay_us : {0, 7000, 15000, 24000, 35000, 50000}) {
    const pid_t child = ::fork();
    if (child == 0) {
      ::execl(writer.c_str(), writer.c_str(), last.c_str(), nullptr);
      std::_Exit(127);
    }
    for (int i = 0; i < 30000 && !writing(child); ++i) ::usleep(1000);  // up to 30 s
    ::usleep(static_cast<useconds_t>(delay_us));
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    BOOST_TEST(WIFSIGNALED(status));
    BOOST_CHECK_NO_THROW(tt::load_checkpoint(last));
  }
  // Temporary files left by kills that landed mid-write: the case under test happened.
  int torn = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) torn += e.path().filename().string().starts_with(".last.");
  BOOST_TEST(torn > 0);
  // The run goes on from the checkpoint, and clears the leftovers.
  tt::TrainConfig more = cfg;
  more.train.epochs = 2;
  tt::TrainOptions resume = quiet();
  resume.resume = dir.path();
  BOOST_TEST((tt::train(more, resume).status == tt::TrainResult::Status::finished));
  for (const auto& e : fs::directory_iterator(dir.path()))
    BOOST_TEST(!e.path().filename().string().starts_with(".last."), e.path());
}

BOOST_AUTO_TEST_CASE(ctrl_c_writes_a_checkpoint_and_the_run_resumes_from_it) {
  // The real CLI in a child process, interrupted by SIGINT during its second epoch.
  test::TempDir dir("train_sigint");
  tt::TrainConfig cfg = tiny_config(dir / "run");
  cfg.data.synthetic.train_size = 4096;  // 128 steps per epoch: time to land mid-epoch
  const fs::path config = dir / "sigint.yaml";
  std::ofstream(config) << tt::dump_config(cfg);
  const std::string tessera = std::string(TESSERA_BINARY_DIR) + "/tessera";
  const fs::path log = dir / "log.txt";
  const pid_t child = ::fork();
  if (child == 0) {
    std::freopen(log.c_str(), "w", stdout);
    std::freopen(log.c_str(), "a", stderr);
    ::execl(tessera.c_str(), tessera.c_str(), "train", config.c_str(), nullptr);
    std::_Exit(127);
  }
  const fs::path metrics = dir / "run" / tt::kMetricsFile;
  auto first_epoch_done = [&] { return fs::exists(metrics) && fs::file_size(metrics) > 0; };
  for (int i = 0; i < 6000 && !first_epoch_done(); ++i) ::usleep(20000);  // up to 2 minutes
  BOOST_TEST_REQUIRE(first_epoch_done(), "the first epoch never finished");
  ::kill(child, SIGINT);
  int status = 0;
  ::waitpid(child, &status, 0);
  std::stringstream out;
  out << std::ifstream(log).rdbuf();
  BOOST_TEST_REQUIRE(WIFEXITED(status), out.str());
  BOOST_TEST(WEXITSTATUS(status) == 130, out.str());
  BOOST_TEST(out.str().find("interrupted") != std::string::npos, out.str());
  BOOST_TEST(out.str().find("--resume") != std::string::npos, out.str());
  const tt::Checkpoint ck = tt::load_checkpoint(dir / "run" / tt::kLastCheckpoint);
  BOOST_TEST(ck.info.state.global_step >= 128);  // at least the first epoch
  BOOST_TEST(ck.info.state.global_step < 3 * 128);

  const CommandResult resumed = run_cli({"train", config.string(), "--resume", (dir / "run").string()}, dir.path());
  BOOST_TEST(resumed.status == 0, resumed.err);
  BOOST_TEST(read_metrics(dir / "run").size() == 3u);
  BOOST_TEST(tt::load_checkpoint(dir / "run" / tt::kLastCheckpoint).info.state.global_step == 3 * 128);
}

BOOST_AUTO_TEST_CASE(an_unusable_output_directory_is_reported_before_training) {
  test::TempDir dir("train_outdir");
  std::ofstream(dir / "a_file") << "x";
  tt::TrainConfig cfg = tiny_config(dir / "a_file" / "run");  // a path through a regular file
  try {
    tt::train(cfg, quiet());
    BOOST_ERROR("no error");
  } catch (const IoError& e) {
    BOOST_TEST(std::string(e.what()).find("train.output_dir") != std::string::npos, e.what());
  }
  // A directory that cannot take a checkpoint (a file-size limit stands in for a full disk).
  const fs::path small = dir / "small.yaml";
  std::ofstream(small) << "model: {image_size: 16, patch_size: 4, num_classes: 4, dim: 32, depth: 1, heads: 2, mlp_dim: 32}\n"
                       << "data: {dataset: synthetic}\ntrain: {output_dir: " << (dir / "small").string() << "}\n";
  const std::string cmd = "bash -c \"trap '' XFSZ; ulimit -f 8; exec " + std::string(TESSERA_BINARY_DIR) +
                          "/tessera train " + small.string() + "\" > " + (dir / "out.txt").string() + " 2>&1";
  const int raw = std::system(cmd.c_str());
  BOOST_TEST(WEXITSTATUS(raw) == 1);
  std::ifstream in(dir / "out.txt");
  const std::string out{std::istreambuf_iterator<char>(in), {}};
  BOOST_TEST(out.find("train.output_dir") != std::string::npos, out);
  BOOST_TEST(out.find("epoch 1") == std::string::npos, out);  // no training happened
}

BOOST_AUTO_TEST_CASE(a_config_too_big_for_memory_fails_early_with_an_estimate) {
  test::TempDir dir("train_memory");
  tt::TrainConfig cfg = tiny_config(dir.path());
  cfg.train.batch_size = 40'000'000;
  try {
    tt::train(cfg, quiet());
    BOOST_ERROR("no error");
  } catch (const ConfigError& e) {
    const std::string w = e.what();
    BOOST_TEST(w.find("GiB") != std::string::npos, w);
    BOOST_TEST(w.find("train.batch_size") != std::string::npos, w);
  }
  BOOST_TEST(!fs::exists(dir / tt::kMetricsFile));
}

BOOST_AUTO_TEST_CASE(the_memory_probe_predicts_a_real_training_step) {
  // Measured at batches 2 and 4, extrapolated to 16: within a quarter of what a step takes,
  // for the real probe and for the dry one (which allocates without computing).
  tt::TrainConfig cfg = tiny_config(fs::temp_directory_path());
  auto model = tt::build_model(cfg);
  const Shape sample{vit(cfg).channels, vit(cfg).image_h, vit(cfg).image_w};
  CachingAllocator& a = cpu_allocator();
  const double before = static_cast<double>(a.stats().in_use);
  a.reset_peak();
  Shape batch{16};
  batch.insert(batch.end(), sample.begin(), sample.end());
  backward(cross_entropy((*model)(randn(batch)), randint({16}, vit(cfg).num_classes)));
  const double real = static_cast<double>(a.stats().peak_in_use) - before;
  model->zero_grad();
  for (const bool dry : {false, true})
    BOOST_TEST_CONTEXT("dry " << dry) {
      const GeneratorState rng = default_generator().state();
      const tt::MemoryProbe p = tt::probe_memory(*model, sample, {.dry = dry});
      BOOST_TEST((default_generator().state() == rng));  // the run's random draws are untouched
      BOOST_TEST(p.train_per_sample > 0);
      BOOST_TEST(p.eval_per_sample > 0);
      BOOST_TEST(p.train_per_sample > p.eval_per_sample);  // backward keeps activations
      BOOST_TEST(!model->parameters().front().grad().defined());
      BOOST_TEST(p.training_step(16) > 0.75 * real, p.training_step(16) << " vs " << real);
      BOOST_TEST(p.training_step(16) < 1.25 * real, p.training_step(16) << " vs " << real);
    }
}

BOOST_AUTO_TEST_CASE(the_memory_probe_leaves_running_statistics_as_they_were) {
  tt::TrainConfig cfg = tt::load_config_string("model: {name: resnet, image_size: 8, width: 2, stages: 2}\n");
  auto model = tt::build_model(cfg);
  model->train();
  (*model)(randn({4, 1, 8, 8}) + 3.0);  // running statistics away from their start
  std::vector<Tensor> before;
  for (const auto& [name, b] : model->named_buffers()) before.push_back(b.detach().clone());
  for (const bool dry : {false, true}) {
    tt::probe_memory(*model, {1, 8, 8}, {.dry = dry});
    std::size_t i = 0;
    for (const auto& [name, b] : model->named_buffers())
      BOOST_TEST(max_abs_diff(b, before[i++]) == 0.0, name << " (dry " << dry << ")");
  }
}

BOOST_AUTO_TEST_SUITE_END()
