// The Optimizer base: parameter groups, the per-parameter state (step count and named
// buffers), zero_grad, learning-rate access, and exporting/importing state as named tensors
// for checkpoints. SGD, Adam and AdamW (optim/sgd.h, optim/adam.h) supply the update.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tessera/autograd/tensor.h"

namespace tessera::optim {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// A set of parameters sharing hyperparameters. Unset fields take the optimizer's options.
struct ParamGroup {
  std::vector<Tensor> params{};
  // Optional, one per param: names the state tensors ("optim.exp_avg.<name>"); without
  // them the state is named by the param's position in the optimizer (0, 1, ...).
  std::vector<std::string> names{};
  std::optional<double> weight_decay{};
  double lr_scale = 1.0;  // the group's lr is the base lr times this (e.g. layer-wise decay)
};

// What an optimizer is built from: plain params (one group), named params (one group with
// names), or explicit groups.
struct Params {
  Params(std::vector<Tensor> params);
  Params(std::initializer_list<Tensor> params);
  Params(const NamedTensors& named);
  Params(std::initializer_list<std::pair<std::string, Tensor>> named);
  Params(std::vector<ParamGroup> groups);
  Params(std::initializer_list<ParamGroup> groups);

  std::vector<ParamGroup> groups;
};

// timm's rule for AdamW: no weight decay on 1-D (and 0-D) tensors (biases, norm weights),
// on names ending in ".bias", and on names in `skip` (an entry matches the whole name or its
// last dotted components, so "pos_embed" also matches "encoder.pos_embed"). Params that do
// not require a gradient are left out. Returns two groups, always in this order:
// {decay (weight_decay), no-decay (0)}, with names set.
std::vector<ParamGroup> split_weight_decay(
    const NamedTensors& named, double weight_decay,
    const std::vector<std::string>& skip = {"cls_token", "pos_embed"});

// Glob match over parameter names: '*' matches any run of characters (dots included), '?'
// one character.
bool glob_match(std::string_view pattern, std::string_view text);
// Two groups by name, always in this order: {decay (weight_decay), no-decay (0)}: the
// parameters matching any of the `no_decay` glob patterns get none (e.g. "*bias", "*norm*").
// Parameters that do not require a gradient are left out; names are set.
std::vector<ParamGroup> weight_decay_groups(const NamedTensors& named, double weight_decay,
                                            const std::vector<std::string>& no_decay);

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every param whose .grad() is defined; params without a gradient are
  // skipped and keep their state (their own step count does not advance).
  void step();
  // Drops every gradient (PyTorch's set_to_none=True), or fills them with zeros.
  void zero_grad(bool set_to_none = true);

  // --- groups and learning rates
  std::size_t num_groups() const { return groups_.size(); }
  const ParamGroup& group(std::size_t g) const;
  std::vector<Tensor> params() const;  // every param, in order
  // Sets every group's lr to base_lr * its lr_scale (what a schedule calls each step).
  void set_lr(double base_lr);
  // The lr a group will use at the next step.
  double lr(std::size_t g = 0) const;
  void set_group_lr(std::size_t g, double lr);
  double weight_decay(std::size_t g) const;

  // Number of step() calls so far (restored by load_state).
  std::int64_t step_count() const { return step_count_; }

  // --- state for checkpoints
  // "optim.step_count" (i64 scalar), and per param "optim.step.<p>" (i64 scalar) and
  // "optim.<buffer>.<p>" for each buffer (exp_avg, exp_avg_sq, momentum_buffer), where <p>
  // is the param's name or position. Buffers are the live tensors, not copies (as in
  // PyTorch's state_dict): write them out before the next step().
  NamedTensors state_tensors() const;
  // Copies state saved by state_tensors() of an optimizer of the same kind over the same
  // params. Entries whose names do not start with "optim." are ignored, so a whole
  // checkpoint can be passed. Throws IoError listing every missing, unexpected or mismatched
  // entry; on error nothing is changed.
  void load_state(const NamedTensors& state);

  // "SGD", "Adam", "AdamW".
  virtual const char* name() const = 0;

 protected:
  // buffer_names: the per-param state buffers this optimizer keeps (allocated as zeros).
  Optimizer(Params params, double lr, double weight_decay, std::vector<std::string> buffer_names);

  struct GroupState {
    ParamGroup spec;
    double lr;
    double weight_decay;
    std::vector<std::string> state_names;  // per param, for state_tensors()
  };
  // One param's state: updates since creation, and its buffers in buffer_names order.
  struct ParamState {
    std::int64_t step = 0;
    std::vector<Tensor> buffers;
  };

  // Updates `params` (all with a gradient and the same per-param step count `step`, already
  // incremented) of group g; buffers[k][i] is buffer k of params[i].
  virtual void update(const GroupState& g, const std::vector<Tensor>& params,
                      const std::vector<Tensor>& grads,
                      const std::vector<std::vector<Tensor>>& buffers, std::int64_t step) = 0;

 private:
  std::vector<GroupState> groups_;
  std::vector<std::vector<ParamState>> state_;  // [group][param]
  std::vector<std::string> buffer_names_;
  std::int64_t step_count_ = 0;
};

}  // namespace tessera::optim
