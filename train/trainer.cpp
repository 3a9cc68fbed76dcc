#include "train/trainer.h"

#include <fcntl.h>
#include <omp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "ops/cpu_info.h"
#include "ops/kernels.h"
#include "optim/optim.h"
#include "train/data.h"
#include "train/progress.h"

namespace tessera::train {
namespace fs = std::filesystem;
using json = nlohmann::json;

void set_threads(int threads) {
  TESSERA_CHECK(threads >= 0, ConfigError, "train.threads: must be >= 0, got {}", threads);
  omp_set_num_threads(threads > 0 ? threads : omp_get_num_procs());
}

std::unique_ptr<models::ViT> build_model(const TrainConfig& cfg) {
  Generator init(cfg.train.seed);
  manual_seed(cfg.train.seed);
  auto model = std::make_unique<models::ViT>(to_vit_config(cfg.model), init);
  if (!cfg.train.device.is_cpu()) model->to(cfg.train.device);
  return model;
}

std::int64_t estimate_training_bytes(const TrainConfig& cfg) {
  const ModelConfig& m = cfg.model;
  const models::ViTConfig v = to_vit_config(m);
  const std::int64_t B = cfg.train.batch_size, N = v.num_patches() + 1, D = m.dim, L = m.depth;
  // Parameters: weights, gradients and two Adam moments.
  const std::int64_t per_block = 4 * D * D + 4 * D + 2 * D * m.mlp_dim + m.mlp_dim + D + 4 * D;
  const std::int64_t params = L * per_block + m.channels * m.patch_size * m.patch_size * D + N * D + D * m.num_classes;
  // Saved activations per block and token: about 12 D-wide and 3 mlp-wide tensors, plus
  // the heads' N x N attention weights; the backward pass needs about as much again.
  const std::int64_t acts = L * B * N * (12 * D + 3 * m.mlp_dim + m.heads * N);
  const std::int64_t input = B * m.channels * m.image_size[0] * m.image_size[1];
  return 4 * (4 * params + 2 * acts + 4 * input);
}

namespace {

std::int64_t available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::int64_t kb = 0;
  std::string unit;
  while (meminfo >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return static_cast<std::int64_t>(::sysconf(_SC_AVPHYS_PAGES)) * ::sysconf(_SC_PAGESIZE);
}

double gib(std::int64_t bytes) { return static_cast<double>(bytes) / (1 << 30); }

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
  optim::ParamGroup decay, no_decay;
  no_decay.weight_decay = 0.0;
  for (const auto& [name, p] : model.named_parameters()) {
    optim::ParamGroup& g = excluded_from_weight_decay(o, name) ? no_decay : decay;
    g.params.push_back(p);
    g.names.push_back(name);
  }
  std::vector<optim::ParamGroup> groups;
  for (optim::ParamGroup* g : {&decay, &no_decay})
    if (!g->params.empty()) groups.push_back(std::move(*g));
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
void restore(const fs::path& from, const TrainConfig& cfg, CheckpointInfo& info, models::ViT& model,
             optim::Optimizer& opt) {
  Checkpoint ck = load_checkpoint(from);
  const TrainConfig saved = load_config_string(ck.info.config_yaml, from.string() + " (config)");
  const std::vector<ConfigDifference> diffs = model_differences(saved, cfg);
  TESSERA_CHECK(diffs.empty(), ConfigError, "--resume: {} was trained with a different model: {}", from.string(),
                format_differences(diffs));
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

EvalResult evaluate(models::ViT& model, datasets::DataLoader& loader, Device device) {
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

TrainResult train(const TrainConfig& cfg, const TrainOptions& opts) {
  using clock = std::chrono::steady_clock;
  const auto run_start = clock::now();
  TESSERA_CHECK(cfg.train.device.is_cpu() || cuda_available(), ConfigError,
                "train.device: {} was asked for, but {}", cfg.train.device,
                cuda_built() ? "no usable CUDA GPU is present" : "this build has no CUDA backend");
  if (cfg.train.precision == DType::bf16 && cfg.train.device.is_cpu()) {
    const std::string why = bf16_unavailable_reason();
    TESSERA_CHECK(why.empty(), ConfigError, "train.precision: {}; train in f32 (train.precision: f32)", why);
  }
  to_vit_config(cfg.model).validate();
  set_threads(cfg.train.threads);

  const std::int64_t need = estimate_training_bytes(cfg), have = available_memory_bytes();
  TESSERA_CHECK(!cfg.train.device.is_cpu() || need <= have, ConfigError,
                "train.batch_size: training this model with batch size {} needs about {:.1f} GiB, but only {:.1f} GiB "
                "of memory is available; lower train.batch_size or the model size",
                cfg.train.batch_size, gib(need), gib(have));

  // Data first: a missing or corrupt file should fail before anything is written.
  const datasets::DatasetPtr train_set = open_dataset(cfg, datasets::Split::train);
  const datasets::DatasetPtr test_set = open_dataset(cfg, datasets::Split::test);
  const datasets::ChannelStats stats = normalization(cfg, *train_set);
  datasets::DataLoader train_loader = make_loader(cfg, train_set, stats, true);
  datasets::DataLoader test_loader = make_loader(cfg, test_set, stats, false);

  std::unique_ptr<models::ViT> model = build_model(cfg);
  std::unique_ptr<optim::Optimizer> opt = make_optimizer(cfg, *model);
  const std::int64_t steps_per_epoch = train_loader.num_batches();
  const optim::LrSchedule schedule = make_schedule(cfg, steps_per_epoch);

  const fs::path out_dir = cfg.train.output_dir;
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

  if (opts.resume) {
    const fs::path from = resolve_resume(*opts.resume);
    restore(from, cfg, info, *model, *opt);
    truncate_metrics(metrics_path, st.epoch);
    fmt::print(opts.out, "resuming from {} at epoch {}, batch {} (step {})\n", from.string(), st.epoch + 1, st.batch,
               st.global_step);
  } else {
    std::ofstream(metrics_path, std::ios::trunc);
  }
  std::ofstream(out_dir / kConfigFile, std::ios::trunc)
      << fmt::format("# run on: {}\n", cpu_summary()) << info.config_yaml;
  fmt::print(opts.out, "cpu: {}\n", cpu_summary());
  fmt::print(opts.out, "model: ViT, {} parameters; data: {} ({} train / {} test images); {} steps per epoch\n",
             model->num_parameters(), to_string(cfg.data.dataset), train_set->size(), test_set->size(), steps_per_epoch);

  TrainResult result;
  const Device device = cfg.train.device;
  const std::int64_t epochs = cfg.train.epochs;
  Progress progress(opts.out, opts.live_progress.value_or(Progress::is_terminal(opts.out)), cfg.train.log_interval);
  const std::vector<Tensor> params = model->parameters();
  auto should_stop = [&] {
    return (opts.stop && opts.stop->load()) || (opts.stop_at_step && st.global_step >= *opts.stop_at_step);
  };
  auto save = [&](const char* file) {
    st.generator = default_generator().state();
    const fs::path path = out_dir / file;
    save_checkpoint(path, *model, opt->state_tensors(), info);
    return path;
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
        result.status = TrainResult::Status::diverged;
        const fs::path last = out_dir / kLastCheckpoint;
        result.message = fmt::format("the {} became {} at epoch {}, step {}; stopping. The last good checkpoint is {}",
                                     std::isfinite(loss_value) ? "gradient norm" : "loss",
                                     std::isfinite(loss_value) ? grad_norm : loss_value, st.epoch + 1, st.batch + 1,
                                     fs::exists(last) ? last.string() : "(none written yet)");
        progress.line(result.message);
        return result;
      }
      opt->step();
      ++st.global_step;
      ++st.batch;
      st.epoch_loss_sum += loss_value * static_cast<double>(b.size());
      st.epoch_correct += count_correct(logits.cpu(), b.labels);
      st.epoch_samples += b.size();
      progress.step(st.batch, loss_value, lr, b.size());
      if (should_stop() && st.batch < steps_per_epoch) {
        result.status = TrainResult::Status::interrupted;
        result.last_checkpoint = save(kLastCheckpoint);
        result.message = fmt::format("interrupted at epoch {}, step {}: wrote {}; continue with --resume {}",
                                     st.epoch + 1, st.batch, result.last_checkpoint.string(), out_dir.string());
        progress.line(result.message);
        return result;
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
      const EvalResult ev = evaluate(*model, test_loader, device);
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
    if (stopping) {
      result.status = TrainResult::Status::interrupted;
      result.message = fmt::format("interrupted after epoch {}: wrote {}; continue with --resume {}", completed,
                                   result.last_checkpoint.string(), out_dir.string());
      progress.line(result.message);
      return result;
    }
  }
  result.best_accuracy = st.best_accuracy;
  return result;
}

}  // namespace tessera::train
