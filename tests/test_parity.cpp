// Parity of the fast f32 kernels (oneDNN and tuned loops) with the f64 reference kernels:
// forward values and the gradients of every input, within f32 tolerances.
#include "support/test_support.h"

using namespace tessera;
using test::check_close;
using test::input;

namespace {

constexpr double kRtol = 2e-4, kAtol = 2e-5;

// Runs f on f64 inputs and on their f32 copies, backpropagates the same output gradient,
// and compares outputs and input gradients.
void check_parity(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& ref_inputs,
                  double rtol = kRtol, double atol = kAtol) {
  std::vector<Tensor> fast_inputs;
  for (const Tensor& t : ref_inputs) {
    Tensor c = t.detach().to(f32);
    if (t.requires_grad()) c.set_requires_grad(true);
    fast_inputs.push_back(c);
  }
  const Tensor y_ref = f(ref_inputs);
  const Tensor y_fast = f(fast_inputs);
  BOOST_TEST(y_fast.dtype() == DType::f32);
  check_close(y_fast, y_ref, rtol, atol);
  Generator g(99);
  const Tensor dy = randn(y_ref.shape(), {.dtype = f64}, g);
  backward(y_ref, dy);
  backward(y_fast, dy.to(f32));
  for (std::size_t i = 0; i < ref_inputs.size(); ++i) {
    if (!ref_inputs[i].requires_grad()) continue;
    BOOST_TEST_CONTEXT("gradient of input " << i) {
      check_close(fast_inputs[i].grad(), ref_inputs[i].grad(), rtol, atol);
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(parity)

BOOST_AUTO_TEST_CASE(binary_broadcasting) {
  // Same shapes and right-broadcasts take oneDNN's binary; the others our loops.
  for (const auto& [sa, sb] : std::vector<std::pair<Shape, Shape>>{
           {{64, 33}, {64, 33}}, {{8, 50, 64}, {64}}, {{8, 1, 64}, {8, 50, 64}}, {{7, 1}, {1, 9}}}) {
    BOOST_TEST_CONTEXT(shape_str(sa) << " op " << shape_str(sb)) {
      check_parity([](const std::vector<Tensor>& in) { return in[0] + in[1]; }, {input(sa, 1), input(sb, 2)});
      check_parity([](const std::vector<Tensor>& in) { return in[0] - in[1]; }, {input(sa, 3), input(sb, 4)});
      check_parity([](const std::vector<Tensor>& in) { return in[0] * in[1]; }, {input(sa, 5), input(sb, 6)});
      check_parity([](const std::vector<Tensor>& in) { return in[0] / in[1]; }, {input(sa, 7), input(sb, 8, 0.5, 2)});
    }
  }
}

BOOST_AUTO_TEST_CASE(every_unary_op) {
  // Every row of the table (ops/unary_ops.h), f32 (oneDNN or our loop) against f64.
  for (const test::UnaryCase& c : test::unary_cases())
    BOOST_TEST_CONTEXT(c.name) {
      check_parity([&](const std::vector<Tensor>& in) { return unary(c.op, in[0], c.a, c.b); },
                   {test::unary_input(c, {37, 129}, 11)});
    }
}

BOOST_AUTO_TEST_CASE(unary_ops_at_their_edges) {
  // Exactly at the kinks and bounds, where oneDNN and the reference could disagree: the
  // gradient there follows PyTorch (relu'(0) = 0, abs'(0) = 0, clamp' = 1 at the bounds).
  for (const test::UnaryCase& c : test::unary_cases())
    BOOST_TEST_CONTEXT(c.name) {
      std::vector<double> edges{c.low, c.high, c.a, c.b};
      if (c.low <= 0 && 0 <= c.high) edges.push_back(0.0);
      Tensor x = from_vector(edges, {static_cast<std::int64_t>(edges.size())}, {.dtype = f64});
      x.set_requires_grad(true);
      check_parity([&](const std::vector<Tensor>& in) { return unary(c.op, in[0], c.a, c.b); }, {x}, 1e-5, 1e-6);
    }
}

BOOST_AUTO_TEST_CASE(clamp_passes_the_gradient_at_its_bounds) {
  // Regression: oneDNN's clip backward gave 0 at x == low and x == high in f32; PyTorch gives 1.
  for (DType t : {f32, f64}) {
    Tensor x = from_vector<double>({-0.5, 0.75, 0.1}, {3}, {.dtype = t});
    x.set_requires_grad(true);
    backward(sum(clamp(x, -0.5, 0.75)));
    BOOST_TEST(x.grad().to(f64).to_vector<double>() == std::vector<double>({1, 1, 1}), boost::test_tools::per_element());
  }
}

BOOST_AUTO_TEST_CASE(matmul_shapes_and_transposes) {
  struct Case { Shape a, b; bool ta, tb; };
  for (const Case& c : std::vector<Case>{{{64, 48}, {48, 80}, false, false},
                                         {{48, 64}, {48, 80}, true, false},
                                         {{64, 48}, {80, 48}, false, true},
                                         {{8, 4, 50, 16}, {8, 4, 50, 16}, false, true},  // attention scores
                                         {{8, 4, 50, 50}, {8, 4, 50, 16}, false, false},
                                         {{3, 20, 30}, {30, 10}, false, false}})
    BOOST_TEST_CONTEXT(shape_str(c.a) << (c.ta ? "^T" : "") << " @ " << shape_str(c.b) << (c.tb ? "^T" : "")) {
      check_parity([&](const std::vector<Tensor>& in) { return matmul(in[0], in[1], c.ta, c.tb); },
                   {input(c.a, 1), input(c.b, 2)});
    }
}

BOOST_AUTO_TEST_CASE(linear) {
  check_parity([](const std::vector<Tensor>& in) { return tessera::linear(in[0], in[1], in[2]); },
               {input({4, 50, 64}, 1), input({192, 64}, 2), input({192}, 3)});
  check_parity([](const std::vector<Tensor>& in) { return tessera::linear(in[0], in[1]); },
               {input({33, 17}, 4), input({5, 17}, 5)});
}

BOOST_AUTO_TEST_CASE(softmax_and_log_softmax) {
  for (std::int64_t axis : {-1, 1, 0}) {
    check_parity([axis](const std::vector<Tensor>& in) { return softmax(in[0], axis); }, {input({6, 50, 50}, 1, -4, 4)});
    check_parity([axis](const std::vector<Tensor>& in) { return log_softmax(in[0], axis); }, {input({6, 50, 10}, 2, -4, 4)});
  }
}

BOOST_AUTO_TEST_CASE(softmax_stays_exact_far_from_zero) {
  // Regression: along a non-last axis, f32 computed lse = m + log s and then x - lse, losing
  // the digits of x - m to the offset (relative error 5.8e-4 at x = 1e4 + N(0, 1), 4,000 times
  // PyTorch's). It must stay near f32's own precision whichever axis, for both softmaxes.
  Generator g(5);
  const Tensor noise = randn({9, 4}, {.dtype = f64}, g);
  for (const double offset : {1e4, -1e4})
    for (const std::int64_t axis : {0, 1})
      BOOST_TEST_CONTEXT("offset " << offset << ", axis " << axis) {
        // The reference reads the same f32 values (at 1e4, f32's spacing is 1e-3).
        const Tensor x = (noise + offset).to(f32), ref = x.to(f64);
        check_close(softmax(x, axis), softmax(ref, axis), 1e-5, 1e-7);
        check_close(log_softmax(x, axis), log_softmax(ref, axis), 1e-5, 1e-6);
      }
  // The same for cross-entropy, which computes log-softmax inside.
  const Tensor target = from_vector<std::int64_t>({0, 3, 1, 2, 2, 0, 1, 3, 0}, {9});
  const Tensor logits = (noise + 1e4).to(f32);
  for (const double smoothing : {0.0, 0.1}) {
    const CrossEntropyOptions o{.reduction = Reduction::none, .label_smoothing = smoothing};
    check_close(cross_entropy(logits, target, o), cross_entropy(logits.to(f64), target, o), 1e-5, 1e-5);
  }
}

BOOST_AUTO_TEST_CASE(softmax_edges) {
  // Size-1 axes, ties and large offsets.
  for (const Shape& s : {Shape{1, 5}, Shape{5, 1}, Shape{3, 1, 4}})
    for (std::int64_t axis : {0, -1})
      BOOST_TEST_CONTEXT(shape_str(s) << " axis " << axis) {
        check_parity([axis](const std::vector<Tensor>& in) { return softmax(in[0], axis); }, {input(s, 3, -4, 4)});
        check_parity([axis](const std::vector<Tensor>& in) { return log_softmax(in[0], axis); }, {input(s, 4, -4, 4)});
      }
  Tensor ties = ones({4, 6}, {.dtype = f64});
  ties.set_requires_grad(true);
  check_parity([](const std::vector<Tensor>& in) { return softmax(in[0] * 1e4, 1); }, {ties});
}

BOOST_AUTO_TEST_CASE(reductions_at_their_edges) {
  // Ties in max (the gradient goes to the first maximum, on every backend), size-1 axes, and
  // sums far from zero.
  Tensor ties = from_vector<double>({1, 3, 3, 2, 5, 5, 5, 0}, {2, 4}, {.dtype = f64});
  ties.set_requires_grad(true);
  check_parity([](const std::vector<Tensor>& in) { return tessera::max(in[0], {1}); }, {ties});
  for (DType t : {f32, f64}) {
    Tensor x = ties.detach().to(t);
    x.set_requires_grad(true);
    backward(sum(tessera::max(x, {1})));
    BOOST_TEST(x.grad().to(f64).to_vector<double>() == std::vector<double>({0, 1, 0, 0, 1, 0, 0, 0}),
               boost::test_tools::per_element());
  }
  for (const Shape& s : {Shape{1, 7}, Shape{7, 1}, Shape{3, 1, 5}})
    for (const std::vector<std::int64_t>& axes : {std::vector<std::int64_t>{0}, std::vector<std::int64_t>{-1}})
      BOOST_TEST_CONTEXT(shape_str(s) << " over " << axes[0]) {
        check_parity([&](const std::vector<Tensor>& in) { return sum(in[0], axes); }, {input(s, 7)});
        check_parity([&](const std::vector<Tensor>& in) { return mean(in[0], axes, true); }, {input(s, 8)});
        check_parity([&](const std::vector<Tensor>& in) { return tessera::max(in[0], axes); }, {input(s, 9)});
      }
  check_parity([](const std::vector<Tensor>& in) { return mean(in[0] + 1e4, {1}); }, {input({4, 300}, 10)}, 1e-6, 1e-4);
}

BOOST_AUTO_TEST_CASE(layer_norm) {
  check_parity([](const std::vector<Tensor>& in) { return tessera::layer_norm(in[0], in[1], in[2], 1e-6); },
               {input({8, 50, 64}, 1, -2, 3), input({64}, 2, 0.5, 1.5), input({64}, 3)});
  check_parity([](const std::vector<Tensor>& in) { return tessera::layer_norm(in[0], {}, {}, 1e-5); },
               {input({20, 33}, 4)});
  check_parity([](const std::vector<Tensor>& in) { return tessera::layer_norm(in[0], in[1], {}, 1e-5); },
               {input({20, 33}, 5), input({33}, 6)});
  check_parity([](const std::vector<Tensor>& in) { return tessera::layer_norm(in[0], {}, in[1], 1e-5); },
               {input({20, 33}, 7), input({33}, 8)});
}

BOOST_AUTO_TEST_CASE(conv2d) {
  check_parity([](const std::vector<Tensor>& in) { return tessera::conv2d(in[0], in[1], in[2], {.pad_h = 1, .pad_w = 1}); },
               {input({2, 3, 9, 9}, 1), input({8, 3, 3, 3}, 2), input({8}, 3)});
  check_parity([](const std::vector<Tensor>& in) {
    return tessera::conv2d(in[0], in[1], in[2], {.stride_h = 7, .stride_w = 7});
  }, {input({4, 1, 28, 28}, 4), input({16, 1, 7, 7}, 5), input({16}, 6)});
  check_parity([](const std::vector<Tensor>& in) { return tessera::conv2d(in[0], in[1], {}, {.stride_h = 2, .stride_w = 1}); },
               {input({2, 4, 8, 6}, 7), input({5, 4, 3, 2}, 8)});
}

BOOST_AUTO_TEST_CASE(pooling) {
  // oneDNN's pooling_v2 (max through its workspace) against the reference loops: padding,
  // overlapping windows, a floor that drops inputs, non-square, size-1 spatial axes.
  struct Case { Shape x; Pool2dOptions o; };
  const std::vector<Case> cases = {
      {{4, 8, 16, 16}, {}},
      {{2, 3, 9, 11}, {.kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1}},
      {{2, 4, 8, 7}, {.kernel_h = 3, .kernel_w = 2, .stride_h = 1, .stride_w = 2, .pad_h = 1, .pad_w = 0}},
      {{1, 3, 10, 6}, {.kernel_h = 4, .kernel_w = 3, .stride_h = 3, .stride_w = 2, .pad_h = 2, .pad_w = 1}},
      {{3, 5, 1, 1}, {.kernel_h = 1, .kernel_w = 1, .stride_h = 1, .stride_w = 1}},
      {{2, 2, 1, 1}, {.kernel_h = 2, .kernel_w = 2, .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1}},
      {{2, 3, 1, 7}, {.kernel_h = 1, .kernel_w = 3, .stride_h = 1, .stride_w = 2}}};
  std::uint64_t seed = 20;
  for (const Case& c : cases)
    BOOST_TEST_CONTEXT("x " << shape_str(c.x) << " kernel " << c.o.kernel_h << "x" << c.o.kernel_w << " stride "
                            << c.o.stride_h << "," << c.o.stride_w << " pad " << c.o.pad_h << "," << c.o.pad_w) {
      check_parity([&](const std::vector<Tensor>& in) { return max_pool2d(in[0], c.o); }, {input(c.x, seed++)});
      check_parity([&](const std::vector<Tensor>& in) { return max_pool2d(in[0], c.o); },
                   {input(c.x, seed++, -3, -1)});  // all negative: the padding must never win
      for (bool include_pad : {true, false}) {
        Pool2dOptions o = c.o;
        o.count_include_pad = include_pad;
        BOOST_TEST_CONTEXT("avg, count_include_pad " << include_pad) {
          check_parity([&](const std::vector<Tensor>& in) { return avg_pool2d(in[0], o); }, {input(c.x, seed++)});
        }
      }
    }
}

BOOST_AUTO_TEST_CASE(max_pool2d_ties_go_to_the_first_maximum) {
  // A plateau: each window's whole gradient goes to its first maximum in row-major order, on
  // every dtype (PyTorch's CPU rule), also where windows overlap.
  const std::vector<double> plateau{1, 2, 2, 0,  //
                                    2, 2, 1, 2,  //
                                    0, 1, 2, 2};
  for (DType t : {f32, f64}) {
    Tensor x = from_vector(plateau, {1, 1, 3, 4}, {.dtype = f64}).to(t);
    x.set_requires_grad(true);
    backward(sum(max_pool2d(x, {.kernel_h = 2, .kernel_w = 2, .stride_h = 1, .stride_w = 2})));
    // Windows (rows 0-1, cols 0-1), (0-1, 2-3), (1-2, 0-1), (1-2, 2-3): first maxima at
    // (0,1), (0,2), (1,0), (1,3).
    BOOST_TEST(x.grad().to(f64).to_vector<double>() ==
                   std::vector<double>({0, 1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0}),
               boost::test_tools::per_element());
  }
}

BOOST_AUTO_TEST_CASE(batch_norm) {
  // oneDNN's batch_normalization (training, and inference on given statistics) against the
  // reference, with and without each affine parameter, 2-D to 4-D.
  struct Case { Shape x; bool training, weight, bias; };
  const std::vector<Case> cases = {{{8, 16, 10, 10}, true, true, true},  {{8, 16, 10, 10}, false, true, true},
                                   {{32, 12}, true, true, true},         {{32, 12}, false, false, false},
                                   {{5, 7, 33}, true, false, false},     {{5, 7, 33}, true, true, false},
                                   {{5, 7, 33}, true, false, true},      {{5, 7, 33}, false, false, true},
                                   {{2, 3, 1, 1}, true, true, true},     {{1, 4, 3, 1}, false, true, false}};
  std::uint64_t seed = 40;
  for (const Case& c : cases)
    BOOST_TEST_CONTEXT("x " << shape_str(c.x) << (c.training ? " training" : " eval") << " weight " << c.weight
                            << " bias " << c.bias) {
      const std::int64_t C = c.x[1];
      const Tensor rm = input({C}, seed++, -0.5, 0.5, false), rv = input({C}, seed++, 0.3, 2.0, false);
      std::vector<Tensor> in{input(c.x, seed++, -2, 3), rm, rv};
      if (c.weight) in.push_back(input({C}, seed++, 0.5, 1.5));
      if (c.bias) in.push_back(input({C}, seed++));
      check_parity([&](const std::vector<Tensor>& t) {
        const Tensor w = c.weight ? t[3] : Tensor(), b = c.bias ? t[c.weight ? 4 : 3] : Tensor();
        // The running statistics are copies: each run updates its own.
        return tessera::batch_norm(t[0], w, b, t[1].detach().clone(), t[2].detach().clone(), c.training);
      }, in);
    }
}

BOOST_AUTO_TEST_CASE(batch_norm_at_its_edges) {
  // A constant channel (variance 0: xhat is 0 and rstd = 1/sqrt(eps) is large), a single
  // spatial position, and values far from zero.
  Tensor x = input({6, 3, 2, 2}, 50, -1, 1);
  std::vector<double> v = x.detach().to_vector<double>();
  for (std::int64_t b = 0; b < 6; ++b)
    for (std::int64_t i = 0; i < 4; ++i) v[(b * 3 + 1) * 4 + i] = 0.7;
  Tensor constant = from_vector(v, x.shape(), {.dtype = f64});
  constant.set_requires_grad(true);
  const Tensor w = input({3}, 51, 0.5, 1.5), b = input({3}, 52);
  check_parity([](const std::vector<Tensor>& t) { return tessera::batch_norm(t[0], t[1], t[2], {}, {}, true); },
               {constant, w, b}, kRtol, 1e-4);  // 1/sqrt(eps) = 316 scales f32's rounding of the mean
  check_parity([](const std::vector<Tensor>& t) { return tessera::batch_norm(t[0], t[1], t[2], {}, {}, true); },
               {input({12, 5, 1, 1}, 53), input({5}, 55, 0.5, 1.5), input({5}, 56)});
  // Far from zero the reference reads the same f32 values. The batch mean is itself rounded
  // to f32 (spacing 9.8e-4 at 1e4), which bounds any f32 kernel at about 5e-4 / std; a
  // variance computed as E[x^2] - E[x]^2 (f32 spacing 8 at 1e8) would be off by far more.
  Generator g(54);
  for (const double offset : {1e4, -1e4})
    BOOST_TEST_CONTEXT("offset " << offset) {
      const Tensor far = (randn({16, 4, 8, 8}, {.dtype = f64}, g) + offset).to(f32).to(f64);
      Tensor ref = far.detach().clone();
      ref.set_requires_grad(true);
      check_parity([](const std::vector<Tensor>& t) { return tessera::batch_norm(t[0], {}, {}, {}, {}, true); },
                   {ref}, 1e-3, 1e-3);
    }
}

BOOST_AUTO_TEST_CASE(batch_norm_running_statistics) {
  // The in-place update of the running statistics (unbiased variance) in f32 and f64.
  const Tensor x = input({6, 4, 5}, 60, -2, 3, false);
  Tensor rm64 = input({4}, 61, -1, 1, false), rv64 = input({4}, 62, 0.5, 1.5, false);
  Tensor rm32 = rm64.to(f32), rv32 = rv64.to(f32);
  for (int step = 0; step < 3; ++step) {
    tessera::batch_norm(x, {}, {}, rm64, rv64, true, 0.2);
    tessera::batch_norm(x.to(f32), {}, {}, rm32, rv32, true, 0.2);
  }
  check_close(rm32, rm64, kRtol, kAtol);
  check_close(rv32, rv64, kRtol, kAtol);
}

BOOST_AUTO_TEST_CASE(reductions_and_shape_ops) {
  check_parity([](const std::vector<Tensor>& in) { return sum(in[0], {0, 2}); }, {input({30, 7, 40}, 1)});
  check_parity([](const std::vector<Tensor>& in) { return mean(in[0], {1}, true); }, {input({30, 7, 40}, 2)});
  check_parity([](const std::vector<Tensor>& in) { return tessera::max(in[0], {-1}); }, {input({30, 40}, 3)});
  check_parity([](const std::vector<Tensor>& in) { return permute(in[0], {0, 2, 1, 3}); }, {input({4, 50, 3, 16}, 4)});
  check_parity([](const std::vector<Tensor>& in) { return concat({in[0], in[1]}, 1); }, {input({8, 1, 64}, 5), input({8, 49, 64}, 6)});
}

BOOST_AUTO_TEST_CASE(dropout_masks_match_across_dtypes) {
  // Same generator state: the same elements are dropped in f32 and f64.
  check_parity([](const std::vector<Tensor>& in) {
    Generator g(8);
    return dropout(in[0], 0.25, true, g);
  }, {input({40, 50}, 1)});
}

BOOST_AUTO_TEST_CASE(cross_entropy) {
  Generator g(3);
  const Tensor target = randint({64}, 10, g);
  check_parity([&](const std::vector<Tensor>& in) {
    return tessera::cross_entropy(in[0], target, {.label_smoothing = 0.1});
  }, {input({64, 10}, 2, -5, 5)});
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(parity)

BOOST_AUTO_TEST_CASE(fused_attention_matches_composed) {
  // f32 fused kernel against the f64 composition of primitive ops, values and gradients.
  for (auto [B, N, D, H] : std::vector<std::array<std::int64_t, 4>>{{2, 50, 64, 4}, {3, 17, 512, 2}, {1, 1, 8, 2}}) {
    BOOST_TEST_CONTEXT("B " << B << " N " << N << " D " << D << " H " << H) {
      const Tensor qkv = input({B, N, 3 * D}, 7, -2, 2);
      Tensor fast = qkv.detach().to(f32).set_requires_grad();
      Tensor weights;
      const Tensor y_fast = self_attention(fast, H, 0.25, {.weights = &weights});
      const Tensor y_ref = self_attention_composed(qkv, H, 0.25);
      check_close(y_fast, y_ref, kRtol, kAtol);
      BOOST_TEST((weights.shape() == Shape{B, H, N, N}));
      Generator g(1);
      const Tensor dy = randn(y_ref.shape(), {.dtype = f64}, g);
      backward(y_ref, dy);
      backward(y_fast, dy.to(f32));
      check_close(fast.grad(), qkv.grad(), kRtol, kAtol);
    }
  }
  // With dropout: the fused kernel draws the same mask as dropout() on the weights.
  const Tensor qkv = input({2, 6, 12}, 8);
  Generator g1(4), g2(4);
  const Tensor a = self_attention(qkv, 2, 0.5, {.dropout = 0.4, .training = true, .generator = &g1});
  const Tensor b = self_attention_composed(qkv, 2, 0.5, {.dropout = 0.4, .training = true, .generator = &g2});
  check_close(a, b, 1e-12, 1e-12);
}

BOOST_AUTO_TEST_SUITE_END()
