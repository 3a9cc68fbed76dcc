// Optimizer base: groups, per-param state, zero_grad, lr access, state export/import.
#include "tessera/optim/optimizer.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "tessera/autograd/tape.h"

namespace tessera::optim {

// ---------------------------------------------------------------- Params

Params::Params(std::vector<Tensor> params) : groups{ParamGroup{.params = std::move(params)}} {}
Params::Params(std::initializer_list<Tensor> params)
    : groups{ParamGroup{.params = std::vector<Tensor>(params)}} {}
Params::Params(const NamedTensors& named) {
  ParamGroup g;
  for (const auto& [name, t] : named) {
    g.names.push_back(name);
    g.params.push_back(t);
  }
  groups.push_back(std::move(g));
}
Params::Params(std::initializer_list<std::pair<std::string, Tensor>> named)
    : Params(NamedTensors(named)) {}
Params::Params(std::vector<ParamGroup> g) : groups(std::move(g)) {}
Params::Params(std::initializer_list<ParamGroup> g) : groups(g) {}

// ---------------------------------------------------------------- weight-decay split

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "pos_embed" matches "pos_embed" and "encoder.pos_embed", not "my_pos_embed".
bool matches_skip(const std::string& name, const std::string& entry) {
  return name == entry || ends_with(name, "." + entry);
}

// {decay, no-decay} by a rule over each trainable parameter (name and tensor).
template <class Exempt>
std::vector<ParamGroup> split_by(const char* op, const NamedTensors& named, double weight_decay, Exempt&& exempt) {
  TESSERA_CHECK(std::isfinite(weight_decay) && weight_decay >= 0.0, ConfigError,
                "{}: weight_decay must be finite and >= 0, got {}", op, weight_decay);
  ParamGroup decay{.weight_decay = weight_decay};
  ParamGroup none{.weight_decay = 0.0};
  for (const auto& [name, t] : named) {
    TESSERA_CHECK(t.defined(), Error, "{}: parameter '{}' is undefined", op, name);
    if (!t.requires_grad()) continue;
    ParamGroup& g = exempt(name, t) ? none : decay;
    g.params.push_back(t);
    g.names.push_back(name);
  }
  return {std::move(decay), std::move(none)};
}

}  // namespace

std::vector<ParamGroup> split_weight_decay(const NamedTensors& named, double weight_decay,
                                           const std::vector<std::string>& skip) {
  return split_by("split_weight_decay", named, weight_decay, [&](const std::string& name, const Tensor& t) {
    return t.dim() <= 1 || ends_with(name, ".bias") ||
           std::any_of(skip.begin(), skip.end(), [&](const std::string& e) { return matches_skip(name, e); });
  });
}

bool glob_match(std::string_view pattern, std::string_view text) {
  // Iterative matcher with one backtrack point: linear in practice, no recursion.
  std::size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p, ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++, mark = t;
    } else if (star != std::string_view::npos) {
      p = star + 1, t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::vector<ParamGroup> weight_decay_groups(const NamedTensors& named, double weight_decay,
                                            const std::vector<std::string>& no_decay) {
  return split_by("weight_decay_groups", named, weight_decay, [&](const std::string& name, const Tensor&) {
    return std::any_of(no_decay.begin(), no_decay.end(), [&](const std::string& p) { return glob_match(p, name); });
  });
}

// ---------------------------------------------------------------- Optimizer

Optimizer::Optimizer(Params params, double lr, double weight_decay,
                     std::vector<std::string> buffer_names)
    : buffer_names_(std::move(buffer_names)) {
  TESSERA_CHECK(std::isfinite(lr) && lr >= 0.0, ConfigError, "optimizer: lr must be finite and >= 0, got {}", lr);
  TESSERA_CHECK(std::isfinite(weight_decay) && weight_decay >= 0.0, ConfigError,
                "optimizer: weight_decay must be finite and >= 0, got {}", weight_decay);
  std::size_t total = 0;
  for (const ParamGroup& g : params.groups) total += g.params.size();
  TESSERA_CHECK(total > 0, Error, "optimizer: got an empty parameter list");

  std::set<std::pair<const void*, std::size_t>> seen_storage;
  std::set<std::string> seen_names;
  std::size_t index = 0;
  for (std::size_t gi = 0; gi < params.groups.size(); ++gi) {
    ParamGroup& spec = params.groups[gi];
    TESSERA_CHECK(spec.names.empty() || spec.names.size() == spec.params.size(), Error,
                  "optimizer: group {} has {} params but {} names", gi, spec.params.size(),
                  spec.names.size());
    TESSERA_CHECK(std::isfinite(spec.lr_scale) && spec.lr_scale >= 0.0, ConfigError,
                  "optimizer: group {} lr_scale must be finite and >= 0, got {}", gi, spec.lr_scale);
    const double wd = spec.weight_decay.value_or(weight_decay);
    TESSERA_CHECK(std::isfinite(wd) && wd >= 0.0, ConfigError,
                  "optimizer: group {} weight_decay must be finite and >= 0, got {}", gi, wd);
    GroupState group{.spec = spec, .lr = lr * spec.lr_scale, .weight_decay = wd, .state_names = {}};
    std::vector<ParamState> states;
    for (std::size_t i = 0; i < spec.params.size(); ++i, ++index) {
      const Tensor& p = spec.params[i];
      const std::string label = spec.names.empty() ? std::to_string(index) : spec.names[i];
      TESSERA_CHECK(p.defined(), Error, "optimizer: parameter '{}' (group {}) is undefined", label, gi);
      TESSERA_CHECK(p.is_leaf(), Error,
                    "optimizer: parameter '{}' {} is not a leaf (it was produced by '{}'); "
                    "optimize the tensor it was computed from", label, shape_str(p.shape()),
                    p.impl()->producer ? p.impl()->producer : "an op");
      TESSERA_CHECK(p.dtype() == DType::f32 || p.dtype() == DType::f64, DTypeError,
                    "optimizer: parameter '{}' {} is {} (f32 or f64 expected)", label,
                    shape_str(p.shape()), p.dtype());
      TESSERA_CHECK(p.device() == spec.params.front().device(), DeviceError,
                    "optimizer: group {} mixes devices: '{}' is on {}, the first param on {}", gi,
                    label, p.device(), spec.params.front().device());
      TESSERA_CHECK(!label.empty(), Error, "optimizer: parameter {} has an empty name", index);
      TESSERA_CHECK(seen_names.insert(label).second, Error,
                    "optimizer: parameter name '{}' appears twice", label);
      TESSERA_CHECK(seen_storage.insert({p.impl()->storage.get(), p.impl()->offset}).second, Error,
                    "optimizer: parameter '{}' {} appears more than once (in one group or across "
                    "groups)", label, shape_str(p.shape()));
      group.state_names.push_back(label);
      ParamState st;
      for (std::size_t k = 0; k < buffer_names_.size(); ++k) st.buffers.push_back(zeros_like(p));
      states.push_back(std::move(st));
    }
    groups_.push_back(std::move(group));
    state_.push_back(std::move(states));
  }
}

void Optimizer::step() {
  NoGradGuard no_grad;
  for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
    GroupState& group = groups_[gi];
    // Params skipped in earlier steps lag behind in their own count (and bias correction),
    // so params are updated in batches of equal step count; normally there is one batch.
    std::map<std::int64_t, std::vector<std::size_t>> by_step;
    for (std::size_t i = 0; i < group.spec.params.size(); ++i)
      if (group.spec.params[i].grad().defined()) by_step[state_[gi][i].step + 1].push_back(i);
    for (const auto& [step, members] : by_step) {
      std::vector<Tensor> params, grads;
      std::vector<std::vector<Tensor>> buffers(buffer_names_.size());
      for (std::size_t i : members) {
        params.push_back(group.spec.params[i]);
        grads.push_back(group.spec.params[i].grad());
        for (std::size_t k = 0; k < buffer_names_.size(); ++k)
          buffers[k].push_back(state_[gi][i].buffers[k]);
      }
      update(group, params, grads, buffers, step);
      for (std::size_t i : members) state_[gi][i].step = step;
    }
  }
  ++step_count_;
}

void Optimizer::zero_grad(bool set_to_none) {
  for (const GroupState& g : groups_)
    for (const Tensor& p : g.spec.params) {
      if (set_to_none) p.zero_grad();
      else if (Tensor grad = p.grad(); grad.defined()) grad.fill_(0.0);
    }
}

const ParamGroup& Optimizer::group(std::size_t g) const {
  TESSERA_CHECK(g < groups_.size(), Error, "optimizer: group {} out of range ({} groups)", g,
                groups_.size());
  return groups_[g].spec;
}

std::vector<Tensor> Optimizer::params() const {
  std::vector<Tensor> all;
  for (const GroupState& g : groups_) all.insert(all.end(), g.spec.params.begin(), g.spec.params.end());
  return all;
}

void Optimizer::set_lr(double base_lr) {
  TESSERA_CHECK(std::isfinite(base_lr) && base_lr >= 0.0, ConfigError,
                "optimizer: lr must be finite and >= 0, got {}", base_lr);
  for (GroupState& g : groups_) g.lr = base_lr * g.spec.lr_scale;
}

double Optimizer::lr(std::size_t g) const {
  group(g);
  return groups_[g].lr;
}

void Optimizer::set_group_lr(std::size_t g, double lr) {
  group(g);
  TESSERA_CHECK(std::isfinite(lr) && lr >= 0.0, ConfigError,
                "optimizer: lr of group {} must be finite and >= 0, got {}", g, lr);
  groups_[g].lr = lr;
}

double Optimizer::weight_decay(std::size_t g) const {
  group(g);
  return groups_[g].weight_decay;
}

// ---------------------------------------------------------------- state export/import

namespace {

constexpr const char* kPrefix = "optim.";

Tensor i64_scalar(std::int64_t v) { return scalar_tensor(static_cast<double>(v), {.dtype = i64}); }

std::string describe(const Tensor& t) {
  return fmt::format("{} {}", shape_str(t.shape()), t.dtype());
}

}  // namespace

NamedTensors Optimizer::state_tensors() const {
  NamedTensors out;
  out.emplace_back("optim.step_count", i64_scalar(step_count_));
  for (std::size_t gi = 0; gi < groups_.size(); ++gi)
    for (std::size_t i = 0; i < state_[gi].size(); ++i) {
      const std::string& p = groups_[gi].state_names[i];
      out.emplace_back("optim.step." + p, i64_scalar(state_[gi][i].step));
      for (std::size_t k = 0; k < buffer_names_.size(); ++k)
        out.emplace_back(kPrefix + buffer_names_[k] + "." + p, state_[gi][i].buffers[k].detach());
    }
  return out;
}

void Optimizer::load_state(const NamedTensors& state) {
  // Expected entries, each with where it goes: a step counter or a buffer to copy into.
  struct Target {
    std::int64_t* step = nullptr;
    Tensor buffer{};
    bool found = false;
  };
  std::map<std::string, Target> expected;
  expected["optim.step_count"] = Target{.step = &step_count_};
  for (std::size_t gi = 0; gi < groups_.size(); ++gi)
    for (std::size_t i = 0; i < state_[gi].size(); ++i) {
      const std::string& p = groups_[gi].state_names[i];
      expected["optim.step." + p] = Target{.step = &state_[gi][i].step};
      for (std::size_t k = 0; k < buffer_names_.size(); ++k)
        expected[kPrefix + buffer_names_[k] + "." + p] = Target{.buffer = state_[gi][i].buffers[k]};
    }

  std::vector<std::string> problems;
  std::vector<std::pair<Target*, const Tensor*>> plan;
  std::vector<std::int64_t> step_values;
  for (const auto& [name, t] : state) {
    if (name.rfind(kPrefix, 0) != 0) continue;
    auto it = expected.find(name);
    if (it == expected.end()) {
      problems.push_back(fmt::format("unexpected entry '{}'", name));
      continue;
    }
    Target& target = it->second;
    if (target.found) {
      problems.push_back(fmt::format("entry '{}' given twice", name));
      continue;
    }
    target.found = true;
    if (!t.defined()) {
      problems.push_back(fmt::format("'{}' is undefined", name));
    } else if (target.step) {
      if (t.numel() != 1 || t.dim() != 0 || t.dtype() != DType::i64) {
        problems.push_back(fmt::format("'{}' is {}, expected an i64 scalar ()", name, describe(t)));
      } else if (t.to_vector<std::int64_t>()[0] < 0) {
        problems.push_back(fmt::format("'{}' is negative ({})", name, t.to_vector<std::int64_t>()[0]));
      } else {
        plan.emplace_back(&target, &t);
      }
    } else if (t.shape() != target.buffer.shape() || t.dtype() != target.buffer.dtype()) {
      problems.push_back(fmt::format("'{}' is {}, the optimizer's is {}", name, describe(t),
                                     describe(target.buffer)));
    } else {
      plan.emplace_back(&target, &t);
    }
  }
  for (const auto& [name, target] : expected)
    if (!target.found) problems.push_back(fmt::format("missing entry '{}'", name));

  if (!problems.empty()) {
    constexpr std::size_t kShown = 8;
    std::string list;
    for (std::size_t i = 0; i < std::min(kShown, problems.size()); ++i)
      list += (i ? "; " : "") + problems[i];
    if (problems.size() > kShown) list += fmt::format("; and {} more", problems.size() - kShown);
    throw IoError(fmt::format("{}::load_state: state does not match this optimizer ({} problem{}): {}",
                              name(), problems.size(), problems.size() == 1 ? "" : "s", list));
  }
  for (auto& [target, t] : plan) {
    if (target->step) *target->step = t->to_vector<std::int64_t>()[0];
    else target->buffer.copy_(*t);
  }
}

}  // namespace tessera::optim
