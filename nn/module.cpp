#include "tessera/nn/module.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <set>

#include "tessera/autograd/safetensors.h"
#include "tessera/autograd/tape.h"

namespace tessera::nn {
namespace {

// Replaces a tensor's storage in place so every handle to it sees the new values.
void replace_in_place(const Tensor& t, const Tensor& with) {
  TensorImpl& impl = *t.impl();
  impl.storage = with.impl()->storage;
  impl.offset = with.impl()->offset;
  impl.dtype = with.dtype();
  impl.grad.reset();
}

struct SummaryRecorder {
  bool active = false;
  std::vector<std::pair<const Module*, Shape>> outputs;
};
thread_local SummaryRecorder t_recorder;

}  // namespace

void Module::check_name(const std::string& name) const {
  TESSERA_CHECK(!name.empty() && name.find('.') == std::string::npos, Error,
                "{}: invalid name '{}' (names are non-empty and contain no '.')", type_name(), name);
  auto taken = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const auto& e) { return e.first == name; });
  };
  TESSERA_CHECK(!taken(params_) && !taken(buffers_) && !taken(children_), Error,
                "{}: the name '{}' is already registered", type_name(), name);
}

Tensor Module::register_parameter(std::string name, Tensor value) {
  check_name(name);
  TESSERA_CHECK(value.defined() && value.is_leaf(), Error,
                "{}: parameter '{}' must be a defined leaf tensor", type_name(), name);
  value.set_requires_grad(true);
  params_.emplace_back(std::move(name), value);
  return value;
}

Tensor Module::register_buffer(std::string name, Tensor value) {
  check_name(name);
  TESSERA_CHECK(value.defined(), Error, "{}: buffer '{}' is undefined", type_name(), name);
  buffers_.emplace_back(std::move(name), value);
  return value;
}

void Module::add_child(std::string name, std::shared_ptr<Module> child) {
  check_name(name);
  child->train(training_);
  children_.emplace_back(std::move(name), std::move(child));
}

void Module::collect(const std::string& prefix, bool params, bool buffers, NamedTensors& out) const {
  if (params)
    for (const auto& [n, t] : params_) out.emplace_back(prefix + n, t);
  if (buffers)
    for (const auto& [n, t] : buffers_) out.emplace_back(prefix + n, t);
  for (const auto& [n, c] : children_) c->collect(prefix + n + ".", params, buffers, out);
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", true, false, out);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", false, true, out);
  return out;
}

NamedTensors Module::state_dict() const {
  NamedTensors out;
  collect("", true, true, out);
  return out;
}

std::int64_t Module::num_parameters() const {
  std::int64_t n = 0;
  for (const auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

void Module::apply(const std::function<void(Module&)>& fn) {
  fn(*this);
  for (auto& [n, c] : children_) c->apply(fn);
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}

void Module::zero_grad() {
  for (const Tensor& p : parameters()) p.zero_grad();
}

void Module::load_state_dict(const NamedTensors& state) {
  const NamedTensors mine = state_dict();
  std::map<std::string, const Tensor*> given;
  for (const auto& [n, t] : state) given[n] = &t;
  std::vector<std::string> missing, unexpected, misshaped;
  std::set<std::string> known;
  for (const auto& [n, t] : mine) {
    known.insert(n);
    auto it = given.find(n);
    if (it == given.end()) missing.push_back(n);
    else if (it->second->shape() != t.shape())
      misshaped.push_back(fmt::format("{} {} in the state, {} in the model", n, shape_str(it->second->shape()),
                                      shape_str(t.shape())));
  }
  for (const auto& [n, t] : state)
    if (!known.count(n)) unexpected.push_back(n);
  // Every name, however many: the unexpected ones are often the clue (a prefix, another model).
  std::vector<std::string> parts;
  for (const auto& [what, list] : {std::pair{"missing", &missing}, {"unexpected", &unexpected},
                                   {"mis-shaped", &misshaped}})
    if (!list->empty()) parts.push_back(fmt::format("{} ({}): {}", what, list->size(), fmt::join(*list, ", ")));
  TESSERA_CHECK(parts.empty(), ShapeError, "load_state_dict: {} does not match the state: {}", type_name(),
                fmt::join(parts, "; "));
  NoGradGuard no_grad;
  for (const auto& [n, t] : mine) {
    const Tensor& src = *given[n];
    Tensor dst = t;
    dst.copy_(src.dtype() == t.dtype() ? src.detach().to(t.device()) : src.detach().to(t.dtype()).to(t.device()));
  }
}

void Module::to(Device device) {
  NoGradGuard no_grad;
  for (const auto& [n, t] : state_dict())
    if (t.device() != device) replace_in_place(t, t.detach().to(device));
}

void Module::to(DType dtype) {
  NoGradGuard no_grad;
  for (const auto& [n, t] : state_dict())
    if (t.dtype() != dtype) replace_in_place(t, t.detach().to(dtype));
}

namespace {

// The module an error in flight was raised in (the innermost operator() it left) and how many
// operator() calls deep this thread is: the outermost one names the module in the message.
struct ForwardTrace {
  int depth = 0;
  std::exception_ptr error;
  const Module* raiser = nullptr;
};
thread_local ForwardTrace t_forward;

// The dotted path from `root` down to `target` ("blocks.3.attn.qkv"); false when not below.
bool path_to(const Module& root, const Module* target, std::string& path) {
  for (const auto& [name, child] : root.children()) {
    if (child.get() == target) {
      path = name;
      return true;
    }
    std::string rest;
    if (path_to(*child, target, rest)) {
      path = name + "." + rest;
      return true;
    }
  }
  return false;
}

// The same error type with `prefix` before its message.
[[noreturn]] void rethrow_prefixed(const Error& e, const std::string& prefix) {
  const std::string m = prefix + e.what();
  if (dynamic_cast<const ShapeError*>(&e)) throw ShapeError(m);
  if (dynamic_cast<const DTypeError*>(&e)) throw DTypeError(m);
  if (dynamic_cast<const DeviceError*>(&e)) throw DeviceError(m);
  if (dynamic_cast<const AutogradError*>(&e)) throw AutogradError(m);
  if (dynamic_cast<const ConfigError*>(&e)) throw ConfigError(m);
  if (dynamic_cast<const DataError*>(&e)) throw DataError(m);
  if (dynamic_cast<const IoError*>(&e)) throw IoError(m);
  throw Error(m);
}

}  // namespace

Tensor UnaryModule::operator()(const Tensor& x) {
  ForwardTrace& trace = t_forward;
  Tensor y;
  ++trace.depth;
  try {
    y = forward(x);
  } catch (const Error& e) {
    --trace.depth;
    if (trace.error != std::current_exception()) trace.error = std::current_exception(), trace.raiser = this;
    if (trace.depth > 0) throw;
    const Module* raiser = std::exchange(trace.raiser, nullptr);
    trace.error = nullptr;
    std::string path;
    if (raiser != this && path_to(*this, raiser, path)) rethrow_prefixed(e, fmt::format("{} ({}): ", path, raiser->type_name()));
    throw;
  } catch (...) {
    if (--trace.depth == 0) trace.error = nullptr, trace.raiser = nullptr;
    throw;
  }
  --trace.depth;
  note_output(*this, y);
  return y;
}

void save(const Module& module, const std::filesystem::path& path, const std::map<std::string, std::string>& metadata) {
  io::TensorMap tensors;
  for (const auto& [name, t] : module.state_dict()) tensors.emplace(name, t);
  io::save_safetensors(path, tensors, metadata);
}

std::map<std::string, std::string> load(Module& module, const std::filesystem::path& path) {
  io::SafetensorsFile file = io::load_safetensors(path);
  std::set<std::string> mine;
  for (const auto& [name, t] : module.state_dict()) mine.insert(name);
  NamedTensors state;
  for (auto& [name, t] : file.tensors) {
    if (name.starts_with("optim.") && !mine.count(name)) continue;  // a checkpoint's optimizer state
    const std::int64_t bad = count_non_finite(t);
    TESSERA_CHECK(bad == 0, IoError, "nn::load: '{}': tensor {} holds {} non-finite value{}", path.string(), name, bad,
                  bad == 1 ? "" : "s");
    state.emplace_back(name, std::move(t));
  }
  try {
    module.load_state_dict(state);
  } catch (const ShapeError& e) {
    throw ShapeError(fmt::format("nn::load: '{}': {}", path.string(), e.what()));
  }
  return file.metadata;
}

void note_output(const Module& m, const Tensor& output) {
  if (t_recorder.active) t_recorder.outputs.emplace_back(&m, output.shape());
}

namespace {

std::string group_digits(std::int64_t n) {
  std::string s = std::to_string(n), out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

struct Row { std::string layer, shape, params; };

void walk(const Module& m, const std::string& name, int depth,
          const std::map<const Module*, Shape>& shapes, std::vector<Row>& rows) {
  const std::int64_t params = m.num_parameters();  // including children, like torchinfo
  auto it = shapes.find(&m);
  rows.push_back({std::string(2 * depth, ' ') + m.type_name() + (name.empty() ? "" : " (" + name + ")"),
                  it == shapes.end() ? "--" : shape_str(it->second),
                  params ? group_digits(params) : "--"});
  for (const auto& [n, c] : m.children()) walk(*c, n, depth + 1, shapes, rows);
}

}  // namespace

std::string summary(Module& model, const std::function<void()>& run) {
  const bool was_training = model.is_training();
  model.eval();
  t_recorder = {true, {}};
  try {
    NoGradGuard no_grad;
    run();
  } catch (...) {
    t_recorder = {};
    model.train(was_training);
    throw;
  }
  std::map<const Module*, Shape> shapes;
  for (const auto& [m, s] : t_recorder.outputs) shapes.emplace(m, s);  // first call wins
  t_recorder = {};
  model.train(was_training);

  std::vector<Row> rows;
  walk(model, "", 0, shapes, rows);
  std::size_t w0 = 5, w1 = 12, w2 = 7;
  for (const Row& r : rows) {
    w0 = std::max(w0, r.layer.size());
    w1 = std::max(w1, r.shape.size());
    w2 = std::max(w2, r.params.size());
  }
  const std::string rule(w0 + w1 + w2 + 4, '=');
  std::string out = rule + "\n" + fmt::format("{:<{}}  {:<{}}  {:>{}}\n", "Layer", w0, "Output shape", w1, "Param #", w2) + rule + "\n";
  for (const Row& r : rows) out += fmt::format("{:<{}}  {:<{}}  {:>{}}\n", r.layer, w0, r.shape, w1, r.params, w2);
  out += rule + "\n";
  std::int64_t trainable = 0;
  for (const auto& [n, t] : model.named_parameters()) trainable += t.requires_grad() ? t.numel() : 0;
  out += fmt::format("Total params: {}\nTrainable params: {}\n", group_digits(model.num_parameters()), group_digits(trainable));
  return out;
}

}  // namespace tessera::nn
