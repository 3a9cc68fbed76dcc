#include "tessera/autograd/tape.h"

#include <algorithm>
#include <chrono>

#include "tessera/autograd/profiler.h"

namespace tessera {

namespace {

struct Tape {
  std::vector<std::shared_ptr<Node>> nodes;
  std::size_t sweep_at = 4096;

  // Drops nodes whose output died: nothing can reach them any more. A reverse pass also
  // catches chains, since dropping a node releases its inputs (earlier outputs).
  void sweep() {
    for (std::size_t i = nodes.size(); i-- > 0;)
      if (nodes[i]->output.expired()) nodes[i].reset();
    std::erase(nodes, nullptr);
    sweep_at = std::max<std::size_t>(4096, 2 * nodes.size());
  }
};

thread_local Tape t_tape;
thread_local bool t_grad_enabled = true;

}  // namespace

bool grad_enabled() { return t_grad_enabled; }

NoGradGuard::NoGradGuard() : previous_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = previous_; }

bool needs_recording(std::initializer_list<const Tensor*> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

bool needs_recording(const std::vector<Tensor>& inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record(const char* name, const std::vector<Tensor>& inputs, const Tensor& output,
            BackwardFn backward) {
  auto node = std::make_shared<Node>();
  node->name = name;
  node->inputs.reserve(inputs.size());
  for (const Tensor& t : inputs) node->inputs.push_back(t.impl_ptr());
  node->output = output.impl_ptr();
  node->backward = std::move(backward);

  TensorImpl& out = *output.impl();
  out.requires_grad = true;
  out.has_grad_fn = true;
  out.producer = name;
  out.grad_fn = node;

  if (Profiler::enabled()) [[unlikely]] Profiler::on_record(name);
  t_tape.nodes.push_back(std::move(node));
  if (t_tape.nodes.size() >= t_tape.sweep_at) t_tape.sweep();
}

void accumulate_grad(TensorImpl& t, const Tensor& g) {
  TESSERA_CHECK(g.shape() == t.shape, ShapeError,
                "backward: gradient of shape {} for a tensor of shape {} (from '{}')",
                shape_str(g.shape()), shape_str(t.shape), t.producer ? t.producer : "leaf");
  if (!t.grad) {
    // Adopt without copying, even when an op handed the same gradient to several inputs
    // (add does): a shared gradient is never modified in place, see below.
    t.grad = g.impl_ptr();
    return;
  }
  Tensor current(t.grad);
  const bool sole_owner = t.grad.use_count() == 2 && t.grad->storage.use_count() == 1;  // t.grad + `current`
  if (sole_owner) current.add_(g);
  else t.grad = tensor_ops("backward").add_unrecorded(current, g).impl_ptr();
}

void backward(const Tensor& root, const Tensor& grad) {
  TESSERA_CHECK(root.defined(), AutogradError, "backward: the root tensor is undefined");
  TESSERA_CHECK(root.requires_grad(), AutogradError,
                "backward: tensor of shape {} does not require a gradient (no input of the "
                "computation has requires_grad set, or it was computed under NoGradGuard)",
                shape_str(root.shape()));
  Tensor seed = grad;
  if (!seed.defined()) {
    TESSERA_CHECK(root.numel() == 1, AutogradError,
                  "backward: root of shape {} is not a scalar; pass an explicit gradient",
                  shape_str(root.shape()));
    seed = ones(root.shape(), {.dtype = root.dtype(), .device = root.device()});
  } else {
    TESSERA_CHECK(seed.shape() == root.shape(), ShapeError,
                  "backward: gradient of shape {} does not match the root's shape {}",
                  shape_str(seed.shape()), shape_str(root.shape()));
    TESSERA_CHECK(seed.dtype() == root.dtype(), DTypeError,
                  "backward: gradient dtype {} does not match the root's dtype {}", seed.dtype(),
                  root.dtype());
  }
  TensorImpl& r = *root.impl();
  TESSERA_CHECK(!r.has_grad_fn || !r.grad_fn.expired(), AutogradError,
                "backward: the graph that produced this tensor (last op '{}') was already "
                "consumed by an earlier backward(); recompute the forward pass",
                r.producer ? r.producer : "?");

  NoGradGuard no_grad;  // backward closures run ops; they must not record
  Tape& tape = t_tape;
  accumulate_grad(r, seed);

  std::vector<bool> used(tape.nodes.size(), false);
  for (std::size_t i = tape.nodes.size(); i-- > 0;) {
    Node& node = *tape.nodes[i];
    std::shared_ptr<TensorImpl> out = node.output.lock();
    if (!out || !out->grad) continue;
    used[i] = true;
    Tensor dout(out->grad);
    if (!out->retains_grad) out->grad.reset();
    const bool profiling = Profiler::enabled();
    const auto t0 = profiling ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    std::vector<Tensor> dinputs = node.backward(dout);
    if (profiling) [[unlikely]]
      Profiler::on_backward(node.name, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    dout = Tensor();
    for (std::size_t k = 0; k < node.inputs.size() && k < dinputs.size(); ++k) {
      if (!node.inputs[k] || !dinputs[k].defined()) continue;  // optional input, or no grad
      TensorImpl& in = *node.inputs[k];
      if (!in.requires_grad) continue;
      TESSERA_CHECK(!in.has_grad_fn || !in.grad_fn.expired(), AutogradError,
                    "backward: '{}' uses a tensor (from '{}') whose graph was consumed by an "
                    "earlier backward(); recompute it, or detach() it",
                    node.name, in.producer ? in.producer : "?");
      accumulate_grad(in, dinputs[k]);
    }
  }
  // Free what this backward used: its nodes, their saved tensors and non-leaf grads.
  std::vector<std::shared_ptr<Node>> kept;
  kept.reserve(tape.nodes.size());
  for (std::size_t i = 0; i < tape.nodes.size(); ++i)
    if (!used[i]) kept.push_back(std::move(tape.nodes[i]));
  tape.nodes = std::move(kept);
  if (!r.retains_grad && r.has_grad_fn) r.grad.reset();
}

std::size_t tape_size() { return t_tape.nodes.size(); }

void clear_tape() { t_tape.nodes.clear(); }

}  // namespace tessera
