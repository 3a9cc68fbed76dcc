#include "tessera/train/memory.h"

#include <algorithm>
#include <numeric>
#include <optional>

#include "tessera/autograd/allocator.h"
#include "tessera/autograd/random.h"
#include "tessera/autograd/tape.h"
#include "tessera/ops/kernels.h"
#include "tessera/ops/ops.h"

namespace tessera::train {
namespace {

// Peak bytes in use while `run` executes, above what was in use before.
template <class Run>
double peak_above_now(Run&& run) {
  CachingAllocator& a = cpu_allocator();
  const std::size_t before = a.stats().in_use;
  a.reset_peak();
  run();
  return static_cast<double>(a.stats().peak_in_use - before);
}

std::string bytes_text(double bytes) {
  return format_bytes(bytes >= 1.8e19 ? UINT64_MAX : static_cast<std::uint64_t>(bytes));
}

}  // namespace

MemoryProbe probe_memory(nn::UnaryModule& model, const Shape& sample, ProbeOptions opts) {
  const GeneratorState rng = default_generator().state();
  const bool was_training = model.is_training();
  // The probe's forward passes must leave no trace: running statistics (batch norm) are
  // buffers that a training pass updates, so they are put back afterwards.
  std::vector<std::pair<Tensor, Tensor>> buffers;
  for (const auto& [name, b] : model.named_buffers()) buffers.emplace_back(b, b.detach().clone());
  MemoryProbe p;
  p.weights = static_cast<double>(cpu_allocator().stats().in_use);
  auto images = [&](std::int64_t b) {
    Shape s{b};
    s.insert(s.end(), sample.begin(), sample.end());
    return zeros(s);
  };
  auto labels = [&](std::int64_t b) { return zeros({b}, {.dtype = DType::i64}); };
  std::optional<DryRunGuard> dry_run;
  if (opts.dry) dry_run.emplace();
  // Batches of 2 and 4: batch norm cannot train on one sample per channel.
  constexpr std::int64_t kSmall = 2, kLarge = 4;
  const auto fit = [](double small, double large, double& fixed, double& per_sample) {
    per_sample = std::max((large - small) / static_cast<double>(kLarge - kSmall), 0.0);
    fixed = std::max(small - static_cast<double>(kSmall) * per_sample, 0.0);
  };
  double at[2] = {0, 0};
  if (opts.with_training) {
    model.train();
    for (const int i : {0, 1}) {
      const std::int64_t b = i == 0 ? kSmall : kLarge;
      model.zero_grad();
      at[i] = peak_above_now([&] { backward(cross_entropy(model(images(b)), labels(b))); });
    }
    model.zero_grad();
    fit(at[0], at[1], p.train_fixed, p.train_per_sample);
  }
  model.eval();
  for (const int i : {0, 1}) {
    NoGradGuard no_grad;
    const std::int64_t b = i == 0 ? kSmall : kLarge;
    at[i] = peak_above_now([&] { (void)model(images(b)); });
  }
  fit(at[0], at[1], p.eval_fixed, p.eval_per_sample);
  model.train(was_training);
  {
    NoGradGuard no_grad;
    for (auto& [live, saved] : buffers) live.copy_(saved);
  }
  default_generator().set_state(rng);
  return p;
}

void check_probed_memory(nn::UnaryModule& model, const Shape& sample, bool with_training, std::string_view who,
                         const std::function<std::vector<MemoryPart>(const MemoryProbe&)>& parts) {
  for (const bool dry : {true, false}) {
    const MemoryProbe p = [&] {
      try {
        return probe_memory(model, sample, {.with_training = with_training, .dry = dry});
      } catch (const DeviceError& e) {
        throw ConfigError(fmt::format("model: {} of this model does not fit in memory even at batch 2 ({}); make "
                                      "the model or its images smaller",
                                      with_training ? "a training step" : "an evaluation", e.what()));
      }
    }();
    check_memory(who, parts(p));
  }
}

double memory_budget() {
  const CachingAllocator& a = cpu_allocator();
  const std::size_t limit = a.memory_limit();
  return static_cast<double>(limit > 0 ? limit : available_system_memory() + a.stats().in_use);
}

void check_memory(std::string_view who, const std::vector<MemoryPart>& parts) {
  // The probe sees our allocator only: oneDNN's scratch buffers, threads' stacks and the
  // program itself come on top.
  constexpr double kMargin = 1.1;
  const double total = kMargin * std::accumulate(parts.begin(), parts.end(), 0.0,
                                                 [](double s, const MemoryPart& p) { return s + p.bytes; });
  const double budget = memory_budget();
  if (total <= budget) return;
  const auto largest = std::max_element(parts.begin(), parts.end(),
                                        [](const MemoryPart& a, const MemoryPart& b) { return a.bytes < b.bytes; });
  std::string list;
  for (const MemoryPart& p : parts)
    if (p.bytes > 0) list += fmt::format("{}{} {}", list.empty() ? "" : ", ", p.what, bytes_text(p.bytes));
  const std::string message = fmt::format("{} needs about {} ({}), but {} is available", who, bytes_text(total), list,
                                          bytes_text(budget));
  throw ConfigError(largest->key.empty() ? message
                                         : fmt::format("{}: {}; lower {}", largest->key, message, largest->key));
}

}  // namespace tessera::train
