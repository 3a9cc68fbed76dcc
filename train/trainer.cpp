#include "tessera/train/trainer.h"

#include <fcntl.h>
#include <omp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tessera/ops/cpu_info.h"
#include "tessera/ops/ops.h"
#include "tessera/optim/optim.h"
#include "tessera/train/data.h"
#include "tessera/train/memory.h"
#include "train/progress.h"
#include "train/run_lock.h"

namespace tessera::train {
namespace fs = std::filesystem;
using json = nlohmann::json;

void set_threads(int threads) {
  TESSERA_CHECK(threads >= 0, ConfigError, "train.threads: must be >= 0, got {}", threads);
  omp_set_num_threads(threads > 0 ? threads : omp_get_num_procs());
}

std::unique_ptr<nn::UnaryModule> build_model(const TrainConfig& cfg) {
  Generator init(cfg.train.seed);
  manual_seed(cfg.train.seed);
  std::unique_ptr<nn::UnaryModule> model = cfg.model.spec().build(cfg.model.values(), init);
  if (!cfg.train.device.is_cpu()) model->to(cfg.train.device);
  return model;
}

namespace {

// Fails before any training when the output directory cannot take the run's files.
void check_output_dir(const fs::path& dir, std::int64_t checkpoint_bytes) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  TESSERA_CHECK(!ec, IoError, "train.output_dir: cannot create {}: {}", dir.string(), ec.message());
  // Temporary files of checkpoint writes that a crash interrupted.
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with(".last.safetensors.tmp-") || name.starts_with(".best.safetensors.tmp-")) fs::remove(entry, ec);
  }
  // Reserve a checkpoint's worth of space for real: this catches a read-only or full
  // directory, and quotas and file-size limits that free-space figures do not show.
  const fs::path probe = dir / ".write_test";
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int err = fd < 0 ? errno : ::posix_fallocate(fd, 0, static_cast<off_t>(checkpoint_bytes));
  if (fd >= 0) ::close(fd);
  fs::remove(probe, ec);
  TESSERA_CHECK(err == 0, IoError, "train.output_dir: {} cannot hold a {:.1f} MiB checkpoint: {}", dir.string(),
                checkpoint_bytes / 1048576.0, std::strerror(err));
  const fs::space_info space = fs::space(dir, ec);
  // last + best + the temporary copy of the one being written.
  const auto need = static_cast<std::uintmax_t>(3 * checkpoint_bytes);
  TESSERA_CHECK(ec || space.available >= need, IoError,
                "train.output_dir: {} has {:.1f} MiB free; checkpoints need about {:.1f} MiB", dir.string(),
                space.available / 1048576.0, need / 1048576.0);
}

// Keeps only the metrics of epochs a resumed run has already completed.
void truncate_metrics(const fs::path& file, std::int64_t completed_epochs) {
  std::ifstream in(file);
  if (!in) return;
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      if (json::parse(line).at("epoch").get<std::int64_t>() <= completed_epochs) kept += line + "\n";
    } catch (const json::exception&) {
      // A line torn by a crash mid-write: drop it.
    }
  }
  in.close();
  std::ofstream(file, std::ios::trunc) << kept;
}

std::int64_t count_correct(const Tensor& logits, const Tensor& labels) {
  const std::vector<std::int64_t> pred = argmax(logits.detach(), 1).to_vector<std::int64_t>();
  const std::vector<std::int64_t> y = labels.to_vector<std::int64_t>();
  std::int64_t right = 0;
  for (std::size_t i = 0; i < y.size(); ++i) right += pred[i] == y[i];
  return right;
}

optim::LrSchedule make_schedule(const TrainConfig& cfg, std::int64_t steps_per_epoch) {
  const ScheduleConfig& s = cfg.schedule;
  optim::LrSchedule sched;
  sched.kind = s.name == ScheduleName::constant ? optim::LrSchedule::Kind::constant
               : s.name == ScheduleName::step   ? optim::LrSchedule::Kind::step
                                                : optim::LrSchedule::Kind::cosine;
  sched.base_lr = cfg.optim.lr;
  sched.warmup_steps = static_cast<std::int64_t>(std::llround(s.warmup_epochs * static_cast<double>(steps_per_epoch)));
  sched.step_size = static_cast<std::int64_t>(s.step_size) * steps_per_epoch;
  sched.gamma = s.gamma;
  sched.total_steps = static_cast<std::int64_t>(cfg.train.epochs) * steps_per_epoch;
  sched.min_lr = s.min_lr;
  sched.validate();
  return sched;
}

std::unique_ptr<optim::Optimizer> make_optimizer(const TrainConfig& cfg, const nn::Module& model) {
  const OptimConfig& o = cfg.optim;
  std::vector<optim::ParamGroup> groups = optim::weight_decay_groups(model.named_parameters(), o.weight_decay,
                                                                     o.no_weight_decay_on);
  std::erase_if(groups, [](const optim::ParamGroup& g) { return g.params.empty(); });
  switch (o.name) {
    case OptimizerName::sgd:
      return std::make_unique<optim::SGD>(groups, optim::SgdOptions{.lr = o.lr, .momentum = o.momentum,
                                                                     .weight_decay = o.weight_decay,
                                                                     .nesterov = o.nesterov});
    case OptimizerName::adam:
      return std::make_unique<optim::Adam>(groups, optim::AdamOptions{.lr = o.lr, .beta1 = o.betas[0],
                                                                       .beta2 = o.betas[1], .eps = o.eps,
                                                                       .weight_decay = o.weight_decay});
    case OptimizerName::adamw:
      return std::make_unique<optim::AdamW>(groups, optim::AdamWOptions{.lr = o.lr, .beta1 = o.betas[0],
                                                                         .beta2 = o.betas[1], .eps = o.eps,
                                                                         .weight_decay = o.weight_decay});
  }
  throw ConfigError("optim.name: unknown optimizer");
}

fs::path resolve_resume(const fs::path& p) {
  return fs::is_directory(p) ? p / kLastCheckpoint : p;
}

// Continues a run from a checkpoint: refuses another model or changed data, then loads
// the weights, the optimizer state, the position and the random generator.
void restore(const fs::path& from, const TrainConfig& cfg, CheckpointInfo& info, nn::UnaryModule& model,
             optim::Optimizer& opt) {
  Checkpoint ck = load_checkpoint(from);
  const TrainConfig saved = load_config_string(ck.info.config_yaml, from.string() + " (config)");
  const std::vector<ConfigDifference> architecture = model_differences(saved, cfg);
  TESSERA_CHECK(architecture.empty(), ConfigError, "--resume: {} was trained with a different model: {}",
                from.string(), format_differences(architecture));
  // Anything else that changes the samples, their order, the random draws or the arithmetic
  // would make the continuation differ from the run that never stopped.
  const std::vector<ConfigDifference> run = resume_differences(saved, cfg);
  TESSERA_CHECK(run.empty(), ConfigError,
                "--resume: {} cannot continue exactly with these settings changed: {} (set them back, or start a "
                "new run)",
                from.string(), format_differences(run));
  TESSERA_CHECK(ck.info.state.epoch <= cfg.train.epochs, ConfigError,
                "--resume: {} has done {} epochs, more than train.epochs = {}", from.string(), ck.info.state.epoch,
                cfg.train.epochs);
  for (auto [stored, current, split] : {std::tuple{&ck.info.train_fingerprint, &info.train_fingerprint, "training"},
                                        std::tuple{&ck.info.test_fingerprint, &info.test_fingerprint, "test"}})
    TESSERA_CHECK(*stored == *current, DataError, "--resume: the {} data changed since {} was written: {}", split,
                  from.string(),
                  datasets::fingerprint_diff(datasets::Fingerprint::parse(*stored),
                                             datasets::Fingerprint::parse(*current)));
  model.load_state_dict(ck.model);
  opt.load_state(ck.optimizer);
  info.state = ck.info.state;
  default_generator().set_state(info.state.generator);
}

}  // namespace

EvalResult evaluate(nn::UnaryModule& model, datasets::DataLoader& loader, Device device) {
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  EvalResult r;
  double loss_sum = 0;
  std::int64_t correct = 0;
  loader.set_epoch(0);
  for (const datasets::Batch& b : loader) {
    const Tensor x = b.images.to(device), y = b.labels.to(device);
    const Tensor logits = model(x);
    loss_sum += cross_entropy(logits, y, {.reduction = Reduction::sum}).item();
    correct += count_correct(logits.cpu(), b.labels);
    r.samples += b.size();
  }
  model.train(was_training);
  r.loss = r.samples ? loss_sum / static_cast<double>(r.samples) : 0.0;
  r.accuracy = r.samples ? static_cast<double>(correct) / static_cast<double>(r.samples) : 0.0;
  return r;
}

namespace {

// Refuses what this machine cannot run before anything is opened or written.
void check_runnable(const TrainConfig& cfg) {
  TESSERA_CHECK(cfg.train.device.is_cpu() || cuda_available(), ConfigError,
                "train.device: {} was asked for, but {}", cfg.train.device,
                cuda_built() ? "no usable CUDA GPU is present" : "this build has no CUDA backend");
  if (cfg.train.precision == DType::bf16 && cfg.train.device.is_cpu()) {
    const std::string why = bf16_unavailable_reason();
    TESSERA_CHECK(why.empty(), ConfigError, "train.precision: {}; train in f32 (train.precision: f32)", why);
  }
  if (const auto& validate = cfg.model.spec().validate) validate(cfg.model.values());
}

// Everything the run will hold at its peak, measured on the model itself (train/memory.h):
// weights, optimizer moments, a training step or an evaluation (whichever is larger: the
// allocator's cache is emptied between them), the datasets in memory and the loader's batches.
void check_run_memory(const TrainConfig& cfg, nn::UnaryModule& model, const datasets::Dataset& train_set,
                      const datasets::Dataset& test_set) {
  if (!cfg.train.device.is_cpu()) return;  // the probe measures the CPU allocator
  const ModelInput m = cfg.model.input();
  const datasets::ImageShape in{m.channels, m.height, m.width};
  const MemoryProbe p = [&] {
    try {
      return probe_memory(model, in.shape());
    } catch (const DeviceError& e) {
      throw ConfigError(fmt::format("model: a training step of this model does not fit in memory even at batch 1 "
                                    "({}); make the model or its images smaller", e.what()));
    }
  }();
  const double moments = cfg.optim.name == OptimizerName::sgd && cfg.optim.momentum == 0 ? 0 : 2;
  const std::int64_t B = cfg.train.batch_size, E = cfg.train.eval_batch_size;
  const double batch_bytes = 4.0 * static_cast<double>(in.numel()) * static_cast<double>(std::max(B, E));
  const double in_flight = static_cast<double>(cfg.data.prefetch + cfg.data.workers + 2);
  const bool step_larger = p.training_step(B) >= p.evaluation(E);
  check_memory("this run",
               std::vector<MemoryPart>{{"weights", p.weights, "model.dim"},
                {"optimizer state", moments * p.weights, "model.dim"},
                step_larger ? MemoryPart{fmt::format("a training step at batch {}", B), p.training_step(B),
                                         "train.batch_size"}
                            : MemoryPart{fmt::format("evaluation at batch {}", E), p.evaluation(E),
                                         "train.eval_batch_size"},
                {"datasets in memory",
                 static_cast<double>(train_set.memory_bytes() + test_set.memory_bytes()), "data.train_limit"},
                {"batches in flight", in_flight * batch_bytes, "data.prefetch"}});
}

// The name of the signal that stopped a run, for its messages.
std::string stop_reason(int signal) {
  if (signal <= 0) return "stopped";
  const char* name = sigabbrev_np(signal);
  return name ? fmt::format("interrupted by SIG{}", name) : fmt::format("interrupted by signal {}", signal);
}

}  // namespace

TrainResult train(const TrainConfig& cfg, const TrainOptions& opts) {
  using clock = std::chrono::steady_clock;
  const auto run_start = clock::now();
  check_runnable(cfg);
  set_threads(cfg.train.threads);
  const fs::path out_dir = cfg.train.output_dir;
  const RunLock lock(out_dir);  // held until the run ends

  // Data first: a missing or corrupt file should fail before anything is written.
  const datasets::DatasetPtr train_set = open_dataset(cfg, datasets::Split::train);
  const datasets::DatasetPtr test_set = open_dataset(cfg, datasets::Split::test, train_set->class_names());
  const datasets::ChannelStats stats = normalization(cfg, *train_set);
  datasets::DataLoader train_loader = make_loader(cfg, train_set, stats, true);
  datasets::DataLoader test_loader = make_loader(cfg, test_set, stats, false);

  std::unique_ptr<nn::UnaryModule> model = [&] {
    try {
      return build_model(cfg);
    } catch (const DeviceError& e) {
      throw ConfigError(fmt::format("model: the weights of this model do not fit in memory ({}); make it smaller",
                                    e.what()));
    }
  }();
  check_run_memory(cfg, *model, *train_set, *test_set);
  std::unique_ptr<optim::Optimizer> opt = make_optimizer(cfg, *model);
  const std::int64_t steps_per_epoch = train_loader.num_batches();
  const optim::LrSchedule schedule = make_schedule(cfg, steps_per_epoch);

  check_output_dir(out_dir, 4 * 4 * model->num_parameters() + (1 << 20));
  const fs::path metrics_path = out_dir / kMetricsFile;

  CheckpointInfo info;
  info.config_yaml = dump_config(cfg);
  info.train_fingerprint = train_set->fingerprint().to_string();
  info.test_fingerprint = test_set->fingerprint().to_string();
  info.class_names = train_set->class_names();
  info.normalize_mean = stats.mean;
  info.normalize_std = stats.std;
  TrainState& st = info.state;

  std::string resumed;
  if (opts.resume) {
    const fs::path from = resolve_resume(*opts.resume);
    restore(from, cfg, info, *model, *opt);
    truncate_metrics(metrics_path, st.epoch);
    resumed = fmt::format("resuming from {} at epoch {}, batch {} (step {})", from.string(), st.epoch + 1, st.batch,
                          st.global_step);
  } else {
    std::ofstream(metrics_path, std::ios::trunc);
  }
  std::ofstream(out_dir / kConfigFile, std::ios::trunc)
      << fmt::format("# run on: {}\n", cpu_summary()) << info.config_yaml;
  // The run's own log: what a closed terminal would otherwise take with it.
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> log(
      std::fopen((out_dir / kLogFile).c_str(), opts.resume ? "a" : "w"), std::fclose);
  Progress progress(opts.out, opts.live_progress.value_or(Progress::is_terminal(opts.out)), cfg.train.log_interval,
                    log.get());
  if (!resumed.empty()) progress.line(resumed);
  progress.line(fmt::format("cpu: {}", cpu_summary()));
  progress.line(fmt::format("model: {}, {} parameters; data: {} ({} train / {} test images); {} steps per epoch",
                            cfg.model.name(), model->num_parameters(), cfg.data.dataset, train_set->size(), test_set->size(),
                            steps_per_epoch));

  TrainResult result;
  const Device device = cfg.train.device;
  const std::int64_t epochs = cfg.train.epochs;
  const std::vector<Tensor> params = model->parameters();
  auto stop_signal = [&] { return opts.stop ? opts.stop->load() : 0; };
  auto should_stop = [&] {
    return stop_signal() != 0 || (opts.stop_at_step && st.global_step >= *opts.stop_at_step);
  };
  auto save = [&](const char* file) {
    st.generator = default_generator().state();
    const fs::path path = out_dir / file;
    save_checkpoint(path, *model, opt->state_tensors(), info);
    return path;
  };
  auto finish = [&](TrainResult::Status status, std::string message) {
    result.status = status;
    result.message = std::move(message);
    progress.line(result.message);
    return result;
  };
  model->train();
  const AutocastGuard precision(cfg.train.precision);

  while (st.epoch < epochs) {
    const auto epoch_start = clock::now();
    progress.start_epoch(st.epoch, epochs, steps_per_epoch, st.batch);
    train_loader.set_epoch(st.epoch, st.batch);
    for (const datasets::Batch& b : train_loader) {
      const double lr = schedule.lr_at(st.global_step);
      opt->set_lr(lr);
      const Tensor x = b.images.to(device), y = b.labels.to(device);
      const Tensor logits = (*model)(x);
      const Tensor loss = cross_entropy(logits, y, {.label_smoothing = cfg.train.label_smoothing});
      const double loss_value = loss.item();
      double grad_norm = 0;
      if (std::isfinite(loss_value)) {
        opt->zero_grad();
        backward(loss);
        if (cfg.optim.clip_grad_norm > 0) grad_norm = optim::clip_grad_norm(params, cfg.optim.clip_grad_norm);
      }
      if (!std::isfinite(loss_value) || !std::isfinite(grad_norm)) {
        // Nothing is saved: the last checkpoint on disk is the last good state.
        clear_tape();
        const fs::path last = out_dir / kLastCheckpoint;
        return finish(TrainResult::Status::diverged,
                      fmt::format("the {} became {} at epoch {}, step {}; stopping. The last good checkpoint is {}",
                                  std::isfinite(loss_value) ? "gradient norm" : "loss",
                                  std::isfinite(loss_value) ? grad_norm : loss_value, st.epoch + 1, st.batch + 1,
                                  fs::exists(last) ? last.string() : "(none written yet)"));
      }
      opt->step();
      ++st.global_step;
      ++st.batch;
      st.epoch_loss_sum += loss_value * static_cast<double>(b.size());
      st.epoch_correct += count_correct(logits.cpu(), b.labels);
      st.epoch_samples += b.size();
      progress.step(st.batch, loss_value, lr, b.size());
      if (should_stop() && st.batch < steps_per_epoch) {
        result.last_checkpoint = save(kLastCheckpoint);
        return finish(TrainResult::Status::interrupted,
                      fmt::format("{} at epoch {}, step {}: wrote {}; continue with --resume {}",
                                  stop_reason(stop_signal()), st.epoch + 1, st.batch, result.last_checkpoint.string(),
                                  out_dir.string()));
      }
    }
    const double epoch_seconds = std::chrono::duration<double>(clock::now() - epoch_start).count();
    const std::int64_t trained = st.epoch_samples;
    const double train_loss = trained ? st.epoch_loss_sum / static_cast<double>(trained) : 0.0;
    const double train_acc = trained ? static_cast<double>(st.epoch_correct) / static_cast<double>(trained) : 0.0;
    const std::int64_t completed = st.epoch + 1;
    const bool last_epoch = completed == epochs;
    std::string summary = fmt::format("epoch {}/{} done in {}: train loss {:.4f} acc {:.2f}%", completed, epochs,
                                      format_duration(epoch_seconds), train_loss, 100 * train_acc);
    bool improved = false;
    if (last_epoch || completed % std::max(cfg.train.eval_interval, 1) == 0) {
      // Training's cached blocks go back first: the memory check counted one phase at a time.
      cpu_allocator().empty_cache();
      const EvalResult ev = evaluate(*model, test_loader, device);
      cpu_allocator().empty_cache();
      improved = ev.accuracy > st.best_accuracy;
      if (improved) st.best_accuracy = ev.accuracy;
      result.last_accuracy = ev.accuracy;
      summary += fmt::format(" | test loss {:.4f} acc {:.2f}% (best {:.2f}%)", ev.loss, 100 * ev.accuracy,
                             100 * st.best_accuracy);
      const json m{{"epoch", completed},
                   {"global_step", st.global_step},
                   {"lr", schedule.lr_at(std::max<std::int64_t>(st.global_step - 1, 0))},
                   {"train_loss", train_loss},
                   {"train_accuracy", train_acc},
                   {"test_loss", ev.loss},
                   {"test_accuracy", ev.accuracy},
                   {"epoch_seconds", epoch_seconds},
                   {"train_images_per_second", epoch_seconds > 0 ? static_cast<double>(trained) / epoch_seconds : 0.0},
                   {"elapsed_seconds", std::chrono::duration<double>(clock::now() - run_start).count()}};
      std::ofstream(metrics_path, std::ios::app) << m.dump() << "\n";
    }
    progress.line(summary);
    // From here the state is the start of the next epoch: what a resume continues from.
    st.epoch = completed;
    st.batch = 0;
    st.epoch_loss_sum = 0;
    st.epoch_correct = 0;
    st.epoch_samples = 0;
    result.epochs_done = completed;
    if (improved) save(kBestCheckpoint);
    const int every = cfg.train.checkpoint_interval;
    const bool stopping = should_stop() && !last_epoch;
    if (last_epoch || stopping || (every > 0 && completed % every == 0)) result.last_checkpoint = save(kLastCheckpoint);
    if (stopping)
      return finish(TrainResult::Status::interrupted,
                    fmt::format("{} after epoch {}: wrote {}; continue with --resume {}", stop_reason(stop_signal()),
                                completed, result.last_checkpoint.string(), out_dir.string()));
  }
  result.best_accuracy = st.best_accuracy;
  progress.line(fmt::format("finished {} epochs: best test accuracy {:.2f}%", epochs, 100 * st.best_accuracy));
  return result;
}

}  // namespace tessera::train
