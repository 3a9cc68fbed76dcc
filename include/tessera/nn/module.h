// nn::Module: the base of every layer and model. A module owns named parameters, buffers
// and child modules; names compose into state-dict paths like "blocks.3.attn.qkv.weight".
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tessera/autograd/tensor.h"

namespace tessera::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(Module&&) = default;
  Module& operator=(Module&&) = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The layer's type name for summaries ("Linear", "EncoderBlock").
  virtual std::string type_name() const = 0;

  // --- tree queries (registration order, depth first)
  std::vector<Tensor> parameters() const;
  NamedTensors named_parameters() const;
  NamedTensors named_buffers() const;
  // Parameters and buffers: what a checkpoint stores.
  NamedTensors state_dict() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }
  std::int64_t num_parameters() const;

  // Calls fn on this module and every descendant, parents first (like torch's apply).
  void apply(const std::function<void(Module&)>& fn);

  // --- modes
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();

  // Copies values into this module's tensors (in place: handles stay valid). Every name and
  // shape must match; the error lists every missing, unexpected and mis-shaped name.
  void load_state_dict(const NamedTensors& state);
  // Moves every parameter and buffer to `device` in place.
  void to(Device device);
  // Casts every parameter and buffer in place (f64 for gradient checks).
  void to(DType dtype);

 protected:
  // Registers a trainable tensor (requires_grad is set) and returns a handle to it.
  Tensor register_parameter(std::string name, Tensor value);
  // Registers a non-trainable tensor saved with the module (e.g. fixed position codes).
  Tensor register_buffer(std::string name, Tensor value);
  // Takes ownership of a child; the returned reference stays valid for the module's life.
  template <class M>
  M& register_module(std::string name, M module) {
    auto child = std::make_shared<M>(std::move(module));
    M& ref = *child;
    add_child(std::move(name), std::move(child));
    return ref;
  }
  void add_child(std::string name, std::shared_ptr<Module> child);

 private:
  void collect(const std::string& prefix, bool params, bool buffers, NamedTensors& out) const;
  void check_name(const std::string& name) const;

  NamedTensors params_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// A module with one tensor in and one out: what Sequential chains. operator() runs
// forward() and reports the output shape to an active summary. A tessera::Error raised
// inside reaches the caller of the outermost module once prefixed with the path and type
// of the innermost module it passed through: "blocks.3.attn.qkv (Linear): linear: ...".
class UnaryModule : public Module {
 public:
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x);
};

// A module's parameters and buffers (its state_dict) in a safetensors file, written
// atomically; `metadata` goes into the file's header.
void save(const Module& module, const std::filesystem::path& path,
          const std::map<std::string, std::string>& metadata = {});
// Loads a file written by save() or a training checkpoint (its "optim.*" optimizer state is
// skipped) into the module, as load_state_dict does; non-finite values are refused by name.
// Returns the file's metadata.
std::map<std::string, std::string> load(Module& module, const std::filesystem::path& path);

// Records each module's output shape during one forward pass (see summary()).
void note_output(const Module& m, const Tensor& output);

// A torchinfo-style table: every layer with its output shape and parameter count, from one
// forward pass of `run` (which calls the model on a sample input) in eval mode.
std::string summary(Module& model, const std::function<void()>& run);

}  // namespace tessera::nn
