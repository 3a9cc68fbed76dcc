// The `tessera` command line: train, eval, predict, summary, gradcheck and bench.
// Exit status: 0 success, 2 usage or config errors, 1 other failures, 130 interrupted.
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iterator>

#include <CLI/CLI.hpp>

#include "autograd/gradcheck.h"
#include "bench/bench.h"
#include "datasets/image_folder.h"
#include "ops/cpu_info.h"
#include "ops/kernels.h"
#include "train/data.h"
#include "train/trainer.h"

namespace ts = tessera;
namespace tt = tessera::train;
namespace fs = std::filesystem;

namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_interrupt(int) {
  if (g_stop.exchange(true)) std::_Exit(130);  // a second Ctrl-C: leave now
}

void install_interrupt_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

tt::TrainConfig read_config(const std::string& file, const std::vector<std::string>& sets) {
  std::vector<tt::ConfigOverride> overrides;
  for (const std::string& s : sets) overrides.push_back(tt::parse_override(s));
  return tt::load_config(file, overrides);
}

tt::TrainConfig config_of(const tt::Checkpoint& ck, const fs::path& file) {
  return tt::load_config_string(ck.info.config_yaml, file.string() + " (config)");
}

int run_train(const std::string& config, const std::vector<std::string>& sets, const std::string& resume) {
  const tt::TrainConfig cfg = read_config(config, sets);
  install_interrupt_handler();
  tt::TrainOptions opts;
  if (!resume.empty()) opts.resume = resume;
  opts.stop = &g_stop;
  const tt::TrainResult r = tt::train(cfg, opts);
  switch (r.status) {
    case tt::TrainResult::Status::finished:
      fmt::print("finished {} epochs: best test accuracy {:.2f}%; checkpoints and metrics.jsonl in {}\n",
                 r.epochs_done, 100 * r.best_accuracy, cfg.train.output_dir.string());
      return 0;
    case tt::TrainResult::Status::interrupted: return 130;
    case tt::TrainResult::Status::diverged: return 1;
  }
  return 1;
}

// A checkpoint's model, loaded, on the config's device, in eval mode.
std::unique_ptr<ts::models::ViT> load_model(const tt::TrainConfig& cfg, const tt::Checkpoint& ck) {
  auto model = tt::build_model(cfg);
  model->load_state_dict(ck.model);
  model->eval();
  return model;
}

int run_eval(const std::string& config, const std::vector<std::string>& sets, const std::string& checkpoint) {
  const tt::TrainConfig cfg = read_config(config, sets);
  tt::set_threads(cfg.train.threads);
  const tt::Checkpoint ck = tt::load_checkpoint(checkpoint);
  const std::vector<tt::ConfigDifference> diffs = tt::model_differences(config_of(ck, checkpoint), cfg);
  TESSERA_CHECK(diffs.empty(), ts::ConfigError, "eval: {} holds a different model than {}: {}", checkpoint, config,
                tt::format_differences(diffs));
  auto model = load_model(cfg, ck);
  const ts::datasets::DatasetPtr test = tt::open_dataset(cfg, ts::datasets::Split::test);
  ts::datasets::DataLoader loader =
      tt::make_loader(cfg, test, {ck.info.normalize_mean, ck.info.normalize_std}, false);
  const tt::EvalResult r = tt::evaluate(*model, loader, cfg.train.device);
  fmt::print("{}: {} test images, loss {:.4f}, accuracy {:.2f}%\n", checkpoint, r.samples, r.loss, 100 * r.accuracy);
  return 0;
}

int run_predict(const std::string& checkpoint, const std::vector<std::string>& images, int top_k) {
  const tt::Checkpoint ck = tt::load_checkpoint(checkpoint);
  tt::TrainConfig cfg = config_of(ck, checkpoint);
  cfg.train.device = ts::Device::cpu();
  tt::set_threads(cfg.train.threads);
  auto model = load_model(cfg, ck);
  const ts::datasets::ImageShape shape{cfg.model.channels, cfg.model.image_size[0], cfg.model.image_size[1]};
  const std::int64_t n = static_cast<std::int64_t>(images.size()), pixels = shape.numel();
  std::vector<float> batch(static_cast<std::size_t>(n * pixels));
  std::vector<std::uint8_t> decoded(static_cast<std::size_t>(pixels));
  const std::int64_t plane = shape.height * shape.width;
  for (std::int64_t i = 0; i < n; ++i) {
    std::ifstream in(images[i], std::ios::binary);
    TESSERA_CHECK(in.good(), ts::IoError, "predict: cannot read {}", images[i]);
    const std::vector<std::uint8_t> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    ts::datasets::decode_image(bytes, shape, decoded, images[i]);
    for (std::int64_t k = 0; k < pixels; ++k) {
      const std::size_t c = static_cast<std::size_t>(k / plane);
      const double v = decoded[k] / 255.0;
      batch[i * pixels + k] = static_cast<float>(ck.info.normalize_mean.empty()
                                                     ? v
                                                     : (v - ck.info.normalize_mean[c]) / ck.info.normalize_std[c]);
    }
  }
  ts::NoGradGuard no_grad;
  const ts::Tensor probs = ts::softmax((*model)(ts::from_vector(batch, {n, shape.channels, shape.height, shape.width})), -1);
  const std::vector<float> p = probs.to_vector<float>();
  const std::int64_t classes = cfg.model.num_classes, k = std::min<std::int64_t>(top_k, classes);
  for (std::int64_t i = 0; i < n; ++i) {
    std::vector<std::int64_t> order(static_cast<std::size_t>(classes));
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](auto a, auto b) { return p[i * classes + a] > p[i * classes + b]; });
    fmt::print("{}:", images[i]);
    for (std::int64_t j = 0; j < k; ++j) {
      const auto c = static_cast<std::size_t>(order[j]);
      fmt::print(" {} {:.2f}%{}", c < ck.info.class_names.size() ? ck.info.class_names[c] : std::to_string(c),
                 100 * p[i * classes + order[j]], j + 1 < k ? "," : "");
    }
    fmt::print("\n");
  }
  return 0;
}

int run_summary(const std::string& config, const std::vector<std::string>& sets) {
  tt::TrainConfig cfg = read_config(config, sets);
  cfg.train.device = ts::Device::cpu();
  auto model = tt::build_model(cfg);
  const ts::Tensor sample = ts::zeros({1, cfg.model.channels, cfg.model.image_size[0], cfg.model.image_size[1]});
  fmt::print("{}", ts::nn::summary(*model, [&] { (*model)(sample); }));
  return 0;
}

int run_gradcheck(const std::string& config, const std::vector<std::string>& sets, int samples) {
  tt::TrainConfig cfg = read_config(config, sets);
  cfg.train.device = ts::Device::cpu();
  tt::set_threads(cfg.train.threads);
  auto model = tt::build_model(cfg);
  model->eval();  // dropout off: the function must be deterministic
  model->to(ts::DType::f64);
  ts::Generator gen(cfg.train.seed);
  const ts::Tensor images = ts::randn({2, cfg.model.channels, cfg.model.image_size[0], cfg.model.image_size[1]},
                                      {.dtype = ts::DType::f64}, gen);
  const ts::Tensor labels = ts::randint({2}, cfg.model.num_classes, gen);
  const ts::nn::NamedTensors named = model->named_parameters();
  std::vector<ts::Tensor> inputs{images};
  for (const auto& [name, p] : named) inputs.push_back(p);
  fmt::print("gradient check of the configured ViT in f64 ({} parameters, batch 2, {} elements per tensor)\n",
             model->num_parameters(), samples);
  const ts::GradcheckResult r = ts::gradcheck(
      [&](const std::vector<ts::Tensor>&) { return ts::cross_entropy((*model)(images), labels); }, inputs,
      {.max_per_input = samples});
  std::size_t width = 9;
  for (const auto& [name, p] : named) width = std::max(width, name.size());
  fmt::print("{:<{}}  {:>7}  {:>12}  {}\n", "parameter", width, "checked", "max rel err", "");
  double worst = 0;
  for (const ts::GradcheckInputReport& rep : r.inputs) {
    const std::string& name = named[static_cast<std::size_t>(rep.input - 1)].first;
    worst = std::max(worst, rep.max_rel_error);
    fmt::print("{:<{}}  {:>7}  {:>12.3e}  {}\n", name, width, rep.checked, rep.max_rel_error, rep.ok ? "ok" : "FAIL");
  }
  fmt::print("worst relative error {:.3e}: {}\n", worst, r.ok ? "all gradients match" : "MISMATCH");
  return r.ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Tessera: train and run Vision Transformers from a YAML config", "tessera"};
  app.require_subcommand(1);
  app.set_version_flag("--version", [] {
    return fmt::format("tessera {} ({} build{})\ncpu: {}", TESSERA_VERSION, TESSERA_NATIVE_BUILD ? "native" : "portable",
                       ts::cuda_built() ? ", CUDA backend" : "", ts::cpu_summary());
  });
  std::string config, checkpoint, resume;
  std::vector<std::string> sets, images;
  int top_k = 5, samples = 6;
  ts::bench::BenchOptions bench;

  auto add_config = [&](CLI::App* cmd) {
    cmd->add_option("CONFIG", config, "YAML config file")->required()->check(CLI::ExistingFile);
    cmd->add_option("--set", sets, "override a key: --set optim.lr=3e-4 (repeatable)");
  };
  CLI::App* train = app.add_subcommand("train", "train a model from a config");
  add_config(train);
  train->add_option("--resume", resume, "continue the run in this output directory (or from this checkpoint)");
  CLI::App* eval = app.add_subcommand("eval", "evaluate a checkpoint on the config's test split");
  add_config(eval);
  eval->add_option("--checkpoint", checkpoint, "checkpoint file")->required()->check(CLI::ExistingFile);
  CLI::App* predict = app.add_subcommand("predict", "classify images with a checkpoint");
  predict->add_option("--checkpoint", checkpoint, "checkpoint file")->required()->check(CLI::ExistingFile);
  predict->add_option("IMAGE", images, "PNG/JPEG/BMP files")->required()->check(CLI::ExistingFile);
  predict->add_option("--top-k", top_k, "classes to show per image")->check(CLI::PositiveNumber);
  CLI::App* summary = app.add_subcommand("summary", "print the configured model's layers and parameter count");
  add_config(summary);
  CLI::App* gradcheck = app.add_subcommand("gradcheck", "gradient-check the configured model in f64");
  add_config(gradcheck);
  gradcheck->add_option("--samples", samples, "elements checked per parameter tensor")->check(CLI::PositiveNumber);
  CLI::App* bench_cmd = app.add_subcommand("bench", "training and inference throughput (the PyTorch peer's presets)");
  bench_cmd->add_option("--preset", bench.presets, "seed, mnist, tiny (repeatable; default all)");
  bench_cmd->add_option("--steps", bench.steps, "timed steps per measure")->check(CLI::PositiveNumber);
  bench_cmd->add_option("--threads", bench.threads, "threads (0: all cores)")->check(CLI::NonNegativeNumber);
  bench_cmd->add_flag("--profile", bench.profile, "per-op time breakdown of a training step");
  bench_cmd->add_flag("--matmul", bench.matmul, "matmul GFLOP/s in f32 and bf16");
  bench_cmd->add_flag("--bf16", bench.bf16, "mixed precision: bf16 linear layers, f32 master weights");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    if (app.get_subcommands().empty()) {
      // CLI11 reports an unknown command as a missing one; name it.
      const bool unknown = argc > 1 && argv[1][0] != '-';
      fmt::print(stderr, "tessera: error: {} (see tessera --help)\n",
                 unknown ? fmt::format("unknown command '{}'; the commands are train, eval, predict, summary, "
                                       "gradcheck and bench", argv[1])
                         : std::string(e.what()));
    } else {
      fmt::print(stderr, "tessera: error: {} (see tessera {} --help)\n", e.what(),
                 app.get_subcommands().front()->get_name());
    }
    return 2;
  }
  try {
    ts::require_supported_cpu("");
    if (*train) return run_train(config, sets, resume);
    if (*eval) return run_eval(config, sets, checkpoint);
    if (*predict) return run_predict(checkpoint, images, top_k);
    if (*summary) return run_summary(config, sets);
    if (*gradcheck) return run_gradcheck(config, sets, samples);
    if (*bench_cmd) return ts::bench::run(bench);
  } catch (const ts::ConfigError& e) {
    fmt::print(stderr, "tessera: error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "tessera: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
