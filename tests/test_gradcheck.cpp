// Gradient checks (f64, central differences; DESIGN.md tolerances) of every op, over
// several shapes including broadcasting, size-1 and size-0 axes.
#include <algorithm>

#include "support/test_support.h"

using namespace tessera;
using test::check_gradients;
using test::input;

namespace {

// Values in [lo, hi] with a random sign: keeps inputs away from kinks at 0.
Tensor away_from_zero(const Shape& shape, std::uint64_t seed, double lo = 0.2, double hi = 1.0) {
  Generator g(seed);
  const Tensor mag = uniform(shape, lo, hi, {.dtype = f64}, g);
  const Tensor sign = uniform(shape, -1.0, 1.0, {.dtype = f64}, g);
  std::vector<double> m = mag.to_vector<double>(), s = sign.to_vector<double>();
  for (std::size_t i = 0; i < m.size(); ++i) m[i] = s[i] < 0 ? -m[i] : m[i];
  Tensor t = from_vector(m, shape, {.dtype = f64});
  t.set_requires_grad(true);
  return t;
}

std::vector<double> values(const Tensor& t) { return t.detach().to(f64).to_vector<double>(); }

// Distinct values in [low, high), shuffled, at least (high - low) / numel apart: the maximum
// of a window never ties, so max pooling has no kink within a finite-difference step.
Tensor distinct_input(const Shape& shape, std::uint64_t seed, double low = -1.0, double high = 1.0) {
  const std::int64_t n = shape_numel(shape);
  Generator g(seed);
  const std::vector<double> keys = uniform({n}, 0.0, 1.0, {.dtype = f64}, g).to_vector<double>();
  std::vector<std::int64_t> order(n);
  for (std::int64_t i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return keys[a] < keys[b]; });
  std::vector<double> v(n);
  for (std::int64_t i = 0; i < n; ++i) v[order[i]] = low + (high - low) * static_cast<double>(i) / n;
  Tensor t = from_vector(v, shape, {.dtype = f64});
  t.set_requires_grad(true);
  return t;
}

void check_unary(const std::function<Tensor(const Tensor&)>& f, const std::function<Tensor(const Shape&, std::uint64_t)>& make) {
  for (const Shape& s : {Shape{}, Shape{1}, Shape{7}, Shape{3, 4}, Shape{2, 0, 3}, Shape{2, 3, 5}}) {
    BOOST_TEST_CONTEXT("shape " << shape_str(s)) {
      if (shape_numel(s) == 0) {  // nothing to differentiate: the op must still run and record
        Tensor x = make(s, 1);
        Tensor y = f(x);
        BOOST_TEST(y.numel() == 0);
        continue;
      }
      check_gradients([&](const std::vector<Tensor>& in) { return f(in[0]); }, {make(s, 11 + s.size())});
    }
  }
}

auto signed_input = [](const Shape& s, std::uint64_t seed) { return away_from_zero(s, seed); };
auto positive_input = [](const Shape& s, std::uint64_t seed) { return input(s, seed, 0.5, 2.0); };
auto any_input = [](const Shape& s, std::uint64_t seed) { return input(s, seed, -2.0, 2.0); };

const std::vector<std::pair<Shape, Shape>> kBroadcastPairs = {
    {{5}, {5}}, {{3, 4}, {3, 4}}, {{3, 4}, {4}}, {{4}, {3, 4}}, {{3, 1}, {1, 4}},
    {{2, 3, 4}, {3, 1}}, {{1}, {2, 3}}, {{}, {2, 2}}, {{2, 0, 3}, {3}}};

void check_binary(const std::function<Tensor(const Tensor&, const Tensor&)>& f, bool b_positive) {
  std::uint64_t seed = 100;
  for (const auto& [sa, sb] : kBroadcastPairs) {
    BOOST_TEST_CONTEXT("shapes " << shape_str(sa) << " and " << shape_str(sb)) {
      Tensor a = input(sa, seed++, -2.0, 2.0);
      Tensor b = b_positive ? input(sb, seed++, 0.5, 2.0) : input(sb, seed++, -2.0, 2.0);
      if (a.numel() == 0 || b.numel() == 0) {
        BOOST_TEST(f(a, b).numel() == 0);
        continue;
      }
      check_gradients([&](const std::vector<Tensor>& in) { return f(in[0], in[1]); }, {a, b});
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(gradcheck)

BOOST_AUTO_TEST_CASE(checker_catches_a_wrong_gradient) {
  // A custom op whose backward is off by 1%: gradcheck must fail and name the input.
  auto wrong_square = [](const std::vector<Tensor>& in) {
    const Tensor& x = in[0];
    Tensor y = (x * x).detach();
    record("wrong_square", {x}, y, [xv = x.detach()](const Tensor& dy) {
      return std::vector<Tensor>{dy * xv * 2.02};
    });
    return y;
  };
  const GradcheckResult r = tessera::gradcheck(wrong_square, {input({4}, 3)});
  BOOST_TEST(!r.ok);
  BOOST_TEST(r.message.find("input 0") != std::string::npos);
  // A missing gradient (backward returns nothing for the input) is caught too.
  auto no_grad = [](const std::vector<Tensor>& in) {
    Tensor y = (in[0] * 3.0).detach();
    record("no_grad", {in[0]}, y, [](const Tensor&) { return std::vector<Tensor>{Tensor()}; });
    return y;
  };
  BOOST_TEST(!tessera::gradcheck(no_grad, {input({3}, 4)}).ok);
  // And the correct version passes.
  auto right_square = [](const std::vector<Tensor>& in) { return in[0] * in[0]; };
  BOOST_TEST(tessera::gradcheck(right_square, {input({4}, 3)}).ok);
}

BOOST_AUTO_TEST_CASE(add) { check_binary([](const Tensor& a, const Tensor& b) { return a + b; }, false); }
BOOST_AUTO_TEST_CASE(sub) { check_binary([](const Tensor& a, const Tensor& b) { return a - b; }, false); }
BOOST_AUTO_TEST_CASE(mul) { check_binary([](const Tensor& a, const Tensor& b) { return a * b; }, false); }
BOOST_AUTO_TEST_CASE(div) { check_binary([](const Tensor& a, const Tensor& b) { return a / b; }, true); }

// Every row of the unary table, at every shape: a new op is checked without editing this file.
#define TESSERA_UNARY_GRADCHECK(name, ...)                                                           \
  BOOST_AUTO_TEST_CASE(unary_##name) {                                                              \
    const test::UnaryCase& c = *std::find_if(test::unary_cases().begin(), test::unary_cases().end(), \
                                             [](const test::UnaryCase& u) { return u.op == UnaryOp::name; }); \
    check_unary([&](const Tensor& x) { return unary(c.op, x, c.a, c.b); },                           \
                [&](const Shape& s, std::uint64_t seed) { return test::unary_input(c, s, seed); });  \
  }
TESSERA_UNARY_OPS(TESSERA_UNARY_GRADCHECK)
#undef TESSERA_UNARY_GRADCHECK

BOOST_AUTO_TEST_CASE(the_named_functions_are_the_table_rows) {
  // gelu, scale_shift, pow and clamp pass their parameters to the rows they stand for.
  const Tensor x = input({5}, 2, -2, 2);
  BOOST_TEST(values(gelu(x)) == values(unary(UnaryOp::gelu_erf, x)));
  BOOST_TEST(values(gelu(x, GeluApprox::tanh)) == values(unary(UnaryOp::gelu_tanh, x)));
  BOOST_TEST(values(scale_shift(x, 3, 1)) == values(unary(UnaryOp::linear, x, 3, 1)));
  BOOST_TEST(values(clamp(x, -1, 1)) == values(unary(UnaryOp::clamp, x, -1, 1)));
}
BOOST_AUTO_TEST_CASE(silu) { check_unary([](const Tensor& x) { return tessera::silu(x); }, any_input); }
BOOST_AUTO_TEST_CASE(neg) { check_unary([](const Tensor& x) { return -x; }, any_input); }
BOOST_AUTO_TEST_CASE(pow) {
  // The table's row checks 2.5 on positive inputs; integer exponents take any sign.
  check_unary([](const Tensor& x) { return tessera::pow(x, 3.0); }, any_input);
  check_unary([](const Tensor& x) { return tessera::pow(x, -1.0); }, positive_input);
}

BOOST_AUTO_TEST_CASE(where) {
  std::uint64_t seed = 200;
  for (const auto& [sa, sb] : kBroadcastPairs) {
    if (shape_numel(sa) == 0) continue;
    BOOST_TEST_CONTEXT("shapes " << shape_str(sa) << " and " << shape_str(sb)) {
      const Shape out = broadcast_shapes(sa, sb, "test");
      Generator g(seed);
      const Tensor cond = randint(out, 2, g).to(f64);
      check_gradients([&](const std::vector<Tensor>& in) { return tessera::where(cond, in[0], in[1]); },
                      {input(sa, seed + 1), input(sb, seed + 2)});
      seed += 3;
    }
  }
}

BOOST_AUTO_TEST_CASE(matmul) {
  struct Case { Shape a, b; bool ta, tb; };
  const std::vector<Case> cases = {
      {{3, 4}, {4, 5}, false, false}, {{4, 3}, {4, 5}, true, false}, {{3, 4}, {5, 4}, false, true},
      {{4, 3}, {5, 4}, true, true},   {{2, 3, 4}, {2, 4, 2}, false, false},
      {{2, 3, 4}, {4, 2}, false, false},   // broadcast b over the batch
      {{2, 1, 3, 4}, {3, 2, 4}, false, true},  // broadcast both batch axes
      {{1, 1}, {1, 1}, false, false}, {{3, 0}, {0, 2}, false, false}};
  for (const Case& c : cases)
    BOOST_TEST_CONTEXT(shape_str(c.a) << (c.ta ? "^T" : "") << " @ " << shape_str(c.b) << (c.tb ? "^T" : "")) {
      check_gradients([&](const std::vector<Tensor>& in) { return tessera::matmul(in[0], in[1], c.ta, c.tb); },
                      {input(c.a, 1), input(c.b, 2)});
    }
}

BOOST_AUTO_TEST_CASE(linear) {
  for (const Shape& xs : {Shape{5}, Shape{3, 5}, Shape{2, 3, 5}, Shape{1, 5}}) {
    BOOST_TEST_CONTEXT("x " << shape_str(xs)) {
      check_gradients([](const std::vector<Tensor>& in) { return tessera::linear(in[0], in[1], in[2]); },
                      {input(xs, 1), input({4, 5}, 2), input({4}, 3)});
      check_gradients([](const std::vector<Tensor>& in) { return tessera::linear(in[0], in[1]); },
                      {input(xs, 4), input({4, 5}, 5)});
    }
  }
}

BOOST_AUTO_TEST_CASE(sum) {
  const Tensor x = input({2, 3, 4}, 7);
  for (const std::vector<std::int64_t>& axes : std::vector<std::vector<std::int64_t>>{{}, {0}, {1}, {2}, {-1}, {0, 2}, {0, 1, 2}})
    for (bool keep : {false, true})
      BOOST_TEST_CONTEXT("axes [" << fmt::format("{}", fmt::join(axes, ",")) << "] keepdim " << keep) {
        check_gradients([&](const std::vector<Tensor>& in) { return tessera::sum(in[0], axes, keep); }, {x});
      }
  check_gradients([](const std::vector<Tensor>& in) { return tessera::sum(in[0], {1}); }, {input({3, 1, 2}, 8)});
  BOOST_TEST(tessera::sum(zeros({2, 0})).item() == 0.0);
}

BOOST_AUTO_TEST_CASE(mean) {
  const Tensor x = input({2, 3, 4}, 9);
  for (const std::vector<std::int64_t>& axes : std::vector<std::vector<std::int64_t>>{{}, {1}, {0, 2}})
    for (bool keep : {false, true})
      check_gradients([&](const std::vector<Tensor>& in) { return tessera::mean(in[0], axes, keep); }, {x});
}

BOOST_AUTO_TEST_CASE(max) {
  const Tensor x = input({3, 4, 5}, 10);  // continuous random values: no ties
  for (const std::vector<std::int64_t>& axes : std::vector<std::vector<std::int64_t>>{{}, {0}, {2}, {0, 2}})
    for (bool keep : {false, true})
      check_gradients([&](const std::vector<Tensor>& in) { return tessera::max(in[0], axes, keep); }, {x});
}

BOOST_AUTO_TEST_CASE(reshape) {
  check_gradients([](const std::vector<Tensor>& in) { return in[0].reshape({4, -1}) * 2.0; }, {input({2, 3, 2}, 1)});
  check_gradients([](const std::vector<Tensor>& in) { return in[0].flatten().unsqueeze(0).squeeze(0); }, {input({2, 3}, 2)});
}

BOOST_AUTO_TEST_CASE(permute) {
  check_gradients([](const std::vector<Tensor>& in) { return tessera::permute(in[0], {2, 0, 1}); }, {input({2, 3, 4}, 1)});
  check_gradients([](const std::vector<Tensor>& in) { return tessera::permute(in[0], {0, 2, 1, 3}); }, {input({2, 3, 4, 2}, 2)});
}

BOOST_AUTO_TEST_CASE(transpose) {
  check_gradients([](const std::vector<Tensor>& in) { return tessera::transpose(in[0], -1, -2); }, {input({2, 3, 4}, 1)});
  check_gradients([](const std::vector<Tensor>& in) { return in[0].transpose(0, 1); }, {input({1, 5}, 2)});
}

BOOST_AUTO_TEST_CASE(expand) {
  check_gradients([](const std::vector<Tensor>& in) { return tessera::expand(in[0], {2, 3, 4}); }, {input({3, 1}, 1)});
  check_gradients([](const std::vector<Tensor>& in) { return tessera::expand(in[0], {4, 2}); }, {input({2}, 2)});
}

BOOST_AUTO_TEST_CASE(concat) {
  for (std::int64_t axis : {0, 1, -1})
    check_gradients([axis](const std::vector<Tensor>& in) { return tessera::concat({in[0], in[1], in[2]}, axis); },
                    {input({2, 3}, 1), input({2, 3}, 2), input({2, 3}, 3)});
  check_gradients([](const std::vector<Tensor>& in) { return tessera::concat({in[0], in[1]}, 1); },
                  {input({2, 1, 3}, 4), input({2, 4, 3}, 5)});
  // An empty piece contributes nothing.
  check_gradients([](const std::vector<Tensor>& in) { return tessera::concat({in[0], in[1]}, 0); },
                  {input({0, 3}, 6), input({2, 3}, 7)});
}

BOOST_AUTO_TEST_CASE(slice) {
  const Tensor x = input({4, 6, 3}, 1);
  check_gradients([](const std::vector<Tensor>& in) { return tessera::slice(in[0], 1, 1, 5); }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return tessera::slice(in[0], 1, 0, 6, 2); }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return tessera::slice(in[0], 0, -2, 100); }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return tessera::slice(in[0], -1, 2, 3); }, {x});
  BOOST_TEST(tessera::slice(x, 1, 4, 2).numel() == 0);
}

BOOST_AUTO_TEST_CASE(index_select) {
  const Tensor idx = from_vector<std::int64_t>({2, 0, 2, 1});  // repeats accumulate
  for (std::int64_t axis : {0, 1, 2})
    check_gradients([&](const std::vector<Tensor>& in) { return tessera::index_select(in[0], axis, idx); },
                    {input({3, 3, 3}, 1)});
}

BOOST_AUTO_TEST_CASE(gather) {
  const Tensor idx = from_vector<std::int64_t>({0, 2, 2, 1, 0, 0}, {3, 2});
  check_gradients([&](const std::vector<Tensor>& in) { return tessera::gather(in[0], 1, idx); }, {input({3, 4}, 1)});
  const Tensor idx0 = from_vector<std::int64_t>({1, 0, 1, 1, 1, 0, 0, 0}, {2, 4});
  check_gradients([&](const std::vector<Tensor>& in) { return tessera::gather(in[0], 0, idx0); }, {input({3, 4}, 2)});
}

BOOST_AUTO_TEST_CASE(softmax) {
  for (const Shape& s : {Shape{5}, Shape{3, 4}, Shape{2, 3, 4}})
    for (std::int64_t axis = -1; axis >= -static_cast<std::int64_t>(s.size()); --axis)
      check_gradients([axis](const std::vector<Tensor>& in) { return tessera::softmax(in[0], axis); },
                      {input(s, 20 + s.size(), -3, 3)});
}

BOOST_AUTO_TEST_CASE(log_softmax) {
  for (const Shape& s : {Shape{5}, Shape{3, 4}, Shape{2, 3, 4}})
    for (std::int64_t axis = -1; axis >= -static_cast<std::int64_t>(s.size()); --axis)
      check_gradients([axis](const std::vector<Tensor>& in) { return tessera::log_softmax(in[0], axis); },
                      {input(s, 30 + s.size(), -3, 3)});
}

BOOST_AUTO_TEST_CASE(layer_norm) {
  for (const Shape& s : {Shape{6}, Shape{3, 6}, Shape{2, 3, 6}}) {
    check_gradients([](const std::vector<Tensor>& in) { return tessera::layer_norm(in[0], in[1], in[2], 1e-5); },
                    {input(s, 1), input({6}, 2, 0.5, 1.5), input({6}, 3)});
    check_gradients([](const std::vector<Tensor>& in) { return tessera::layer_norm(in[0], {}, {}, 1e-6); },
                    {input(s, 4)});
    check_gradients([](const std::vector<Tensor>& in) { return tessera::layer_norm(in[0], in[1], {}, 1e-6); },
                    {input(s, 5), input({6}, 6)});
  }
}

BOOST_AUTO_TEST_CASE(conv2d) {
  struct Case { Shape x, w; Conv2dOptions o; bool bias; };
  const std::vector<Case> cases = {
      {{2, 3, 5, 5}, {4, 3, 3, 3}, {}, true},
      {{1, 2, 6, 7}, {3, 2, 3, 2}, {.stride_h = 2, .stride_w = 1, .pad_h = 1, .pad_w = 0}, true},
      {{2, 1, 8, 8}, {2, 1, 4, 4}, {.stride_h = 4, .stride_w = 4}, false},  // patch embedding
      {{1, 4, 3, 3}, {2, 4, 1, 1}, {}, true},                               // 1x1 (SAGAN)
      {{1, 1, 4, 4}, {1, 1, 3, 3}, {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1}, true}};
  for (const Case& c : cases)
    BOOST_TEST_CONTEXT("x " << shape_str(c.x) << " w " << shape_str(c.w)) {
      std::vector<Tensor> in{input(c.x, 1), input(c.w, 2)};
      if (c.bias) in.push_back(input({c.w[0]}, 3));
      check_gradients([&](const std::vector<Tensor>& t) {
        return tessera::conv2d(t[0], t[1], c.bias ? t[2] : Tensor(), c.o);
      }, in);
    }
}

struct PoolCase { Shape x; Pool2dOptions o; };
// Square and not, padding, overlapping windows (stride < kernel), a floor that drops inputs,
// size-1 kernels and spatial axes.
const std::vector<PoolCase> kPoolCases = {
    {{2, 3, 4, 4}, {}},
    {{1, 2, 5, 6}, {.kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1}},
    {{2, 1, 5, 7}, {.kernel_h = 3, .kernel_w = 2, .stride_h = 1, .stride_w = 2}},
    {{1, 2, 4, 5}, {.kernel_h = 2, .kernel_w = 3, .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1}},
    {{1, 1, 7, 3}, {.kernel_h = 4, .kernel_w = 2, .stride_h = 3, .stride_w = 1, .pad_h = 2, .pad_w = 0}},
    {{2, 2, 1, 1}, {.kernel_h = 1, .kernel_w = 1, .stride_h = 1, .stride_w = 1}}};

std::string pool_str(const PoolCase& c) {
  return fmt::format("x {} kernel {}x{} stride ({}, {}) pad ({}, {})", shape_str(c.x), c.o.kernel_h, c.o.kernel_w,
                     c.o.stride_h, c.o.stride_w, c.o.pad_h, c.o.pad_w);
}

BOOST_AUTO_TEST_CASE(max_pool2d) {
  std::uint64_t seed = 300;
  for (const PoolCase& c : kPoolCases)
    BOOST_TEST_CONTEXT(pool_str(c)) {
      check_gradients([&](const std::vector<Tensor>& in) { return tessera::max_pool2d(in[0], c.o); },
                      {distinct_input(c.x, seed++)});
      // All negative: a padding that took part as 0 would win the border windows.
      check_gradients([&](const std::vector<Tensor>& in) { return tessera::max_pool2d(in[0], c.o); },
                      {distinct_input(c.x, seed++, -2.0, -1.0)});
    }
}

BOOST_AUTO_TEST_CASE(avg_pool2d) {
  std::uint64_t seed = 320;
  for (const PoolCase& c : kPoolCases)
    for (bool include_pad : {true, false})
      BOOST_TEST_CONTEXT(pool_str(c) << " count_include_pad " << include_pad) {
        Pool2dOptions o = c.o;
        o.count_include_pad = include_pad;
        check_gradients([&](const std::vector<Tensor>& in) { return tessera::avg_pool2d(in[0], o); },
                        {input(c.x, seed++)});
      }
}

BOOST_AUTO_TEST_CASE(batch_norm) {
  // Training (batch statistics: the gradient flows through them) and evaluation (running
  // statistics: constants), with and without each affine parameter, 2-D to 4-D.
  std::uint64_t seed = 340;
  for (const Shape& s : {Shape{5, 3}, Shape{2, 3, 4}, Shape{2, 3, 3, 2}})
    for (bool training : {true, false})
      BOOST_TEST_CONTEXT("x " << shape_str(s) << (training ? " training" : " eval")) {
        const Tensor rm = input({3}, seed++, -0.5, 0.5, false), rv = input({3}, seed++, 0.5, 1.5, false);
        const Tensor x = input(s, seed++, -2, 2), w = input({3}, seed++, 0.5, 1.5), b = input({3}, seed++);
        check_gradients([&](const std::vector<Tensor>& in) {
          return tessera::batch_norm(in[0], in[1], in[2], rm, rv, training);
        }, {x, w, b});
        check_gradients([&](const std::vector<Tensor>& in) {
          return tessera::batch_norm(in[0], {}, {}, rm, rv, training, 0.1, 1e-3);
        }, {x});
        check_gradients([&](const std::vector<Tensor>& in) {
          return tessera::batch_norm(in[0], in[1], {}, rm, rv, training);
        }, {x, w});
        check_gradients([&](const std::vector<Tensor>& in) {
          return tessera::batch_norm(in[0], {}, in[1], rm, rv, training);
        }, {x, b});
      }
  // Training without running statistics.
  check_gradients([](const std::vector<Tensor>& in) { return tessera::batch_norm(in[0], in[1], in[2], {}, {}, true); },
                  {input({4, 2, 3}, 360, -2, 2), input({2}, 361, 0.5, 1.5), input({2}, 362)});
}

BOOST_AUTO_TEST_CASE(dropout) {
  for (double p : {0.0, 0.3, 0.9})
    check_gradients([p](const std::vector<Tensor>& in) {
      Generator g(5);  // the same mask in every evaluation
      return tessera::dropout(in[0], p, true, g);
    }, {input({4, 5}, 1)});
}

BOOST_AUTO_TEST_CASE(cross_entropy) {
  const Tensor target = from_vector<std::int64_t>({2, 0, 4, 1});
  for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none})
    for (double smoothing : {0.0, 0.1})
      check_gradients([&](const std::vector<Tensor>& in) {
        return tessera::cross_entropy(in[0], target, {.reduction = red, .label_smoothing = smoothing});
      }, {input({4, 5}, 1, -2, 2)});
  const Tensor with_ignored = from_vector<std::int64_t>({2, -100, 4, -100});
  check_gradients([&](const std::vector<Tensor>& in) { return tessera::cross_entropy(in[0], with_ignored); },
                  {input({4, 5}, 2, -2, 2)});
}

BOOST_AUTO_TEST_CASE(cast) {
  check_gradients([](const std::vector<Tensor>& in) { return (in[0].to(f32) * 2.0f).to(f64); }, {input({3}, 1)},
                  {.eps = 1e-2, .atol = 1e-4, .rtol = 1e-4});  // linear, so a large step is exact
}

BOOST_AUTO_TEST_CASE(composite_mlp_reuses_tensors) {
  // A tensor used twice accumulates both contributions.
  check_gradients([](const std::vector<Tensor>& in) {
    const Tensor h = tessera::gelu(tessera::linear(in[0], in[1], in[2]));
    return tessera::sum(h * h + h, {1}) + tessera::sum(in[0], {1});
  }, {input({3, 4}, 1), input({5, 4}, 2), input({5}, 3)});
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(gradcheck)

BOOST_AUTO_TEST_CASE(self_attention) {
  // The fused kernel, with and without dropout on the weights (fixed generator).
  for (std::int64_t heads : {1, 2, 4})
    check_gradients([heads](const std::vector<Tensor>& in) { return tessera::self_attention(in[0], heads, 0.7); },
                    {input({2, 5, 3 * 8}, 40 + heads)});
  check_gradients([](const std::vector<Tensor>& in) {
    Generator g(3);
    return tessera::self_attention(in[0], 2, 0.5, {.dropout = 0.3, .training = true, .generator = &g});
  }, {input({2, 4, 3 * 4}, 50)});
  check_gradients([](const std::vector<Tensor>& in) { return tessera::self_attention_composed(in[0], 2, 0.5); },
                  {input({2, 4, 3 * 4}, 51)});
}

BOOST_AUTO_TEST_SUITE_END()
