#include "tessera/train/trainer.h"

#include <fcntl.h>
#include <omp.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <map>
#include <span>

#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tessera/ops/cpu_info.h"
#include "tessera/models/vit.h"
#include "tessera/ops/ops.h"
#include "tessera/optim/optim.h"
#include "tessera/train/data.h"
#include "tessera/train/memory.h"
#include "tessera/train/weights.h"
#include "train/progress.h"
#include "train/run_lock.h"

namespace tessera::train {
namespace fs = std::filesystem;
using json = nlohmann::json;

void set_threads(int threads, int ranks_here) {
  TESSERA_CHECK(threads >= 0, ConfigError, "train.threads: must be >= 0, got {}", threads);
  // omp_get_num_procs counts the CPUs this process may run on: all of them, or those a
  // launcher bound it to. Ranks on one machine share them rather than each taking all.
  omp_set_num_threads(threads > 0 ? threads : std::max(1, omp_get_num_procs() / std::max(ranks_here, 1)));
}

std::unique_ptr<nn::UnaryModule> build_model(const TrainConfig& cfg) {
  Generator init(cfg.train.seed);
  manual_seed(cfg.train.seed);
  std::unique_ptr<nn::UnaryModule> model = cfg.model.spec().build(cfg.model.values(), init);
  if (!cfg.train.device.is_cpu()) model->to(cfg.train.device);
  return model;
}

namespace {

// Layer-wise learning-rate decay (BEiT; timm's param_groups_layer_decay): the layer of a
// parameter by its name, the embeddings 0, blocks.i i + 1, the rest (final norm, head) the
// top, depth + 1; a group splits into one group per layer with lr x decay^(top - layer).
std::vector<optim::ParamGroup> layer_decay_groups(const std::vector<optim::ParamGroup>& groups, double decay) {
  const auto layer = [](const std::string& name) -> std::optional<std::int64_t> {
    if (const std::optional<std::int64_t> i = models::block_index(name)) return *i + 1;
    if (name.starts_with("patch_embed.") || name == "cls_token" || name == "pos_embed") return 0;
    return std::nullopt;  // above the blocks
  };
  std::int64_t top = 0;
  for (const optim::ParamGroup& g : groups)
    for (const std::string& n : g.names) top = std::max(top, layer(n).value_or(0) + 1);
  TESSERA_CHECK(top > 1, ConfigError,
                "optim.layer_decay: the model has no parameters named blocks.N.* to decay by layer (the ViT has)");
  std::vector<optim::ParamGroup> out;
  for (const optim::ParamGroup& g : groups) {
    std::map<std::int64_t, optim::ParamGroup> by_layer;
    for (std::size_t i = 0; i < g.params.size(); ++i) {
      const std::int64_t l = layer(g.names[i]).value_or(top);
      optim::ParamGroup& part = by_layer[l];
      part.params.push_back(g.params[i]);
      part.names.push_back(g.names[i]);
      part.weight_decay = g.weight_decay;
      part.lr_scale = g.lr_scale * std::pow(decay, static_cast<double>(top - l));
    }
    for (auto& [l, part] : by_layer) out.push_back(std::move(part));
  }
  return out;
}

}  // namespace

std::unique_ptr<optim::Optimizer> make_optimizer(const TrainConfig& cfg, const nn::Module& model) {
  const OptimConfig& o = cfg.optim;
  std::vector<optim::ParamGroup> groups = optim::weight_decay_groups(model.named_parameters(), o.weight_decay,
                                                                     o.no_weight_decay_on);
  std::erase_if(groups, [](const optim::ParamGroup& g) { return g.params.empty(); });
  if (o.layer_decay < 1.0) groups = layer_decay_groups(groups, o.layer_decay);
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
    if (b.size() == 0) continue;  // a data-parallel shard with no rows of this batch
    const Tensor x = b.images.to(device), y = b.labels.to(device);
    const Tensor logits = model(x);
    loss_sum += cross_entropy(logits, y, {.reduction = Reduction::sum}).item();
    if (r.classes == 0) {
      r.classes = logits.size(1);
      r.confusion.assign(static_cast<std::size_t>(r.classes * r.classes), 0);
    }
    const std::vector<std::int64_t> pred = argmax(logits.detach(), 1).to_vector<std::int64_t>();
    const std::vector<std::int64_t> truth = b.labels.to_vector<std::int64_t>();
    for (std::size_t i = 0; i < truth.size(); ++i) {
      correct += pred[i] == truth[i];
      ++r.confusion[static_cast<std::size_t>(truth[i] * r.classes + pred[i])];
    }
    r.samples += b.size();
  }
  model.train(was_training);
  r.loss = r.samples ? loss_sum / static_cast<double>(r.samples) : 0.0;
  r.accuracy = r.samples ? static_cast<double>(correct) / static_cast<double>(r.samples) : 0.0;
  return r;
}

namespace {

// Everything the run will hold at its peak, measured on the model itself (train/memory.h):
// weights, optimizer moments, a training step or an evaluation (whichever is larger: the
// allocator's cache is emptied between them), the datasets in memory and the loader's batches.
void check_run_memory(const TrainConfig& cfg, nn::UnaryModule& model, const datasets::Dataset& train_set,
                      const datasets::Dataset& test_set, int ranks) {
  if (!cfg.train.device.is_cpu()) return;  // the probe measures the CPU allocator
  const ModelInput m = cfg.model.input();
  const datasets::ImageShape in{m.channels, m.height, m.width};
  const double moments = cfg.optim.name == OptimizerName::sgd && cfg.optim.momentum == 0 ? 0 : 2;
  // A rank holds its shard of each batch: at most the first shard's rows.
  const std::int64_t B = datasets::shard_of(cfg.train.batch_size, 0, ranks).size;
  const std::int64_t E = datasets::shard_of(cfg.train.eval_batch_size, 0, ranks).size;
  const double batch_bytes = 4.0 * static_cast<double>(in.numel()) * static_cast<double>(std::max(B, E));
  const double in_flight = static_cast<double>(cfg.data.prefetch + cfg.data.workers + 2);
  check_probed_memory(model, in.shape(), true, "this run", [&](const MemoryProbe& p) {
    const bool step_larger = p.training_step(B) >= p.evaluation(E);
    return std::vector<MemoryPart>{
        {"weights", p.weights, "model.dim"},
        {"optimizer state", moments * p.weights, "model.dim"},
        step_larger ? MemoryPart{fmt::format("a training step at batch {}", B), p.training_step(B), "train.batch_size"}
                    : MemoryPart{fmt::format("evaluation at batch {}", E), p.evaluation(E), "train.eval_batch_size"},
        {"datasets in memory", static_cast<double>(train_set.memory_bytes() + test_set.memory_bytes()),
         "data.train_limit"},
        {"batches in flight", in_flight * batch_bytes, "data.prefetch"}};
  });
}

// The name of the signal that stopped a run, for its messages (-1: one another rank received).
std::string stop_reason(int signal) {
  if (signal == -1) return "interrupted by a signal to another rank";
  if (signal <= 0) return "stopped";
  const char* name = sigabbrev_np(signal);
  return name ? fmt::format("interrupted by SIG{}", name) : fmt::format("interrupted by signal {}", signal);
}

}  // namespace

namespace {

// One training run. train() drives it top to bottom: prepare (refuse what cannot run, lock
// the directory, open the data, build the model and optimizer, check memory and the output
// directory), start or resume, then per epoch train and end the epoch (evaluate, log,
// checkpoint), then finish. A step that stops the run returns its result.
class Run {
 public:
  Run(const TrainConfig& cfg, const TrainOptions& opts, Communicator& comm);
  void start_or_resume();
  // Every rank takes rank 0's weights (data-parallel runs).
  void start_ranks_equal() { broadcast_parameters(comm_, params_); }
  bool done() const { return st_.epoch >= cfg_.train.epochs; }
  std::optional<TrainResult> train_epoch();
  std::optional<TrainResult> end_epoch();
  TrainResult finish();

 private:
  struct StepOutcome {
    double loss = 0, grad_norm = 0;
    std::int64_t correct = 0;
  };
  StepOutcome train_step(const datasets::Batch& b, double lr);
  EvalResult evaluate_now();
  void append_metrics(const EvalResult& ev, double epoch_seconds);
  std::filesystem::path save(const char* file);
  TrainResult stop(TrainResult::Status status, std::string message);
  bool should_stop() const;
  // The signal that stops the run: in a data-parallel run, as the ranks agreed at the last step.
  int stop_signal() const { return comm_.size() > 1 ? agreed_stop_ : local_stop_signal(); }
  int local_stop_signal() const { return opts_.stop ? opts_.stop->load() : 0; }
  bool writer() const { return comm_.rank() == 0; }

  using Clock = std::chrono::steady_clock;
  const TrainConfig& cfg_;
  const TrainOptions& opts_;
  Communicator& comm_;
  int agreed_stop_ = 0;
  double comm_seconds_ = 0;  // this epoch's time in the step's collectives (data-parallel runs)
  const Clock::time_point run_start_ = Clock::now();
  const fs::path out_dir_;
  std::unique_ptr<RunLock> lock_;  // held until the run ends
  datasets::DatasetPtr train_set_, test_set_;
  datasets::ChannelStats stats_;
  std::optional<datasets::DataLoader> train_loader_, test_loader_;
  std::unique_ptr<nn::UnaryModule> model_;
  std::unique_ptr<optim::Optimizer> opt_;
  std::vector<Tensor> params_;
  std::unique_ptr<DeviceReducer> device_reducer_;  // NCCL for a data-parallel run on GPUs
  std::string init_note_;                          // what train.init_from loaded
  std::int64_t steps_per_epoch_ = 0;
  optim::LrSchedule schedule_;
  CheckpointInfo info_;
  TrainState& st_ = info_.state;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> log_{nullptr, std::fclose};
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> quiet_{nullptr, std::fclose};  // ranks other than 0 print here
  std::optional<Progress> progress_;
  std::optional<AutocastGuard> precision_;
  Clock::time_point epoch_start_;
  TrainResult result_;
};

Run::Run(const TrainConfig& cfg, const TrainOptions& opts, Communicator& comm)
    : cfg_(cfg), opts_(opts), comm_(comm), out_dir_(cfg.train.output_dir) {
  check_runnable(cfg);
  set_threads(cfg.train.threads, comm.local_size());
  comm.set_timeout(cfg.train.collective_timeout);
  if (writer()) lock_ = std::make_unique<RunLock>(out_dir_);

  // Data first: a missing or corrupt file should fail before anything is written.
  train_set_ = open_dataset(cfg, datasets::Split::train);
  test_set_ = open_dataset(cfg, datasets::Split::test, train_set_->class_names());
  stats_ = normalization(cfg, *train_set_);
  train_loader_.emplace(make_loader(cfg, train_set_, stats_, true, comm.rank(), comm.size()));
  test_loader_.emplace(make_loader(cfg, test_set_, stats_, false, comm.rank(), comm.size()));

  model_ = [&] {
    try {
      return build_model(cfg);
    } catch (const DeviceError& e) {
      throw ConfigError(fmt::format("model: the weights of this model do not fit in memory ({}); make it smaller",
                                    e.what()));
    }
  }();
  // Fine-tuning starts from given weights; a resumed run takes its checkpoint's instead.
  if (!cfg.train.init_from.empty() && !opts.resume) init_note_ = init_weights_from(*model_, cfg);
  check_run_memory(cfg, *model_, *train_set_, *test_set_, comm.size());
  opt_ = make_optimizer(cfg, *model_);
  params_ = model_->parameters();
  device_reducer_ = device_reducer(comm, cfg.train.device);
  steps_per_epoch_ = train_loader_->num_batches();
  schedule_ = make_schedule(cfg, steps_per_epoch_);
  if (writer()) check_output_dir(out_dir_, 4 * 4 * model_->num_parameters() + (1 << 20));

  info_.config_yaml = dump_config(cfg);
  info_.train_fingerprint = train_set_->fingerprint().to_string();
  info_.test_fingerprint = test_set_->fingerprint().to_string();
  info_.class_names = train_set_->class_names();
  info_.normalize_mean = stats_.mean;
  info_.normalize_std = stats_.std;
}

void Run::start_or_resume() {
  const fs::path metrics = out_dir_ / kMetricsFile;
  std::string resumed;
  if (opts_.resume) {
    const fs::path from = resolve_resume(*opts_.resume);
    restore(from, cfg_, info_, *model_, *opt_);
    if (writer()) truncate_metrics(metrics, st_.epoch);
    resumed = fmt::format("resuming from {} at epoch {}, batch {} (step {})", from.string(), st_.epoch + 1, st_.batch,
                          st_.global_step);
  } else if (writer()) {
    std::ofstream(metrics, std::ios::trunc);
  }
  std::FILE* out = opts_.out;
  if (writer()) {
    std::ofstream(out_dir_ / kConfigFile, std::ios::trunc)
        << fmt::format("# run on: {}\n", cpu_summary()) << info_.config_yaml;
    // The run's own log: what a closed terminal would otherwise take with it.
    log_.reset(std::fopen((out_dir_ / kLogFile).c_str(), opts_.resume ? "a" : "w"));
  } else {
    quiet_.reset(std::fopen("/dev/null", "w"));
    TESSERA_CHECK(quiet_ != nullptr, IoError, "train: cannot open /dev/null: {}", std::strerror(errno));
    out = quiet_.get();
  }
  // Launchers hand ranks a terminal of their own even when their output goes to a file: a
  // data-parallel run logs plain lines.
  progress_.emplace(out, comm_.size() == 1 && opts_.live_progress.value_or(Progress::is_terminal(out)),
                    cfg_.train.log_interval, log_.get());
  if (!resumed.empty()) progress_->line(resumed);
  if (!init_note_.empty()) progress_->line(init_note_);
  progress_->line(fmt::format("cpu: {}", cpu_summary()));
  if (comm_.size() > 1)
    progress_->line(fmt::format("data parallel: {} ranks ({}), {} of each batch of {} per rank", comm_.size(),
                                comm_.describe(), cfg_.train.batch_size / comm_.size() == 0
                                    ? std::string("at most 1")
                                    : fmt::format("{} or {}", cfg_.train.batch_size / comm_.size(),
                                                  (cfg_.train.batch_size + comm_.size() - 1) / comm_.size()),
                                cfg_.train.batch_size));
  if (comm_.size() > 1)
    progress_->line(fmt::format("gradients all-reduced per step: {:.2f} MB ({}, f32)",
                                4.0 * static_cast<double>(model_->num_parameters()) / 1e6,
                                device_reducer_ ? "NCCL, GPU to GPU" : "MPI, through host memory"));
  progress_->line(fmt::format("model: {}, {} parameters; data: {} ({} train / {} test images); {} steps per epoch",
                              cfg_.model.name(), model_->num_parameters(), cfg_.data.dataset, train_set_->size(),
                              test_set_->size(), steps_per_epoch_));
  model_->train();
  precision_.emplace(cfg_.train.precision);
}

Run::StepOutcome Run::train_step(const datasets::Batch& b, double lr) {
  opt_->set_lr(lr);
  opt_->zero_grad();
  // This rank's part of the batch's sums: loss, correct predictions, and a stop signal seen here.
  std::array<double, 3> sums{0, 0, static_cast<double>(local_stop_signal())};
  Tensor loss;
  if (b.size() > 0) {  // a data-parallel shard can hold no rows of a small last batch
    const BatchShardGuard shard({b.global_size, b.shard_offset, b.size()});
    const Device device = cfg_.train.device;
    const Tensor x = b.images.to(device), y = b.labels.to(device);
    const Tensor logits = (*model_)(x);
    loss = cross_entropy(logits, y, {.label_smoothing = cfg_.train.label_smoothing});
    sums[0] = loss.item() * static_cast<double>(b.size());
    sums[1] = static_cast<double>(count_correct(logits.cpu(), b.labels));
  }
  auto comm_start = Clock::now();
  comm_.all_reduce_sum(sums, "all-reduce of the step's loss");
  comm_seconds_ += std::chrono::duration<double>(Clock::now() - comm_start).count();
  if (comm_.size() > 1) agreed_stop_ = local_stop_signal() ? local_stop_signal() : sums[2] > 0 ? -1 : 0;
  StepOutcome r;
  r.loss = sums[0] / static_cast<double>(b.global_size);
  if (!std::isfinite(r.loss)) return r;
  if (loss.defined()) backward(loss);
  // Each rank's mean gradient weighted by its share: the global batch's mean gradient.
  comm_start = Clock::now();
  all_reduce_gradients(comm_, params_, static_cast<double>(b.size()) / static_cast<double>(b.global_size),
                       device_reducer_.get());
  comm_seconds_ += std::chrono::duration<double>(Clock::now() - comm_start).count();
  if (cfg_.optim.clip_grad_norm > 0) r.grad_norm = optim::clip_grad_norm(params_, cfg_.optim.clip_grad_norm);
  if (!std::isfinite(r.grad_norm)) return r;
  opt_->step();
  // A rank without rows drew no random numbers: it takes rank 0's generator, which always has rows.
  if (b.global_size < comm_.size()) {
    GeneratorState state = default_generator().state();
    comm_.broadcast(std::as_writable_bytes(std::span(&state, 1)), 0, "broadcast of the random generator");
    default_generator().set_state(state);
  }
  r.correct = static_cast<std::int64_t>(std::llround(sums[1]));
  return r;
}

std::optional<TrainResult> Run::train_epoch() {
  epoch_start_ = Clock::now();
  comm_seconds_ = 0;
  progress_->start_epoch(st_.epoch, cfg_.train.epochs, steps_per_epoch_, st_.batch);
  train_loader_->set_epoch(st_.epoch, st_.batch);
  for (const datasets::Batch& b : *train_loader_) {
    const double lr = schedule_.lr_at(st_.global_step);
    const StepOutcome step = train_step(b, lr);
    if (!std::isfinite(step.loss) || !std::isfinite(step.grad_norm)) {
      // Nothing is saved: the last checkpoint on disk is the last good state.
      clear_tape();
      const fs::path last = out_dir_ / kLastCheckpoint;
      const bool loss_bad = !std::isfinite(step.loss);
      return stop(TrainResult::Status::diverged,
                  fmt::format("the {} became {} at epoch {}, step {}; stopping. The last good checkpoint is {}",
                              loss_bad ? "loss" : "gradient norm", loss_bad ? step.loss : step.grad_norm,
                              st_.epoch + 1, st_.batch + 1, fs::exists(last) ? last.string() : "(none written yet)"));
    }
    ++st_.global_step;
    ++st_.batch;
    st_.epoch_loss_sum += step.loss * static_cast<double>(b.global_size);
    st_.epoch_correct += step.correct;
    st_.epoch_samples += b.global_size;
    progress_->step(st_.batch, step.loss, lr, b.global_size);
    if (opts_.on_step) opts_.on_step({st_.epoch, st_.batch, st_.global_step, step.loss, lr});
    if (should_stop() && st_.batch < steps_per_epoch_) {
      result_.last_checkpoint = save(kLastCheckpoint);
      return stop(TrainResult::Status::interrupted,
                  fmt::format("{} at epoch {}, step {}: wrote {}; continue with --resume {}", stop_reason(stop_signal()),
                              st_.epoch + 1, st_.batch, result_.last_checkpoint.string(), out_dir_.string()));
    }
  }
  return std::nullopt;
}

EvalResult Run::evaluate_now() {
  // Training's cached blocks go back first: the memory check counted one phase at a time.
  cpu_allocator().empty_cache();
  EvalResult ev = evaluate(*model_, *test_loader_, cfg_.train.device);
  cpu_allocator().empty_cache();
  if (comm_.size() > 1) {  // each rank evaluated its shard of every batch
    const auto n = static_cast<double>(ev.samples);
    std::array<double, 3> sums{ev.loss * n, std::round(ev.accuracy * n), n};
    comm_.all_reduce_sum(sums, "all-reduce of the evaluation");
    ev.samples = static_cast<std::int64_t>(std::llround(sums[2]));
    ev.loss = ev.samples ? sums[0] / sums[2] : 0.0;
    ev.accuracy = ev.samples ? sums[1] / sums[2] : 0.0;
    // The confusion matrix too; a rank that saw no images has none yet.
    const std::int64_t K = cfg_.model.input().num_classes;
    std::vector<double> counts(static_cast<std::size_t>(K * K), 0.0);
    for (std::size_t i = 0; i < ev.confusion.size() && i < counts.size(); ++i)
      counts[i] = static_cast<double>(ev.confusion[i]);
    comm_.all_reduce_sum(counts, "all-reduce of the confusion matrix");
    ev.classes = K;
    ev.confusion.assign(counts.size(), 0);
    for (std::size_t i = 0; i < counts.size(); ++i) ev.confusion[i] = static_cast<std::int64_t>(std::llround(counts[i]));
  }
  return ev;
}

void Run::append_metrics(const EvalResult& ev, double epoch_seconds) {
  if (!writer()) return;
  const std::int64_t trained = st_.epoch_samples;
  json m{
      {"epoch", st_.epoch + 1},
      {"global_step", st_.global_step},
      {"lr", schedule_.lr_at(std::max<std::int64_t>(st_.global_step - 1, 0))},
      {"train_loss", trained ? st_.epoch_loss_sum / static_cast<double>(trained) : 0.0},
      {"train_accuracy", trained ? static_cast<double>(st_.epoch_correct) / static_cast<double>(trained) : 0.0},
      {"test_loss", ev.loss},
      {"test_accuracy", ev.accuracy},
      {"epoch_seconds", epoch_seconds},
      {"train_images_per_second", epoch_seconds > 0 ? static_cast<double>(trained) / epoch_seconds : 0.0},
      {"elapsed_seconds", std::chrono::duration<double>(Clock::now() - run_start_).count()}};
  // Rank 0's time in the step's collectives: transfers, and waiting for slower ranks.
  if (comm_.size() > 1) m["communication_seconds"] = comm_seconds_;
  std::ofstream(out_dir_ / kMetricsFile, std::ios::app) << m.dump() << "\n";
}

std::optional<TrainResult> Run::end_epoch() {
  const double epoch_seconds = std::chrono::duration<double>(Clock::now() - epoch_start_).count();
  const std::int64_t trained = st_.epoch_samples, epochs = cfg_.train.epochs;
  const std::int64_t completed = st_.epoch + 1;
  const bool last_epoch = completed == epochs;
  std::string summary = fmt::format(
      "epoch {}/{} done in {}: train loss {:.4f} acc {:.2f}%", completed, epochs, format_duration(epoch_seconds),
      trained ? st_.epoch_loss_sum / static_cast<double>(trained) : 0.0,
      trained ? 100.0 * static_cast<double>(st_.epoch_correct) / static_cast<double>(trained) : 0.0);
  bool improved = false;
  if (last_epoch || completed % std::max(cfg_.train.eval_interval, 1) == 0) {
    const EvalResult ev = evaluate_now();
    improved = ev.accuracy > st_.best_accuracy;
    if (improved) st_.best_accuracy = ev.accuracy;
    result_.last_accuracy = ev.accuracy;
    summary += fmt::format(" | test loss {:.4f} acc {:.2f}% (best {:.2f}%)", ev.loss, 100 * ev.accuracy,
                           100 * st_.best_accuracy);
    append_metrics(ev, epoch_seconds);
  }
  progress_->line(summary);
  // From here the state is the start of the next epoch: what a resume continues from.
  st_.epoch = completed;
  st_.batch = 0;
  st_.epoch_loss_sum = 0;
  st_.epoch_correct = 0;
  st_.epoch_samples = 0;
  result_.epochs_done = completed;
  if (improved) save(kBestCheckpoint);
  const int every = cfg_.train.checkpoint_interval;
  const bool stopping = should_stop() && !last_epoch;
  if (last_epoch || stopping || (every > 0 && completed % every == 0)) result_.last_checkpoint = save(kLastCheckpoint);
  if (stopping)
    return stop(TrainResult::Status::interrupted,
                fmt::format("{} after epoch {}: wrote {}; continue with --resume {}", stop_reason(stop_signal()),
                            completed, result_.last_checkpoint.string(), out_dir_.string()));
  return std::nullopt;
}

TrainResult Run::finish() {
  result_.best_accuracy = st_.best_accuracy;
  progress_->line(
      fmt::format("finished {} epochs: best test accuracy {:.2f}%", cfg_.train.epochs, 100 * st_.best_accuracy));
  return result_;
}

bool Run::should_stop() const {
  return stop_signal() != 0 || (opts_.stop_at_step && st_.global_step >= *opts_.stop_at_step);
}

fs::path Run::save(const char* file) {
  st_.generator = default_generator().state();
  const fs::path path = out_dir_ / file;
  if (writer()) save_checkpoint(path, *model_, opt_->state_tensors(), info_);
  return path;
}

TrainResult Run::stop(TrainResult::Status status, std::string message) {
  result_.status = status;
  result_.message = std::move(message);
  progress_->line(result_.message);
  return result_;
}

}  // namespace

TrainResult train(const TrainConfig& cfg, const TrainOptions& opts) {
  std::unique_ptr<Communicator> alone;
  Communicator& comm = opts.comm ? *opts.comm : *(alone = single_process());
  // Every rank prepares (data, model, memory, output directory, resume); a failure on any
  // stops all of them with the lowest failing rank's message, before any training.
  std::optional<Run> prepared;
  std::optional<RankError> failure;
  std::exception_ptr error;
  try {
    prepared.emplace(cfg, opts, comm);
    prepared->start_or_resume();
  } catch (const ConfigError& e) {
    failure = RankError{comm.rank(), e.what(), true};
    error = std::current_exception();
  } catch (const std::exception& e) {
    failure = RankError{comm.rank(), e.what(), false};
    error = std::current_exception();
  }
  if (comm.size() == 1) {
    if (error) std::rethrow_exception(error);
  } else if (const std::optional<RankError> e = comm.agree(failure)) {
    throw AgreedError(fmt::format("rank {}: {}", e->rank, e->message), e->config ? 2 : 1, comm.rank() == 0);
  }
  Run& run = *prepared;
  run.start_ranks_equal();
  while (!run.done()) {
    if (std::optional<TrainResult> stopped = run.train_epoch()) return *stopped;
    if (std::optional<TrainResult> stopped = run.end_epoch()) return *stopped;
  }
  return run.finish();
}

}  // namespace tessera::train
