// Optimizers, parameter groups, state save/restore, LR schedules and gradient clipping.
// Updates are checked against scalar reference loops written here from the torch.optim
// formulas (never calling the kernels), and against values worked out on paper.
#include <cmath>
#include <functional>
#include <memory>
#include <string>

#include "tessera/ops/kernels.h"
#include "optim/update_kernels.h"
#include "tessera/optim/optim.h"
#include "support/test_support.h"

using namespace tessera;
namespace op = tessera::optim;

namespace {

// ---- scalar references (double), one per tensor

struct SgdRef {
  double lr, momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
  bool nesterov = false;
  std::vector<double> buf{};
  int t = 0;

  void step(std::vector<double>& p, const std::vector<double>& g) {
    ++t;
    buf.resize(p.size(), 0.0);
    for (std::size_t i = 0; i < p.size(); ++i) {
      double d = g[i] + weight_decay * p[i];
      if (momentum != 0.0) {
        buf[i] = t == 1 ? d : momentum * buf[i] + (1.0 - dampening) * d;
        d = nesterov ? d + momentum * buf[i] : buf[i];
      }
      p[i] -= lr * d;
    }
  }
};

struct AdamRef {
  double lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool decoupled = false;
  std::vector<double> m{}, v{};
  int t = 0;

  void step(std::vector<double>& p, const std::vector<double>& g) {
    ++t;
    m.resize(p.size(), 0.0);
    v.resize(p.size(), 0.0);
    for (std::size_t i = 0; i < p.size(); ++i) {
      double d = g[i];
      if (decoupled) p[i] -= lr * weight_decay * p[i];
      else d += weight_decay * p[i];
      m[i] = beta1 * m[i] + (1.0 - beta1) * d;
      v[i] = beta2 * v[i] + (1.0 - beta2) * d * d;
      const double m_hat = m[i] / (1.0 - std::pow(beta1, t));
      const double v_hat = v[i] / (1.0 - std::pow(beta2, t));
      p[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  }
};

Tensor param(const std::vector<double>& values, const Shape& shape, DType dtype) {
  return from_vector(values, shape, {.dtype = dtype, .requires_grad = true});
}

// f64 CPU tensor (from_vector's own default dtype is f32).
Tensor vec64(const std::vector<double>& v, const Shape& shape) {
  return from_vector(v, shape, {.dtype = f64});
}

std::vector<double> values(const Tensor& t) { return t.detach().to_vector<double>(); }

// A gradient that changes with the step and the element, and flips sign.
std::vector<double> grad_at(std::size_t numel, int step, int tensor) {
  std::vector<double> g(numel);
  for (std::size_t i = 0; i < numel; ++i)
    g[i] = 0.3 * std::sin(1.7 * static_cast<double>(i) + 0.9 * step + tensor) + 0.05 * (step - 1);
  return g;
}

// Three steps of `opt` over two tensors of `dtype` against the reference `proto`, compared
// after every step. Values are rounded to the dtype before the reference sees them.
template <class Ref>
void check_three_steps(DType dtype, const std::function<std::unique_ptr<op::Optimizer>(
                                        std::vector<Tensor>)>& make, const Ref& proto) {
  const std::vector<Shape> shapes = {{2, 3}, {4}};
  const std::vector<std::vector<double>> init = {{0.5, -1.2, 2.0, 0.3, -0.7, 1.1},
                                                 {0.9, -0.4, 0.05, -2.5}};
  std::vector<Tensor> params;
  std::vector<std::vector<double>> ref_p;
  std::vector<Ref> refs;
  for (std::size_t k = 0; k < shapes.size(); ++k) {
    params.push_back(param(init[k], shapes[k], dtype));
    ref_p.push_back(values(params.back()));
    refs.push_back(proto);
  }
  std::unique_ptr<op::Optimizer> opt = make(params);
  const double rtol = dtype == f64 ? 1e-13 : 2e-6, atol = dtype == f64 ? 1e-15 : 1e-7;
  for (int step = 1; step <= 3; ++step) {
    for (std::size_t k = 0; k < params.size(); ++k) {
      const Tensor g = from_vector(grad_at(static_cast<std::size_t>(params[k].numel()), step,
                                           static_cast<int>(k)),
                                   shapes[k], {.dtype = dtype});
      params[k].set_grad(g);
      refs[k].step(ref_p[k], values(g));
    }
    opt->step();
    for (std::size_t k = 0; k < params.size(); ++k) {
      BOOST_TEST_CONTEXT("step " << step << ", tensor " << k << ", " << dtype) {
        test::check_close(params[k].detach(), from_vector(ref_p[k], shapes[k], {.dtype = f64}),
                          rtol, atol);
      }
    }
  }
  BOOST_TEST(opt->step_count() == 3);
}

template <class Opt, class Options>
std::function<std::unique_ptr<op::Optimizer>(std::vector<Tensor>)> maker(Options o) {
  return [o](std::vector<Tensor> p) { return std::make_unique<Opt>(std::move(p), o); };
}

// A one-element f64 parameter driven by a fixed gradient sequence; returns its values.
std::vector<double> run_scalar(op::Optimizer& opt, const Tensor& p, const std::vector<double>& grads) {
  std::vector<double> out;
  for (double g : grads) {
    p.set_grad(vec64({g}, {1}));
    opt.step();
    out.push_back(values(p)[0]);
  }
  return out;
}

void check_values(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  BOOST_REQUIRE_EQUAL(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    BOOST_TEST(std::abs(got[i] - want[i]) <= tol, "value " << i << ": " << got[i] << " vs " << want[i]);
}

bool message_contains(const Error& e, const std::string& part) {
  return std::string(e.what()).find(part) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(optim)

// ---------------------------------------------------------------- updates vs reference loops

BOOST_AUTO_TEST_CASE(sgd_plain_matches_reference) {
  for (DType dt : {f64, f32})
    check_three_steps(dt, maker<op::SGD>(op::SgdOptions{.lr = 0.1}), SgdRef{.lr = 0.1});
}

BOOST_AUTO_TEST_CASE(sgd_momentum_dampening_matches_reference) {
  for (DType dt : {f64, f32})
    check_three_steps(dt, maker<op::SGD>(op::SgdOptions{.lr = 0.05, .momentum = 0.9, .dampening = 0.2}),
                      SgdRef{.lr = 0.05, .momentum = 0.9, .dampening = 0.2});
}

BOOST_AUTO_TEST_CASE(sgd_nesterov_weight_decay_matches_reference) {
  for (DType dt : {f64, f32})
    check_three_steps(
        dt, maker<op::SGD>(op::SgdOptions{.lr = 0.05, .momentum = 0.8, .weight_decay = 0.1, .nesterov = true}),
        SgdRef{.lr = 0.05, .momentum = 0.8, .weight_decay = 0.1, .nesterov = true});
}

BOOST_AUTO_TEST_CASE(adam_l2_matches_reference) {
  for (DType dt : {f64, f32})
    check_three_steps(dt, maker<op::Adam>(op::AdamOptions{.lr = 0.01, .beta1 = 0.8, .beta2 = 0.95,
                                                          .eps = 1e-6, .weight_decay = 0.2}),
                      AdamRef{.lr = 0.01, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.2});
}

BOOST_AUTO_TEST_CASE(adamw_matches_reference) {
  for (DType dt : {f64, f32})
    check_three_steps(dt, maker<op::AdamW>(op::AdamWOptions{.lr = 0.01, .weight_decay = 0.3}),
                      AdamRef{.lr = 0.01, .weight_decay = 0.3, .decoupled = true});
}

BOOST_AUTO_TEST_CASE(large_group_chunks_match_reference) {
  // Tensors above and below the kernel's chunk size, so the group is split into many work
  // items and the parallel path runs; each element must still match the scalar loop.
  const std::vector<std::int64_t> sizes = {100003, 7, 1, 20000, 8192};
  std::vector<Tensor> params;
  std::vector<std::vector<double>> ref_p;
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    Generator gen(11 + k);
    params.push_back(uniform({sizes[k]}, -1, 1, {.dtype = f32, .requires_grad = true}, gen));
    ref_p.push_back(values(params.back()));
  }
  op::AdamW opt(params, {.lr = 0.01, .weight_decay = 0.1});
  std::vector<AdamRef> refs(sizes.size(), AdamRef{.lr = 0.01, .weight_decay = 0.1, .decoupled = true});
  for (int step = 1; step <= 2; ++step) {
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      Generator gen(100 * step + k);
      const Tensor g = uniform({sizes[k]}, -1, 1, {.dtype = f32}, gen);
      params[k].set_grad(g);
      refs[k].step(ref_p[k], values(g));
    }
    opt.step();
  }
  for (std::size_t k = 0; k < sizes.size(); ++k)
    test::check_close(params[k].detach(), from_vector(ref_p[k], {sizes[k]}, {.dtype = f64}), 2e-6, 1e-6);
}

// ---------------------------------------------------------------- values worked out on paper

BOOST_AUTO_TEST_CASE(sgd_paper_values) {
  {  // p = 1, g = 0.5, lr 0.1: p = 1 - 0.05
    const Tensor p = param({1.0}, {1}, f64);
    op::SGD opt({p}, {.lr = 0.1});
    check_values(run_scalar(opt, p, {0.5}), {0.95}, 1e-15);
  }
  {  // momentum 0.9, g = 1: b = 1, 1.9, 2.71; p = 0.9, 0.71, 0.439
    const Tensor p = param({1.0}, {1}, f64);
    op::SGD opt({p}, {.lr = 0.1, .momentum = 0.9});
    check_values(run_scalar(opt, p, {1, 1, 1}), {0.9, 0.71, 0.439}, 1e-14);
  }
  {  // nesterov 0.9, wd 0.1, g = 1: d = 1.1, b = 1.1, p = 1 - 0.1 (1.1 + 0.99) = 0.791;
     // d = 1.0791, b = 0.99 + 1.0791 = 2.0691, p = 0.791 - 0.1 (1.0791 + 1.86219) = 0.496871
    const Tensor p = param({1.0}, {1}, f64);
    op::SGD opt({p}, {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1, .nesterov = true});
    check_values(run_scalar(opt, p, {1, 1}), {0.791, 0.496871}, 1e-14);
  }
}

BOOST_AUTO_TEST_CASE(adam_paper_values) {
  {  // beta1 = beta2 = 0.5, lr 1, eps 0, g = 1 then -1:
     // step 1: m = 0.5, v = 0.5, m^ = 1, v^ = 1: p = 3 - 1 = 2
     // step 2: m = -0.25, v = 0.75, bias corrections 0.75: m^ = -1/3, v^ = 1: p = 2 + 1/3
    const Tensor p = param({3.0}, {1}, f64);
    op::Adam opt({p}, {.lr = 1, .beta1 = 0.5, .beta2 = 0.5, .eps = 0});
    check_values(run_scalar(opt, p, {1, -1}), {2.0, 2.0 + 1.0 / 3.0}, 1e-14);
  }
  {  // L2 0.5 from p = 2: g' = 1 + 1 = 2, m^ = 2, v^ = 4: p = 1.
     // g' = -3 + 0.5 = -2.5: m = 0.5 + (-1.25) = -0.75, v = 1 + 3.125 = 4.125,
     // m^ = -1, v^ = 5.5: p = 1 + 1 / sqrt(5.5)
    const Tensor p = param({2.0}, {1}, f64);
    op::Adam opt({p}, {.lr = 1, .beta1 = 0.5, .beta2 = 0.5, .eps = 0, .weight_decay = 0.5});
    check_values(run_scalar(opt, p, {1, -3}), {1.0, 1.0 + 1.0 / std::sqrt(5.5)}, 1e-14);
  }
  {  // AdamW lr 0.1, wd 0.5, constant g = 2, eps 0: each step p = 0.95 p - 0.1
    const Tensor p = param({1.0}, {1}, f64);
    op::AdamW opt({p}, {.lr = 0.1, .eps = 0, .weight_decay = 0.5});
    check_values(run_scalar(opt, p, {2, 2, 2}), {0.85, 0.7075, 0.572125}, 1e-14);
  }
}

// ---------------------------------------------------------------- groups, names, grads

BOOST_AUTO_TEST_CASE(param_groups_have_their_own_lr_and_weight_decay) {
  const Tensor a = param({1.0, 2.0}, {2}, f64);
  const Tensor b = param({1.0, 2.0}, {2}, f64);
  op::SGD opt(std::vector<op::ParamGroup>{{.params = {a}},
                                          {.params = {b}, .weight_decay = 0.5, .lr_scale = 0.5}},
              {.lr = 0.2, .weight_decay = 0.1});
  BOOST_TEST(opt.num_groups() == 2u);
  BOOST_TEST(opt.lr(0) == 0.2);
  BOOST_TEST(opt.lr(1) == 0.1);
  BOOST_TEST(opt.weight_decay(0) == 0.1);
  BOOST_TEST(opt.weight_decay(1) == 0.5);

  opt.set_lr(1.0);  // a schedule sets the base lr; group 1 keeps its scale
  BOOST_TEST(opt.lr(0) == 1.0);
  BOOST_TEST(opt.lr(1) == 0.5);
  a.set_grad(vec64({1, 1}, {2}));
  b.set_grad(vec64({1, 1}, {2}));
  opt.step();
  // a: p - 1.0 (1 + 0.1 p); b: p - 0.5 (1 + 0.5 p)
  check_values(values(a), {1 - 1.1, 2 - 1.2}, 1e-15);
  check_values(values(b), {1 - 0.75, 2 - 1.0}, 1e-15);

  opt.set_group_lr(1, 0.0);
  opt.step();
  check_values(values(b), {0.25, 1.0}, 0.0);
  BOOST_CHECK_THROW(opt.lr(2), Error);
  BOOST_CHECK_THROW(opt.set_group_lr(0, -1.0), ConfigError);
  BOOST_TEST(opt.params().size() == 2u);
  BOOST_TEST(opt.group(1).params.front().same(b));
}

BOOST_AUTO_TEST_CASE(weight_decay_split_follows_timm_rule) {
  const op::NamedTensors named = {
      {"patch_embed.proj.weight", zeros({8, 3, 4, 4}, {.requires_grad = true})},
      {"patch_embed.proj.bias", zeros({8}, {.requires_grad = true})},
      {"cls_token", zeros({1, 1, 8}, {.requires_grad = true})},
      {"pos_embed", zeros({1, 5, 8}, {.requires_grad = true})},
      {"blocks.0.norm1.weight", ones({8}, {.requires_grad = true})},
      {"blocks.0.attn.qkv.weight", zeros({24, 8}, {.requires_grad = true})},
      {"blocks.0.attn.qkv.bias", zeros({24}, {.requires_grad = true})},
      {"encoder.pos_embed", zeros({1, 5, 8}, {.requires_grad = true})},
      {"my_pos_embed", zeros({5, 8}, {.requires_grad = true})},
      {"frozen.weight", zeros({4, 4})},  // no requires_grad: left out, as timm does
      {"head.weight", zeros({10, 8}, {.requires_grad = true})},
      {"head.scale", scalar_tensor(1.0, {.requires_grad = true})},
  };
  const auto groups = op::split_weight_decay(named, 0.05);
  BOOST_REQUIRE_EQUAL(groups.size(), 2u);
  const std::vector<std::string> decay = {"patch_embed.proj.weight", "blocks.0.attn.qkv.weight",
                                          "my_pos_embed", "head.weight"};
  const std::vector<std::string> no_decay = {"patch_embed.proj.bias", "cls_token", "pos_embed",
                                             "blocks.0.norm1.weight", "blocks.0.attn.qkv.bias",
                                             "encoder.pos_embed", "head.scale"};
  BOOST_TEST(groups[0].names == decay, boost::test_tools::per_element());
  BOOST_TEST(groups[1].names == no_decay, boost::test_tools::per_element());
  BOOST_TEST(*groups[0].weight_decay == 0.05);
  BOOST_TEST(*groups[1].weight_decay == 0.0);
  BOOST_TEST(groups[0].params[1].same(named[5].second));

  // A custom skip list replaces the default one.
  const auto custom = op::split_weight_decay(named, 0.05, {"head.weight"});
  BOOST_TEST(custom[0].names.size() == 6u);  // cls_token, pos_embed now decay; head.weight not
  BOOST_TEST(custom[0].names[1] == "cls_token");
  BOOST_TEST(std::count(custom[1].names.begin(), custom[1].names.end(), "head.weight") == 1);
  BOOST_CHECK_THROW(op::split_weight_decay(named, -1.0), ConfigError);
}

BOOST_AUTO_TEST_CASE(adamw_with_split_groups_decays_only_the_decay_group) {
  // Zero gradients keep Adam's step at 0, so only the decoupled decay moves a param.
  const Tensor w = param({1.0, -2.0, 3.0, 4.0}, {2, 2}, f64);
  const Tensor bias = param({1.0, -2.0}, {2}, f64);
  const Tensor pos = param({1.0, 1.0}, {1, 2}, f64);
  op::AdamW opt(op::split_weight_decay({{"fc.weight", w}, {"fc.bias", bias}, {"pos_embed", pos}}, 0.5),
                {.lr = 0.1});
  for (const Tensor& p : {w, bias, pos}) p.set_grad(zeros_like(p));
  opt.step();
  check_values(values(w), {0.95, -1.9, 2.85, 3.8}, 1e-15);
  check_values(values(bias), {1.0, -2.0}, 0.0);
  check_values(values(pos), {1.0, 1.0}, 0.0);
}

BOOST_AUTO_TEST_CASE(zero_grad_drops_or_zeroes_gradients) {
  const Tensor a = param({1.0, 2.0}, {2}, f64);
  const Tensor b = param({3.0}, {1}, f64);
  op::SGD opt({a, b}, {.lr = 0.1});
  const Tensor ga = vec64({5, 6}, {2});
  a.set_grad(ga);
  opt.zero_grad(/*set_to_none=*/false);
  BOOST_TEST(a.grad().same(ga));  // same tensor, now zeros
  check_values(values(ga), {0.0, 0.0}, 0.0);
  BOOST_TEST(!b.grad().defined());
  opt.zero_grad();
  BOOST_TEST(!a.grad().defined());
  BOOST_TEST(!b.grad().defined());
}

BOOST_AUTO_TEST_CASE(params_without_grad_are_skipped_and_keep_their_own_step) {
  const Tensor a = param({1.0}, {1}, f64);
  const Tensor b = param({1.0}, {1}, f64);
  op::Adam opt({a, b}, {.lr = 0.1, .beta1 = 0.5, .beta2 = 0.5, .eps = 0});
  a.set_grad(vec64({1.0}, {1}));
  opt.step();
  BOOST_TEST(std::abs(values(a)[0] - 0.9) <= 1e-15);
  BOOST_TEST(values(b)[0] == 1.0);  // untouched, and its moments stay zero
  auto state = opt.state_tensors();
  auto find = [&](const std::string& n) {
    for (const auto& [name, t] : state) if (name == n) return t;
    BOOST_FAIL("no state entry " << n);
    return Tensor();
  };
  BOOST_TEST(find("optim.step.0").item() == 1.0);
  BOOST_TEST(find("optim.step.1").item() == 0.0);
  BOOST_TEST(values(find("optim.exp_avg.1"))[0] == 0.0);

  // Now b gets its first gradient: its own step is 1, so its bias correction is step 1's
  // (p moves by lr exactly), while a is at step 2.
  b.set_grad(vec64({-4.0}, {1}));
  a.set_grad(vec64({1.0}, {1}));
  opt.step();
  BOOST_TEST(std::abs(values(b)[0] - 1.1) <= 1e-15);
  BOOST_TEST(std::abs(values(a)[0] - 0.8) <= 1e-15);
  state = opt.state_tensors();
  BOOST_TEST(find("optim.step.0").item() == 2.0);
  BOOST_TEST(find("optim.step.1").item() == 1.0);
  BOOST_TEST(find("optim.step_count").item() == 2.0);
}

// ---------------------------------------------------------------- state save / restore

namespace {

std::vector<Tensor> make_params(DType dtype) {
  Generator gen(7);
  return {uniform({3, 5}, -1, 1, {.dtype = dtype, .requires_grad = true}, gen),
          uniform({5}, -1, 1, {.dtype = dtype, .requires_grad = true}, gen),
          uniform({40000}, -1, 1, {.dtype = dtype, .requires_grad = true}, gen)};
}

void set_grads(const std::vector<Tensor>& params, int step) {
  for (std::size_t k = 0; k < params.size(); ++k) {
    Generator gen(1000 * step + k);
    params[k].set_grad(uniform(params[k].shape(), -1, 1, {.dtype = params[k].dtype()}, gen));
  }
}

std::vector<Tensor> copies(const std::vector<Tensor>& params) {
  std::vector<Tensor> out;
  for (const Tensor& p : params) out.push_back(p.contiguous_copy().set_requires_grad());
  return out;
}

using Factory = std::function<std::unique_ptr<op::Optimizer>(std::vector<Tensor>)>;

// 5 steps straight vs 2 steps, state written out (copied, as a checkpoint would), a fresh
// optimizer over restored params, 3 more steps: the params must agree bit for bit.
void check_resume(DType dtype, const Factory& make) {
  std::vector<Tensor> straight = make_params(dtype);
  auto opt = make(straight);
  std::vector<Tensor> resumed = make_params(dtype);
  auto first = make(resumed);
  for (int step = 1; step <= 5; ++step) {
    set_grads(straight, step);
    opt->step();
    if (step <= 2) {
      set_grads(resumed, step);
      first->step();
    }
  }
  op::NamedTensors saved;
  for (const auto& [name, t] : first->state_tensors()) saved.emplace_back(name, t.contiguous_copy());
  saved.emplace_back("model.weight", zeros({2}));  // other checkpoint entries are ignored
  const std::vector<Tensor> restored = copies(resumed);
  first.reset();
  auto second = make(restored);
  second->load_state(saved);
  BOOST_TEST(second->step_count() == 2);
  for (int step = 3; step <= 5; ++step) {
    set_grads(restored, step);
    second->step();
  }
  for (std::size_t k = 0; k < straight.size(); ++k) {
    const std::vector<double> a = values(straight[k]), b = values(restored[k]);
    BOOST_TEST((a == b), "tensor " << k << " differs after resuming (" << second->name() << ", "
                                   << dtype << ")");
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(resume_from_saved_state_is_bit_exact) {
  for (DType dt : {f32, f64}) {
    check_resume(dt, [](std::vector<Tensor> p) {
      return std::make_unique<op::SGD>(std::move(p), op::SgdOptions{.lr = 0.1, .momentum = 0.9});
    });
    check_resume(dt, [](std::vector<Tensor> p) {
      return std::make_unique<op::SGD>(std::move(p),
          op::SgdOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-2, .nesterov = true});
    });
    check_resume(dt, [](std::vector<Tensor> p) {
      return std::make_unique<op::Adam>(std::move(p), op::AdamOptions{.lr = 1e-2, .weight_decay = 1e-3});
    });
    check_resume(dt, [](std::vector<Tensor> p) {
      return std::make_unique<op::AdamW>(std::move(p), op::AdamWOptions{.lr = 1e-2, .weight_decay = 0.05});
    });
  }
}

BOOST_AUTO_TEST_CASE(state_is_named_by_param_name_or_position) {
  const Tensor w = param({1, 2, 3, 4}, {2, 2}, f32);
  const Tensor b = param({1, 2}, {2}, f32);
  op::AdamW named({{"fc.weight", w}, {"fc.bias", b}});
  std::vector<std::string> names;
  for (const auto& [n, t] : named.state_tensors()) names.push_back(n);
  const std::vector<std::string> want = {"optim.step_count", "optim.step.fc.weight",
                                         "optim.exp_avg.fc.weight", "optim.exp_avg_sq.fc.weight",
                                         "optim.step.fc.bias", "optim.exp_avg.fc.bias",
                                         "optim.exp_avg_sq.fc.bias"};
  BOOST_TEST(names == want, boost::test_tools::per_element());

  op::SGD plain({w, b}, {.lr = 0.1, .momentum = 0.9});
  names.clear();
  for (const auto& [n, t] : plain.state_tensors()) names.push_back(n);
  const std::vector<std::string> want_sgd = {"optim.step_count", "optim.step.0",
                                             "optim.momentum_buffer.0", "optim.step.1",
                                             "optim.momentum_buffer.1"};
  BOOST_TEST(names == want_sgd, boost::test_tools::per_element());
  op::SGD no_momentum({w, b}, {.lr = 0.1});
  BOOST_TEST(no_momentum.state_tensors().size() == 3u);  // step counts only
}

BOOST_AUTO_TEST_CASE(load_state_reports_mismatches_and_changes_nothing) {
  const Tensor w = param({1, 2, 3, 4}, {2, 2}, f32);
  const Tensor b = param({1, 2}, {2}, f32);
  op::AdamW opt({{"fc.weight", w}, {"fc.bias", b}});
  w.set_grad(ones({2, 2}));
  b.set_grad(ones({2}));
  opt.step();
  const std::vector<double> m_before = values(opt.state_tensors()[2].second);

  auto expect_error = [&](const op::NamedTensors& state, const std::vector<std::string>& parts) {
    try {
      opt.load_state(state);
      BOOST_ERROR("load_state accepted a bad state");
    } catch (const IoError& e) {
      BOOST_TEST_MESSAGE(e.what());
      for (const std::string& part : parts)
        BOOST_TEST(message_contains(e, part), "'" << part << "' not in: " << e.what());
    }
  };
  op::NamedTensors good;
  for (const auto& [n, t] : opt.state_tensors()) good.emplace_back(n, zeros_like(t));

  op::NamedTensors wrong_shape = good;
  wrong_shape[2].second = zeros({4});
  expect_error(wrong_shape, {"AdamW::load_state", "'optim.exp_avg.fc.weight' is (4) f32",
                             "the optimizer's is (2,2) f32"});
  op::NamedTensors missing(good.begin(), good.end() - 1);
  expect_error(missing, {"missing entry 'optim.exp_avg_sq.fc.bias'"});
  op::NamedTensors extra = good;
  extra.emplace_back("optim.exp_avg.fc.gamma", zeros({2}));
  expect_error(extra, {"unexpected entry 'optim.exp_avg.fc.gamma'"});
  op::NamedTensors bad_step = good;
  bad_step[1].second = zeros({1});
  expect_error(bad_step, {"'optim.step.fc.weight' is (1) f32, expected an i64 scalar"});
  op::NamedTensors wrong_dtype = good;
  wrong_dtype[3].second = zeros({2, 2}, {.dtype = f64});
  expect_error(wrong_dtype, {"'optim.exp_avg_sq.fc.weight' is (2,2) f64"});
  // SGD's state in an Adam optimizer: every name is wrong.
  op::SGD sgd({param({1, 2, 3, 4}, {2, 2}, f32)}, {.lr = 0.1, .momentum = 0.9});
  expect_error(sgd.state_tensors(), {"unexpected entry 'optim.momentum_buffer.0'",
                                     "missing entry 'optim.exp_avg.fc.bias'"});

  // Nothing was applied by the failed loads; the good one is.
  BOOST_TEST(opt.step_count() == 1);
  BOOST_TEST(values(opt.state_tensors()[2].second) == m_before, boost::test_tools::per_element());
  opt.load_state(good);
  BOOST_TEST(opt.step_count() == 0);
  BOOST_TEST(values(opt.state_tensors()[2].second)[0] == 0.0);
}

// ---------------------------------------------------------------- option and input errors

BOOST_AUTO_TEST_CASE(bad_options_and_params_are_errors) {
  const Tensor p = param({1.0}, {1}, f32);
  BOOST_CHECK_THROW(op::SGD({p}, {.lr = 0.1, .nesterov = true}), ConfigError);
  BOOST_CHECK_THROW(op::SGD({p}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}),
                    ConfigError);
  BOOST_CHECK_THROW(op::SGD({p}, {.lr = -0.1}), ConfigError);
  BOOST_CHECK_THROW(op::SGD({p}, {.lr = 0.1, .momentum = -1}), ConfigError);
  BOOST_CHECK_THROW(op::Adam({p}, {.beta1 = 1.0}), ConfigError);
  BOOST_CHECK_THROW(op::AdamW({p}, {.beta2 = -0.1}), ConfigError);
  BOOST_CHECK_THROW(op::AdamW({p}, {.weight_decay = std::nan("")}), ConfigError);
  BOOST_CHECK_THROW(op::Adam(std::vector<Tensor>{}), Error);
  BOOST_CHECK_THROW(op::Adam({p, p}), Error);
  BOOST_CHECK_THROW(op::Adam(std::vector<op::ParamGroup>{{.params = {p}}, {.params = {p}}}), Error);
  BOOST_CHECK_THROW(op::Adam({p * 2.0}), Error);  // not a leaf
  BOOST_CHECK_THROW(op::Adam({zeros({1}, {.dtype = bf16})}), DTypeError);
  BOOST_CHECK_THROW(op::Adam(std::vector<op::ParamGroup>{{.params = {p}, .names = {"a", "b"}}}), Error);
  BOOST_CHECK_THROW(op::Adam(op::NamedTensors{{"a", p}, {"a", param({1.0}, {1}, f32)}}), Error);
  try {
    op::Adam(std::vector<op::ParamGroup>{{.params = {p}, .names = {"blocks.0.w"}}, {.params = {p}}});
    BOOST_ERROR("duplicate accepted");
  } catch (const Error& e) {
    BOOST_TEST(message_contains(e, "appears more than once"), e.what());
  }
}

BOOST_AUTO_TEST_CASE(kernels_check_their_inputs) {
  const std::vector<Tensor> params = {zeros({2, 3}), zeros({4})};
  const std::vector<Tensor> grads = {zeros({2, 3}), zeros({3})};
  const std::vector<Tensor> m = {zeros({2, 3}), zeros({4})};
  const op::AdamUpdate u{.lr = 0.1, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0,
                     .decoupled = false, .bias_correction1 = 0.1, .bias_correction2 = 0.01};
  try {
    op::kernels::adam_update(params, grads, m, m, u);
    BOOST_ERROR("mismatched gradient accepted");
  } catch (const ShapeError& e) {
    BOOST_TEST(message_contains(e, "adam_update: grads[1] is (3) f32 but its param is (4) f32"), e.what());
  }
  BOOST_CHECK_THROW(op::kernels::adam_update(params, {params[0]}, m, m, u), Error);
  BOOST_CHECK_THROW(op::kernels::adam_update(params, params, m, {m[0], zeros({4}, {.dtype = f64})}, u),
                    ShapeError);
  const op::SgdUpdate s{.lr = 0.1, .momentum = 0.9, .dampening = 0, .weight_decay = 0, .nesterov = false,
                    .first_step = true};
  BOOST_CHECK_THROW(op::kernels::sgd_update(params, params, {}, s), Error);  // momentum needs buffers
  BOOST_CHECK_THROW(op::kernels::squared_norm(zeros({2}, {.dtype = i64})), DTypeError);
}

// ---------------------------------------------------------------- schedules

BOOST_AUTO_TEST_CASE(constant_schedule_with_warmup) {
  const op::LrSchedule s{.base_lr = 0.1, .warmup_steps = 10, .warmup_start_lr = 0.01};
  BOOST_TEST(s.lr_at(0) == 0.01);
  BOOST_TEST(std::abs(s.lr_at(5) - 0.055) <= 1e-15);
  BOOST_TEST(s.lr_at(10) == 0.1);
  BOOST_TEST(s.lr_at(100000) == 0.1);
  const op::LrSchedule plain{.base_lr = 0.3};
  BOOST_TEST(plain.lr_at(0) == 0.3);
  BOOST_CHECK_THROW(plain.lr_at(-1), Error);
}

BOOST_AUTO_TEST_CASE(step_schedule_decays_at_boundaries) {
  const op::LrSchedule s{.kind = op::LrSchedule::Kind::step, .base_lr = 1.0, .step_size = 30,
                         .gamma = 0.1};
  BOOST_TEST(s.lr_at(0) == 1.0);
  BOOST_TEST(s.lr_at(29) == 1.0);
  BOOST_TEST(std::abs(s.lr_at(30) - 0.1) <= 1e-16);
  BOOST_TEST(std::abs(s.lr_at(59) - 0.1) <= 1e-16);
  BOOST_TEST(std::abs(s.lr_at(60) - 0.01) <= 1e-17);
  BOOST_TEST(std::abs(s.lr_at(95) - 0.001) <= 1e-18);
  // With warm-up the ramp comes first; the decay boundaries stay at multiples of step_size.
  const op::LrSchedule w{.kind = op::LrSchedule::Kind::step, .base_lr = 1.0, .warmup_steps = 4,
                         .step_size = 10, .gamma = 0.5};
  BOOST_TEST(w.lr_at(2) == 0.5);
  BOOST_TEST(w.lr_at(4) == 1.0);
  BOOST_TEST(w.lr_at(9) == 1.0);
  BOOST_TEST(w.lr_at(10) == 0.5);
  BOOST_CHECK_THROW((op::LrSchedule{.kind = op::LrSchedule::Kind::step}.lr_at(0)), ConfigError);
}

BOOST_AUTO_TEST_CASE(cosine_schedule_with_warmup_to_min_lr) {
  const op::LrSchedule s{.kind = op::LrSchedule::Kind::cosine, .base_lr = 1e-3, .warmup_steps = 100,
                         .total_steps = 1100, .min_lr = 1e-5};
  BOOST_TEST(s.lr_at(0) == 0.0);                                  // warm-up start
  BOOST_TEST(std::abs(s.lr_at(50) - 5e-4) <= 1e-18);              // half way up
  BOOST_TEST(s.lr_at(100) == 1e-3);                               // warm-up end = peak
  BOOST_TEST(std::abs(s.lr_at(600) - (1e-3 + 1e-5) / 2) <= 1e-18);  // cosine midpoint
  // A quarter of the way: min + (base - min) (1 + cos(pi/4)) / 2
  BOOST_TEST(std::abs(s.lr_at(350) - (1e-5 + 0.99e-3 * (1 + std::sqrt(0.5)) / 2)) <= 1e-18);
  BOOST_TEST(s.lr_at(1099) > 1e-5);
  BOOST_TEST(s.lr_at(1100) == 1e-5);                              // min lr at the end
  BOOST_TEST(s.lr_at(5000) == 1e-5);                              // and after
  for (std::int64_t t = 100; t < 1100; ++t) BOOST_TEST_REQUIRE(s.lr_at(t + 1) <= s.lr_at(t));

  BOOST_CHECK_THROW((op::LrSchedule{.kind = op::LrSchedule::Kind::cosine, .warmup_steps = 10,
                                    .total_steps = 10}.validate()), ConfigError);
  BOOST_CHECK_THROW((op::LrSchedule{.kind = op::LrSchedule::Kind::cosine, .base_lr = 1e-3,
                                    .total_steps = 10, .min_lr = 1e-2}.validate()), ConfigError);
  BOOST_CHECK_THROW(op::LrSchedule{.warmup_steps = -1}.validate(), ConfigError);
  BOOST_TEST((op::schedule_kind_from_string("cosine") == op::LrSchedule::Kind::cosine));
  BOOST_TEST(op::to_string(op::LrSchedule::Kind::step) == "step");
  BOOST_CHECK_THROW(op::schedule_kind_from_string("linear"), ConfigError);
}

BOOST_AUTO_TEST_CASE(schedule_drives_the_optimizer_lr) {
  const Tensor p = param({1.0, 2.0}, {2}, f64);
  op::SGD opt(std::vector<op::ParamGroup>{{.params = {p}, .lr_scale = 0.5}}, {.lr = 0.1});
  const op::LrSchedule s{.base_lr = 0.4, .warmup_steps = 4};
  opt.set_lr(s.lr_at(2));
  BOOST_TEST(opt.lr(0) == 0.1);  // 0.2 at step 2, times the group's scale
}

// ---------------------------------------------------------------- gradient clipping

BOOST_AUTO_TEST_CASE(clip_grad_norm_scales_above_the_threshold) {
  const Tensor a = param({0, 0}, {2}, f64);
  const Tensor b = param({0}, {1}, f32);
  const Tensor none = param({0}, {1}, f64);  // no gradient: ignored
  a.set_grad(vec64({3, 4}, {2}));
  b.set_grad(from_vector<float>({12}, {1}));
  // sqrt(9 + 16 + 144) = 13; factor 6.5 / (13 + 1e-6)
  const double total = op::clip_grad_norm({a, b, none}, 6.5);
  BOOST_TEST(total == 13.0);
  const double f = 6.5 / (13.0 + 1e-6);
  check_values(values(a.grad()), {3 * f, 4 * f}, 1e-15);
  BOOST_TEST(std::abs(values(b.grad())[0] - 12 * f) <= 1e-5);
  BOOST_TEST(std::abs(op::grad_norm({a, b}) - 6.5) <= 1e-5);
  BOOST_TEST(!none.grad().defined());
}

BOOST_AUTO_TEST_CASE(clip_grad_norm_leaves_small_gradients_alone) {
  const Tensor a = param({0, 0}, {2}, f64);
  const Tensor g = vec64({0.3, -0.4}, {2});
  a.set_grad(g);
  BOOST_TEST(std::abs(op::clip_grad_norm({a}, 1.0) - 0.5) <= 1e-15);
  BOOST_TEST(values(a.grad()) == (std::vector<double>{0.3, -0.4}), boost::test_tools::per_element());
  BOOST_TEST(std::abs(op::clip_grad_norm({a}, 0.5 + 1e-5) - 0.5) <= 1e-15);  // just above the norm
  BOOST_TEST(values(a.grad())[0] == 0.3);
  BOOST_CHECK_THROW(op::clip_grad_norm({a}, 0.0), ConfigError);
}

BOOST_AUTO_TEST_CASE(clip_grad_norm_large_and_shared_and_nonfinite) {
  // Large f32 gradient (parallel path) against a double loop.
  const Tensor big = param(std::vector<double>(300001, 0.0), {300001}, f32);
  Generator gen(3);
  big.set_grad(uniform({300001}, -1, 1, {.dtype = f32}, gen));
  double sum = 0;
  for (double v : values(big.grad())) sum += v * v;
  BOOST_TEST(std::abs(op::grad_norm({big}) - std::sqrt(sum)) <= 1e-12 * std::sqrt(sum));

  // One gradient tensor shared by two params counts twice in the norm, is scaled once.
  const Tensor a = param({0, 0}, {2}, f64), b = param({0, 0}, {2}, f64);
  const Tensor shared = vec64({3, 4}, {2});
  a.set_grad(shared);
  b.set_grad(shared);
  const double total = op::clip_grad_norm({a, b}, 1.0);
  BOOST_TEST(std::abs(total - std::sqrt(50.0)) <= 1e-14);
  BOOST_TEST(std::abs(values(shared)[0] - 3.0 / (std::sqrt(50.0) + 1e-6)) <= 1e-15);

  // Non-finite: returned as is, so the caller can skip the step.
  const Tensor c = param({0, 0}, {2}, f32);
  c.set_grad(from_vector<float>({INFINITY, 1.0f}, {2}));
  BOOST_TEST(std::isinf(op::clip_grad_norm({c}, 1.0)));
  // As in PyTorch the gradients are still multiplied, here by 1 / inf = 0.
  BOOST_TEST(std::isnan(values(c.grad())[0]));
  BOOST_TEST(values(c.grad())[1] == 0.0);
  c.set_grad(from_vector<float>({NAN, 1.0f}, {2}));
  BOOST_TEST(std::isnan(op::clip_grad_norm({c}, 1.0)));
  BOOST_TEST(std::isnan(values(c.grad())[1]));  // NaN factor reaches every gradient

  // bf16 gradients are summed in double too: 1 + 4 + 4 = 9.
  const Tensor h = zeros({3}, {.dtype = bf16, .requires_grad = true});
  h.set_grad(from_vector<float>({1, 2, -2}, {3}, {.dtype = bf16}));
  BOOST_TEST(op::grad_norm({h}) == 3.0);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(weight_decay_rules)

BOOST_AUTO_TEST_CASE(glob_patterns_over_parameter_names) {
  BOOST_TEST(op::glob_match("a*b*c", "axxbyyc"));
  BOOST_TEST(op::glob_match("a*b*c", "abc"));
  BOOST_TEST(!op::glob_match("a*b*c", "acb"));
  BOOST_TEST(op::glob_match("blocks.?.norm*", "blocks.3.norm2.weight"));
  BOOST_TEST(!op::glob_match("blocks.?.norm*", "blocks.10.norm2.weight"));
  BOOST_TEST(op::glob_match("*", ""));
  BOOST_TEST(!op::glob_match("", "x"));
  BOOST_TEST(op::glob_match("exact", "exact"));
  BOOST_TEST(!op::glob_match("exact", "exactly"));
}

BOOST_AUTO_TEST_CASE(weight_decay_groups_split_by_the_patterns) {
  // The config's default patterns (optim.no_weight_decay_on): *bias, *norm*, cls_token, pos_embed.
  const std::vector<std::string> patterns{"*bias", "*norm*", "cls_token", "pos_embed"};
  op::NamedTensors named;
  const std::vector<std::string> exempt{"blocks.0.attn.qkv.bias", "head.bias", "blocks.11.norm1.weight",
                                        "norm.weight", "cls_token", "pos_embed"};
  const std::vector<std::string> decayed{"blocks.0.attn.qkv.weight", "head.weight", "pos_embed.extra"};
  for (const auto& list : {exempt, decayed})
    for (const std::string& n : list) named.emplace_back(n, ones({2}, {.requires_grad = true}));
  named.emplace_back("frozen.weight", ones({2}));  // no gradient: in neither group
  const std::vector<op::ParamGroup> g = op::weight_decay_groups(named, 0.05, patterns);
  BOOST_TEST_REQUIRE(g.size() == 2u);
  BOOST_TEST(g[0].names == decayed, boost::test_tools::per_element());
  BOOST_TEST(g[1].names == exempt, boost::test_tools::per_element());
  BOOST_TEST(*g[0].weight_decay == 0.05);
  BOOST_TEST(*g[1].weight_decay == 0.0);
  BOOST_TEST(op::weight_decay_groups(named, 0.05, {})[1].names.empty());
}

BOOST_AUTO_TEST_SUITE_END()
