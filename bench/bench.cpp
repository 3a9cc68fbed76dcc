#include "tessera/bench/bench.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <map>

#include <omp.h>

#include "tessera/autograd/profiler.h"
#include "tessera/models/vit.h"
#include "tessera/ops/cpu_info.h"
#include "tessera/ops/kernels.h"
#include "tessera/optim/optim.h"
#include "tessera/train/trainer.h"

namespace tessera::bench {
namespace {

struct Preset {
  std::int64_t img, patch, chans, dim, depth, heads, mlp, classes, batch;
};

// The peer's CONFIGS, field for field.
const std::map<std::string, Preset>& presets() {
  static const std::map<std::string, Preset> p = {
      {"seed", {28, 7, 1, 512, 1, 2, 1024, 10, 4}},
      {"mnist", {28, 4, 1, 64, 6, 4, 128, 10, 128}},
      {"tiny", {224, 16, 3, 192, 12, 3, 768, 1000, 32}},
  };
  return p;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

void print_profile(int steps) {
  std::vector<std::pair<std::string, OpTime>> rows(Profiler::ops().begin(), Profiler::ops().end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return a.second.forward_s + a.second.backward_s > b.second.forward_s + b.second.backward_s;
  });
  double total = 0;
  for (const auto& [n, t] : rows) total += t.forward_s + t.backward_s;
  fmt::print("  {:<16} {:>8} {:>12} {:>12} {:>7}\n", "op", "calls", "forward ms", "backward ms", "share");
  for (const auto& [n, t] : rows)
    fmt::print("  {:<16} {:>8} {:>12.2f} {:>12.2f} {:>6.1f}%\n", n, t.calls / steps, 1e3 * t.forward_s / steps,
               1e3 * t.backward_s / steps, 100 * (t.forward_s + t.backward_s) / total);
  fmt::print("  per training step: {:.2f} ms in ops (calls and times per step)\n", 1e3 * total / steps);
}

// What one measurement times: a model, its batch, and the training step's settings.
struct Workload {
  std::string name;  // "mnist", or the config file
  nn::UnaryModule& model;
  optim::Optimizer& opt;
  Shape images;  // (B, C, H, W)
  std::int64_t classes = 0;
  double label_smoothing = 0;
  double clip_grad_norm = 0;
  DType precision = DType::f32;
};

// Seconds of `calls` runs of fn, each timed alone: (p50, p99).
template <class Fn>
std::pair<double, double> latency(int calls, Fn&& fn) {
  std::vector<double> t(static_cast<std::size_t>(calls));
  for (double& s : t) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    s = seconds_since(t0);
  }
  std::sort(t.begin(), t.end());
  const auto at = [&](double q) { return t[static_cast<std::size_t>(q * static_cast<double>(calls - 1))]; };
  return {at(0.50), at(0.99)};
}

// Training (forward, loss, backward, clipping, optimizer step) and inference throughput on
// random data, after 2 warm-up steps; the training work as a roofline counts it (the forward
// pass's matrix products, times 3) against `peak_gflop_s`; optionally batch-1 latency and the
// per-op breakdown.
void measure(const Workload& w, const BenchOptions& opts, double peak_gflop_s) {
  const AutocastGuard precision(w.precision);
  Generator g(0);
  const Tensor x = randn(w.images, {}, g);
  const Tensor y = randint({w.images[0]}, w.classes, g);
  const std::vector<Tensor> params = w.model.parameters();
  w.model.train();
  auto step = [&] {
    w.opt.zero_grad();
    Profiler::mark();
    backward(cross_entropy(w.model(x), y, {.label_smoothing = w.label_smoothing}));
    if (w.clip_grad_norm > 0) optim::clip_grad_norm(params, w.clip_grad_norm);
    w.opt.step();
  };
  const std::int64_t batch = w.images[0];
  const int steps = opts.steps;
  for (int i = 0; i < 2; ++i) step();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step();
  const double train_s = seconds_since(t0);
  const double train = steps * batch / train_s;
  w.model.eval();
  double infer, forward_flops;
  std::string extra;
  {
    NoGradGuard no_grad;
    {
      FlopCounter count;
      w.model(x);
      forward_flops = count.flops();
    }
    w.model(x);
    t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) w.model(x);
    infer = steps * batch / seconds_since(t0);
    if (opts.latency) {
      const Tensor one = slice(x, 0, 0, 1).contiguous_copy();
      for (int i = 0; i < 10; ++i) w.model(one);
      const auto [p50, p99] = latency(200, [&] { w.model(one); });
      extra += fmt::format(" latency_p50_ms={:.3f} latency_p99_ms={:.3f}", 1e3 * p50, 1e3 * p99);
    }
  }
  const double train_gflop_s = 3.0 * forward_flops * steps / train_s / 1e9;
  if (peak_gflop_s > 0)
    extra += fmt::format(" train_gflop_s={:.1f} peak_share={:.2f}", train_gflop_s, train_gflop_s / peak_gflop_s);
  fmt::print("config={}{} params={} batch={} train_img_s={:.1f} infer_img_s={:.1f} peak_rss_mb={:.0f}{}\n", w.name,
             w.precision == DType::bf16 ? "-bf16" : "", w.model.num_parameters(), batch, train, infer, peak_rss_mb(),
             extra);
  std::fflush(stdout);
  if (opts.profile) {
    w.model.train();
    Profiler::reset();
    Profiler::enable(true);
    for (int i = 0; i < steps; ++i) step();
    Profiler::enable(false);
    print_profile(steps);
  }
}

void bench_preset(const std::string& name, const Preset& p, const BenchOptions& opts, double peak_gflop_s) {
  models::ViTConfig c;
  c.image_h = c.image_w = p.img;
  c.patch_size = p.patch;
  c.channels = p.chans;
  c.dim = p.dim;
  c.depth = p.depth;
  c.heads = p.heads;
  c.mlp_dim = p.mlp;
  c.num_classes = p.classes;
  // As the peer's --dropout: dropout, attention dropout and drop path (rising to it).
  c.dropout = c.attn_dropout = c.drop_path = opts.dropout;
  manual_seed(0);
  models::ViT model(c);
  optim::AdamW opt(model.parameters(), {.lr = 1e-3, .weight_decay = 0.05});
  measure({name, model, opt, {p.batch, p.chans, p.img, p.img}, p.classes, 0.0, 0.0,
           opts.bf16 ? DType::bf16 : DType::f32},
          opts, peak_gflop_s);
}

// A config's own model, batch, optimizer, label smoothing, clipping and precision, with its
// regularisers (dropout, drop path) as configured. The data is random: the loader and
// augmentation are not timed.
void bench_config(const BenchOptions& opts, double peak_gflop_s) {
  std::vector<train::ConfigOverride> overrides;
  for (const std::string& s : opts.sets) overrides.push_back(train::parse_override(s));
  train::TrainConfig cfg = train::load_config(opts.config, overrides);
  TESSERA_CHECK(cfg.train.device.is_cpu(), ConfigError, "bench: --config times the CPU; set train.device: cpu");
  train::check_runnable(cfg);
  const auto model = train::build_model(cfg);
  const auto opt = train::make_optimizer(cfg, *model);
  const train::ModelInput in = cfg.model.input();
  measure({opts.config, *model, *opt, {cfg.train.batch_size, in.channels, in.height, in.width}, in.num_classes,
           cfg.train.label_smoothing, cfg.optim.clip_grad_norm, cfg.train.precision},
          opts, peak_gflop_s);
}

// The f32 matmul throughput a roofline compares with: the best of square products of 1024
// and 2048 through the library's kernel.
double matmul_peak_gflop_s() {
  double best = 0;
  for (const std::int64_t n : {1024, 2048}) {
    const Tensor a = randn({n, n}), b = randn({n, n});
    Tensor c = empty({n, n});
    kernels::matmul(a, b, false, false, c);
    const int reps = std::max(2, static_cast<int>(2e10 / (2.0 * n * n * n)));
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) kernels::matmul(a, b, false, false, c);
    best = std::max(best, 2.0 * n * n * n * reps / seconds_since(t0) / 1e9);
  }
  return best;
}

// GFLOP/s of square matrix products through the library's kernel (oneDNN), f32 and bf16
// operands (bf16 with an f32 result, as mixed precision uses them).
void bench_matmul(int steps) {
  const bool bf16 = bf16_unavailable_reason().empty();
  if (!bf16) fmt::print("matmul: bf16 unavailable: {}\n", bf16_unavailable_reason());
  for (std::int64_t n : {256, 512, 1024, 2048}) {
    std::string line = fmt::format("matmul n={}", n);
    for (DType dt : {DType::f32, DType::bf16}) {
      if (dt == DType::bf16 && !bf16) continue;
      const Tensor a = randn({n, n}).to(dt), b = randn({n, n}).to(dt);
      Tensor c = empty({n, n});
      kernels::matmul(a, b, false, false, c);  // creates the primitive
      const int reps = std::max<int>(steps, static_cast<int>(4e9 / (2.0 * n * n * n)));
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < reps; ++i) kernels::matmul(a, b, false, false, c);
      const double s = seconds_since(t0);
      line += fmt::format(" {}_gflop_s={:.1f}", dtype_name(dt), 2.0 * n * n * n * reps / s / 1e9);
    }
    fmt::print("{}\n", line);
    std::fflush(stdout);
  }
}

}  // namespace

int run(const BenchOptions& opts) {
  if (opts.threads > 0) omp_set_num_threads(opts.threads);
  fmt::print("cpu: {}; {} threads\n", cpu_summary(), omp_get_max_threads());
  if (opts.matmul) {
    bench_matmul(opts.steps);
    return 0;
  }
  const double peak = opts.roofline ? matmul_peak_gflop_s() : 0.0;
  if (peak > 0) fmt::print("f32 matmul peak {:.1f} GFLOP/s (n = 1024, 2048)\n", peak);
  if (!opts.config.empty()) {
    bench_config(opts, peak);
    return 0;
  }
  for (const std::string& name : opts.presets) {
    auto it = presets().find(name);
    TESSERA_CHECK(it != presets().end(), ConfigError, "bench: unknown preset '{}' (seed, mnist, tiny)", name);
    bench_preset(name, it->second, opts, peak);
  }
  return 0;
}

}  // namespace tessera::bench
