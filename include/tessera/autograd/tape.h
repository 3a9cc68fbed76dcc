// The autograd tape: each differentiable op appends one node (inputs, output, backward
// closure) to the calling thread's tape; backward() walks it in reverse, accumulating
// gradients, and then drops the nodes it used so their saved activations are freed.
#pragma once

#include <cstddef>
#include <functional>
#include <initializer_list>
#include <memory>
#include <vector>

#include "tessera/autograd/tensor.h"

namespace tessera {

// Given d(loss)/d(output), returns d(loss)/d(input i) for each input, in order; an
// undefined tensor where an input needs no gradient.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& dout)>;

struct Node {
  const char* name;
  std::vector<std::shared_ptr<TensorImpl>> inputs;
  std::weak_ptr<TensorImpl> output;  // weak: a node whose output is gone can never be reached
  BackwardFn backward;
};

// Is gradient recording on for this thread?
bool grad_enabled();

// Disables recording on this thread for its lifetime (evaluation, optimizer updates).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when recording is on and some input requires a gradient: the op should record.
bool needs_recording(std::initializer_list<const Tensor*> inputs);
bool needs_recording(const std::vector<Tensor>& inputs);

// Appends a node producing `output` from `inputs`. The closure must not hold `output`
// itself (capture output.detach() instead): that would keep the node alive forever.
void record(const char* name, const std::vector<Tensor>& inputs, const Tensor& output,
            BackwardFn backward);

// Back-propagates from a one-element `root` (seed 1) or from any root with an explicit
// gradient of its shape. Gradients accumulate into .grad() of leaves until zero_grad().
void backward(const Tensor& root, const Tensor& grad = {});

// Adds `g` into t's gradient slot (allocating it on first use).
void accumulate_grad(TensorImpl& t, const Tensor& g);

// Number of live nodes on this thread's tape (tests, leak checks).
std::size_t tape_size();
// Drops every node on this thread's tape (abandons pending graphs).
void clear_tape();

}  // namespace tessera
