#include "tessera/train/cli.h"

#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "tessera/autograd/gradcheck.h"
#include "tessera/ops/ops.h"
#include "tessera/bench/bench.h"
#include "tessera/datasets/image_folder.h"
#include "tessera/models/vit.h"
#include "tessera/ops/cpu_info.h"
#include "tessera/train/attention_view.h"
#include "tessera/train/data.h"
#include "tessera/train/distributed.h"
#include "tessera/train/memory.h"
#include "tessera/train/trainer.h"
#include "tessera/train/weights.h"

namespace ts = tessera;
namespace tt = tessera::train;
namespace fs = std::filesystem;
namespace cli = tessera::cli;

namespace {

// The signal that asked the run to stop (0: none). The first one lets the run finish its
// step and write a checkpoint; a second one ends the process at once.
std::atomic<int> g_stop{0};
// Written by the handler with async-signal-safe calls only, so prepared beforehand.
char g_second_signal_note[2048];
char g_run_log[4096];

extern "C" void on_stop_signal(int signal) {
  int none = 0;
  if (g_stop.compare_exchange_strong(none, signal)) return;
  const std::size_t n = std::strlen(g_second_signal_note);
  (void)!::write(STDERR_FILENO, g_second_signal_note, n);
  if (g_run_log[0] != '\0') {
    const int fd = ::open(g_run_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
      (void)!::write(fd, g_second_signal_note, n);
      ::close(fd);
    }
  }
  ::_exit(128 + signal);
}

// Every signal that would end the process and can be caught stops the run with a checkpoint;
// SIGPIPE and SIGXFSZ are ignored so that a closed pipe or a file-size limit becomes a failed
// write with a message rather than a silent death.
void install_stop_handlers(const fs::path& output_dir) {
  fmt::format_to_n(g_second_signal_note, sizeof g_second_signal_note - 1,
                   "tessera: a second signal: stopped at once, without a new checkpoint; continue from the last "
                   "one with --resume {}\n",
                   output_dir.string());
  const std::string log = (output_dir / tt::kLogFile).string();
  if (log.size() < sizeof g_run_log) std::memcpy(g_run_log, log.c_str(), log.size() + 1);
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  for (const int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGXCPU, SIGVTALRM, SIGPROF,
                        SIGPWR})
    sigaction(sig, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGXFSZ, SIG_IGN);
}

// Writes and flushes, ignoring failure: a message to a closed terminal or a broken pipe is
// lost, not a reason to fail (the run directory's train.log keeps the run's own).
void say(std::FILE* f, const std::string& text) noexcept {
  std::fwrite(text.data(), 1, text.size(), f);
  std::fflush(f);
}

// Descriptors 0-2 closed by whoever started us would be handed to the next files opened
// (a checkpoint, the lock), and what is printed would land in them: keep them taken.
void keep_standard_descriptors_open() {
  for (int fd = 0; fd <= 2; ++fd)
    if (::fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
      const int null = ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
      if (null >= 0 && null != fd) {
        ::dup2(null, fd);
        ::close(null);
      }
    }
}

tt::TrainConfig read_config(const std::string& file, const std::vector<std::string>& sets) {
  std::vector<tt::ConfigOverride> overrides;
  for (const std::string& s : sets) overrides.push_back(tt::parse_override(s));
  return tt::load_config(file, overrides);
}

tt::TrainConfig config_of(const tt::Checkpoint& ck, const fs::path& file) {
  return tt::load_config_string(ck.info.config_yaml, file.string() + " (config)");
}

int finish_train(const tt::TrainConfig& cfg, const tt::TrainResult& r, bool reporter) {
  switch (r.status) {
    case tt::TrainResult::Status::finished:
      if (reporter) say(stdout, fmt::format("checkpoints and metrics.jsonl in {}\n", cfg.train.output_dir.string()));
      return 0;
    case tt::TrainResult::Status::interrupted:
      if (reporter) say(stderr, fmt::format("tessera: {}\n", r.message));
      return g_stop.load() > 0 ? 128 + g_stop.load() : 130;  // 130: stopped without a signal here
    case tt::TrainResult::Status::diverged:
      if (reporter) say(stderr, fmt::format("tessera: error: {}\n", r.message));
      return 1;
  }
  return 1;
}

// One rank of a data-parallel run (mpirun, srun). Failures every rank knows of are reported
// once, by rank 0; a failure of this rank alone stops the whole run, since the others would
// wait for it in their next collective.
int train_rank(const cli::Args& a, tt::Communicator& comm) {
  try {
    std::optional<tt::TrainConfig> cfg;
    std::optional<tt::RankError> failure;
    try {
      cfg = read_config(a.config, a.sets);
    } catch (const ts::ConfigError& e) {
      failure = tt::RankError{comm.rank(), e.what(), true};
    } catch (const std::exception& e) {
      failure = tt::RankError{comm.rank(), e.what(), false};
    }
    if (const std::optional<tt::RankError> e = comm.agree(failure))
      throw tt::AgreedError(fmt::format("rank {}: {}", e->rank, e->message), e->config ? 2 : 1, comm.rank() == 0);
    install_stop_handlers(cfg->train.output_dir);
    tt::TrainOptions opts;
    if (!a.resume.empty()) opts.resume = a.resume;
    opts.stop = &g_stop;
    opts.comm = &comm;
    return finish_train(*cfg, tt::train(*cfg, opts), comm.rank() == 0);
  } catch (const tt::AgreedError& e) {
    if (e.report()) say(stderr, fmt::format("tessera: error: {}\n", e.what()));
    return e.status();
  } catch (const tt::CollectiveError& e) {
    if (e.report()) say(stderr, fmt::format("tessera: error: {}\n", e.what()));
    comm.abort(1);
  } catch (const std::exception& e) {
    say(stderr, fmt::format("tessera: error: rank {}: {}; stopping every rank\n", comm.rank(), e.what()));
    comm.abort(dynamic_cast<const ts::ConfigError*>(&e) ? 2 : 1);
  }
  return 1;  // not reached: abort() ends the process
}

int run_train(const cli::Args& a) {
  const std::unique_ptr<tt::Communicator> comm = tt::connect();
  if (comm->size() > 1) return train_rank(a, *comm);
  const tt::TrainConfig cfg = read_config(a.config, a.sets);
  install_stop_handlers(cfg.train.output_dir);
  tt::TrainOptions opts;
  if (!a.resume.empty()) opts.resume = a.resume;
  opts.stop = &g_stop;
  return finish_train(cfg, tt::train(cfg, opts), true);
}

// A checkpoint's model, loaded, on the config's device, in eval mode.
std::unique_ptr<ts::nn::UnaryModule> load_model(const tt::TrainConfig& cfg, const tt::Checkpoint& ck) {
  auto model = tt::build_model(cfg);
  model->load_state_dict(ck.model);
  model->eval();
  return model;
}

int run_eval(const cli::Args& a) {
  const std::string &config = a.config, &checkpoint = a.checkpoint;
  const tt::TrainConfig cfg = read_config(config, a.sets);
  tt::set_threads(cfg.train.threads);
  const tt::Checkpoint ck = tt::load_checkpoint(checkpoint);
  const std::vector<tt::ConfigDifference> diffs = tt::model_differences(config_of(ck, checkpoint), cfg);
  TESSERA_CHECK(diffs.empty(), ts::ConfigError, "eval: {} holds a different model than {}: {}", checkpoint, config,
                tt::format_differences(diffs));
  auto model = load_model(cfg, ck);
  const ts::datasets::DatasetPtr test = tt::open_dataset(cfg, ts::datasets::Split::test, ck.info.class_names);
  ts::datasets::DataLoader loader =
      tt::make_loader(cfg, test, {ck.info.normalize_mean, ck.info.normalize_std}, false);
  const tt::EvalResult r = tt::evaluate(*model, loader, cfg.train.device);
  fmt::print("{}: {} test images, loss {:.4f}, accuracy {:.2f}%\n", checkpoint, r.samples, r.loss, 100 * r.accuracy);
  // Per class: its images, and the share of them predicted right.
  const std::vector<std::string>& names = test->class_names();
  nlohmann::json classes = nlohmann::json::array();
  for (std::int64_t k = 0; k < r.classes; ++k) {
    std::int64_t total = 0;
    for (std::int64_t j = 0; j < r.classes; ++j) total += r.confusion[static_cast<std::size_t>(k * r.classes + j)];
    const std::int64_t right = r.confusion[static_cast<std::size_t>(k * r.classes + k)];
    const std::string name = k < static_cast<std::int64_t>(names.size()) ? names[static_cast<std::size_t>(k)]
                                                                         : std::to_string(k);
    if (total > 0)
      fmt::print("  {:<14} {:>6} images, accuracy {:.2f}%\n", name, total, 100.0 * static_cast<double>(right) / total);
    classes.push_back({{"class", name}, {"images", total},
                       {"accuracy", total ? static_cast<double>(right) / static_cast<double>(total) : 0.0}});
  }
  if (!a.output.empty()) {
    std::vector<std::vector<std::int64_t>> rows;
    for (std::int64_t k = 0; k < r.classes; ++k)
      rows.emplace_back(r.confusion.begin() + k * r.classes, r.confusion.begin() + (k + 1) * r.classes);
    const nlohmann::json out{{"checkpoint", checkpoint}, {"images", r.samples}, {"loss", r.loss},
                             {"accuracy", r.accuracy}, {"per_class", classes},
                             {"confusion", rows}, {"confusion_layout", "rows: true class, columns: predicted class"}};
    std::error_code ec;
    fs::create_directories(a.output, ec);
    const fs::path file = fs::path(a.output) / "confusion.json";
    std::ofstream f(file);
    f << out.dump(2) << "\n";
    TESSERA_CHECK(f.good(), ts::IoError, "eval: cannot write {}", file.string());
    fmt::print("wrote {}\n", file.string());
  }
  return 0;
}

int run_predict(const cli::Args& a) {
  const std::string& checkpoint = a.checkpoint;
  const std::vector<std::string>& images = a.images;
  const tt::Checkpoint ck = tt::load_checkpoint(checkpoint);
  tt::TrainConfig cfg = config_of(ck, checkpoint);
  cfg.train.device = ts::Device::cpu();
  tt::set_threads(cfg.train.threads);
  auto model = load_model(cfg, ck);
  const tt::ModelInput in = cfg.model.input();
  const ts::datasets::ImageShape shape{in.channels, in.height, in.width};
  // Images go through the model a batch at a time: memory stays bounded however many are given.
  constexpr std::int64_t kBatch = 32;
  const std::int64_t n = static_cast<std::int64_t>(images.size()), pixels = shape.numel();
  tt::check_probed_memory(*model, shape.shape(), false, "predict", [&](const tt::MemoryProbe& p) {
    return std::vector<tt::MemoryPart>{
        {"weights", p.weights, ""},
        {fmt::format("a batch of {} images", std::min(n, kBatch)), p.evaluation(std::min(n, kBatch)), ""}};
  });
  const std::int64_t classes = in.num_classes;
  const std::int64_t k = std::min<std::int64_t>(a.top_k, classes);
  std::vector<std::uint8_t> decoded(static_cast<std::size_t>(pixels));
  ts::NoGradGuard no_grad;
  for (std::int64_t first = 0; first < n; first += kBatch) {
    const std::int64_t count = std::min(kBatch, n - first);
    std::vector<float> batch(static_cast<std::size_t>(count * pixels));
    for (std::int64_t i = 0; i < count; ++i) {
      tt::read_model_input(images[static_cast<std::size_t>(first + i)], shape,
                           {ck.info.normalize_mean, ck.info.normalize_std}, decoded,
                           std::span(batch).subspan(static_cast<std::size_t>(i * pixels), static_cast<std::size_t>(pixels)));
    }
    const ts::Tensor probs =
        ts::softmax((*model)(ts::from_vector(batch, {count, shape.channels, shape.height, shape.width})), -1);
    const std::vector<float> p = probs.to_vector<float>();
    for (std::int64_t i = 0; i < count; ++i) {
      std::vector<std::int64_t> order(static_cast<std::size_t>(classes));
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [&](auto a, auto b) { return p[i * classes + a] > p[i * classes + b]; });
      fmt::print("{}:", images[static_cast<std::size_t>(first + i)]);
      for (std::int64_t j = 0; j < k; ++j) {
        const auto c = static_cast<std::size_t>(order[j]);
        fmt::print(" {} {:.2f}%{}", c < ck.info.class_names.size() ? ck.info.class_names[c] : std::to_string(c),
                   100 * p[i * classes + order[j]], j + 1 < k ? "," : "");
      }
      fmt::print("\n");
    }
  }
  return 0;
}

int run_summary(const cli::Args& a) {
  tt::TrainConfig cfg = read_config(a.config, a.sets);
  cfg.train.device = ts::Device::cpu();
  auto model = tt::build_model(cfg);
  const tt::ModelInput in = cfg.model.input();
  const ts::Tensor sample = ts::zeros({1, in.channels, in.height, in.width});
  fmt::print("{}", ts::nn::summary(*model, [&] { (*model)(sample); }));
  return 0;
}

int run_gradcheck(const cli::Args& a) {
  const int samples = a.samples;
  tt::TrainConfig cfg = read_config(a.config, a.sets);
  cfg.train.device = ts::Device::cpu();
  tt::set_threads(cfg.train.threads);
  auto model = tt::build_model(cfg);
  model->eval();  // dropout off: the function must be deterministic
  model->to(ts::DType::f64);
  ts::Generator gen(cfg.train.seed);
  const tt::ModelInput in = cfg.model.input();
  const ts::Tensor images = ts::randn({2, in.channels, in.height, in.width},
                                      {.dtype = ts::DType::f64}, gen);
  const ts::Tensor labels = ts::randint({2}, in.num_classes, gen);
  const ts::nn::NamedTensors named = model->named_parameters();
  std::vector<ts::Tensor> inputs{images};
  for (const auto& [name, p] : named) inputs.push_back(p);
  fmt::print("gradient check of the configured {} in f64 ({} parameters, batch 2, {} elements per tensor)\n",
             cfg.model.name(),
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

int run_bench(const cli::Args& a) { return ts::bench::run(a.bench); }

int run_import(const cli::Args& a) {
  tt::ImportOptions options;
  if (a.heads > 0) options.heads = a.heads;
  const tt::TrainConfig cfg = tt::import_timm_vit(a.weights, a.output, options);
  const auto& v = cfg.model.as<ts::models::ViTConfig>();
  fmt::print("{}: a ViT of {}x{} images ({} channels), patches of {}, dim {}, depth {}, {} heads, MLP {}, {} classes; "
             "wrote {}\n",
             a.weights, v.image_h, v.image_w, v.channels, v.patch_size, v.dim, v.depth, v.heads, v.mlp_dim,
             v.num_classes, a.output);
  return 0;
}

int run_attention(const cli::Args& a) {
  const std::vector<fs::path> images(a.images.begin(), a.images.end());
  for (const fs::path& f : tt::write_attention_views(tt::load_checkpoint(a.checkpoint), images, a.output,
                                                     {.per_head = a.per_head}))
    fmt::print("{}\n", f.string());
  return 0;
}

int run_export(const cli::Args& a) {
  const ts::DType dtype = a.dtype == "bf16" ? ts::DType::bf16 : a.dtype == "f64" ? ts::DType::f64 : ts::DType::f32;
  tt::export_weights(a.checkpoint, a.output, dtype);
  fmt::print("{}: wrote its weights to {} ({})\n", a.checkpoint, a.output, a.dtype);
  return 0;
}

void config_options(CLI::App& cmd, cli::Args& a) {
  cmd.add_option("CONFIG", a.config, "YAML config file")->required()->check(CLI::ExistingFile);
  cmd.add_option("--set", a.sets, "override a key: --set optim.lr=3e-4 (repeatable)");
}

// Every command once: its name, its help line, its options and what runs it.
struct Command {
  const char* name;
  const char* help;
  void (*options)(CLI::App&, cli::Args&);
  int (*run)(const cli::Args&);
};

const Command kCommands[] = {
    {"train", "train a model from a config",
     [](CLI::App& c, cli::Args& a) {
       config_options(c, a);
       c.add_option("--resume", a.resume, "continue the run in this output directory (or from this checkpoint)");
     },
     run_train},
    {"eval", "evaluate a checkpoint on the config's test split",
     [](CLI::App& c, cli::Args& a) {
       config_options(c, a);
       c.add_option("--checkpoint", a.checkpoint, "checkpoint file")->required()->check(CLI::ExistingFile);
       c.add_option("-o,--output", a.output, "directory for confusion.json (matrix and per-class accuracy)");
     },
     run_eval},
    {"predict", "classify images with a checkpoint",
     [](CLI::App& c, cli::Args& a) {
       c.add_option("--checkpoint", a.checkpoint, "checkpoint file")->required()->check(CLI::ExistingFile);
       c.add_option("IMAGE", a.images, "PNG/JPEG/BMP files")->required()->check(CLI::ExistingFile);
       c.add_option("--top-k", a.top_k, "classes to show per image")->check(CLI::Range(1, 1 << 20));
     },
     run_predict},
    {"summary", "print the configured model's layers and parameter count", config_options, run_summary},
    {"gradcheck", "gradient-check the configured model in f64",
     [](CLI::App& c, cli::Args& a) {
       config_options(c, a);
       c.add_option("--samples", a.samples, "elements checked per parameter tensor")->check(CLI::Range(1, 1 << 20));
     },
     run_gradcheck},
    {"bench", "training and inference throughput (the PyTorch peer's presets, or a config's model)",
     [](CLI::App& c, cli::Args& a) {
       ts::bench::BenchOptions& b = a.bench;
       c.add_option("--preset", b.presets, "seed, mnist, tiny (repeatable; default all)");
       c.add_option("--config", b.config, "time this config's model, batch and training settings on random data")
           ->check(CLI::ExistingFile)
           ->excludes("--preset");
       c.add_option("--set", b.sets, "override a key of --config: --set train.batch_size=64 (repeatable)")
           ->needs("--config");
       c.add_option("--steps", b.steps, "timed steps per measure")->check(CLI::Range(1, 1 << 20));
       c.add_option("--threads", b.threads, "threads (0: all cores)")->check(CLI::Range(0, 256));
       c.add_flag("--profile", b.profile, "per-op time breakdown of a training step");
       c.add_flag("--matmul", b.matmul, "matmul GFLOP/s in f32 and bf16");
       c.add_flag("--bf16", b.bf16, "mixed precision: bf16 linear layers, f32 master weights");
       c.add_flag("--latency", b.latency, "also batch-1 inference latency (p50, p99 of 200 calls)");
       c.add_option("--dropout", b.dropout, "presets: dropout, attention dropout and drop path at this rate")
           ->check(CLI::Range(0.0, 0.99))
           ->excludes("--config");
       c.add_flag("!--no-roofline", b.roofline, "skip the matmul peak and the roofline shares");
     },
     run_bench},
    {"import", "a timm ViT's weights (safetensors state dict) to a Tessera checkpoint",
     [](CLI::App& c, cli::Args& a) {
       c.add_option("WEIGHTS", a.weights, "safetensors state dict with timm's names")
           ->required()
           ->check(CLI::ExistingFile);
       c.add_option("-o,--output", a.output, "checkpoint to write")->required();
       c.add_option("--heads", a.heads, "attention heads (default: dim / 64)")->check(CLI::Range(1, 1 << 16));
     },
     run_import},
    {"export", "a checkpoint's weights as a plain state dict (timm's names)",
     [](CLI::App& c, cli::Args& a) {
       c.add_option("CHECKPOINT", a.checkpoint, "checkpoint file")->required()->check(CLI::ExistingFile);
       c.add_option("-o,--output", a.output, "safetensors file to write")->required();
       c.add_option("--dtype", a.dtype, "f32, bf16 or f64")->check(CLI::IsMember({"f32", "bf16", "f64"}));
     },
     run_export},
    {"attention", "pictures of where a ViT attends: attention rollout over each image",
     [](CLI::App& c, cli::Args& a) {
       c.add_option("--checkpoint", a.checkpoint, "checkpoint file")->required()->check(CLI::ExistingFile);
       c.add_option("IMAGE", a.images, "PNG/JPEG/BMP files")->required()->check(CLI::ExistingFile);
       c.add_option("-o,--output", a.output, "directory for the PNG pictures")->required();
       c.add_flag("--per-head", a.per_head, "also the last block's class-token attention, one picture per head");
     },
     run_attention},
};

// A user's argument quoted for a message, cut to a sane length.
std::string echo(std::string_view s) {
  return s.size() > 60 ? fmt::format("{}...", s.substr(0, 57)) : std::string(s);
}

std::string command_names() {
  std::vector<std::string> names;
  for (const Command& c : kCommands) names.emplace_back(c.name);
  return fmt::format("{} and {}", fmt::join(names.begin(), names.end() - 1, ", "), names.back());
}

}  // namespace

namespace tessera::cli {

Parsed parse(const std::vector<std::string>& args) {
  CLI::App app{"Tessera: train and run Vision Transformers from a YAML config", "tessera"};
  app.require_subcommand(1);
  app.set_version_flag("--version", [] {
    return fmt::format("tessera {} ({} build{})\ncpu: {}", TESSERA_VERSION, TESSERA_NATIVE_BUILD ? "native" : "portable",
                       ts::cuda_built() ? ", CUDA backend" : "", ts::cpu_summary());
  });
  Parsed p;
  std::vector<std::pair<CLI::App*, const Command*>> commands;
  for (const Command& c : kCommands) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    c.options(*sub, p.args);
    commands.emplace_back(sub, &c);
  }
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them last first
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    std::ostringstream out, err;
    p.status = app.exit(e, out, err);
    p.output = out.str();
    if (p.status == 0) return p;  // --help, --version
    p.status = 2;
    if (app.get_subcommands().empty()) {
      // CLI11 reports an unknown command as a missing one; name it.
      const bool unknown = !args.empty() && !args.front().starts_with('-');
      p.error = fmt::format("tessera: error: {} (see tessera --help)\n",
                            unknown ? fmt::format("unknown command '{}'; the commands are {}", echo(args.front()),
                                                  command_names())
                                    : std::string(e.what()));
    } else {
      p.error = fmt::format("tessera: error: {} (see tessera {} --help)\n", e.what(),
                            app.get_subcommands().front()->get_name());
    }
    return p;
  }
  for (const auto& [sub, command] : commands)
    if (*sub) p.run = command->run;
  return p;
}

int main(int argc, char** argv) {
  keep_standard_descriptors_open();
  const Parsed p = parse(std::vector<std::string>(argv + 1, argv + argc));
  say(stdout, p.output);
  say(stderr, p.error);
  if (!p.run) return p.status;
  try {
    ts::require_supported_cpu("");
    return p.run(p.args);
  } catch (const ts::ConfigError& e) {
    say(stderr, fmt::format("tessera: error: {}\n", e.what()));
    return 2;
  } catch (const std::exception& e) {
    say(stderr, fmt::format("tessera: error: {}\n", e.what()));
    return 1;
  }
}

}  // namespace tessera::cli
