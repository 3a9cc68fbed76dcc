// Op forward values on small hand-computed examples, and the errors bad inputs get.
#include <cmath>

#include "support/test_support.h"

using namespace tessera;

namespace {

std::vector<double> values(const Tensor& t) { return t.detach().to(f64).to_vector<double>(); }

template <class E>
void check_error(const std::function<void()>& f, const std::vector<std::string>& fragments) {
  try {
    f();
    BOOST_ERROR("no exception thrown");
  } catch (const E& e) {
    const std::string what = e.what();
    for (const std::string& frag : fragments)
      BOOST_TEST(what.find(frag) != std::string::npos, "'" << what << "' lacks '" << frag << "'");
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ops)

BOOST_AUTO_TEST_CASE(broadcasting_arithmetic_values) {
  for (DType dt : {f32, f64}) {
    const Tensor a = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3}).to(dt);
    const Tensor b = from_vector<double>({10, 20, 30}).to(dt);
    const Tensor c = from_vector<double>({100, 200}, {2, 1}).to(dt);
    BOOST_TEST((values(a + b) == std::vector<double>{11, 22, 33, 14, 25, 36}));
    BOOST_TEST((values(a - c) == std::vector<double>{-99, -98, -97, -196, -195, -194}));
    BOOST_TEST((values(b * c) == std::vector<double>{1000, 2000, 3000, 2000, 4000, 6000}));
    BOOST_TEST((values(a / 2.0) == std::vector<double>{0.5, 1, 1.5, 2, 2.5, 3}));
    BOOST_TEST((values(2.0 * a - 1.0) == std::vector<double>{1, 3, 5, 7, 9, 11}));
  }
}

BOOST_AUTO_TEST_CASE(matmul_values) {
  const Tensor a = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor b = from_vector<double>({7, 8, 9, 10, 11, 12}, {3, 2});
  for (DType dt : {f32, f64}) {
    BOOST_TEST((values(matmul(a.to(dt), b.to(dt))) == std::vector<double>{58, 64, 139, 154}));
    BOOST_TEST((values(matmul(b.to(dt), a.to(dt), true, true)) == std::vector<double>{58, 139, 64, 154}));
    BOOST_TEST((values(linear(a.to(dt), b.to(dt).transpose(0, 1), from_vector<double>({1, -1}).to(dt))) ==
                std::vector<double>{59, 63, 140, 153}));
  }
}

BOOST_AUTO_TEST_CASE(activation_values) {
  const Tensor x = from_vector<double>({-1.0, 0.0, 2.0});
  BOOST_TEST((values(relu(x)) == std::vector<double>{0, 0, 2}));
  const std::vector<double> g = values(gelu(x));
  BOOST_TEST(g[0] == -0.15865525393145707, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(g[2] == 1.9544997361036416, boost::test_tools::tolerance(1e-12));
  const std::vector<double> gt = values(gelu(x, GeluApprox::tanh));
  BOOST_TEST(gt[0] == -0.15880800939172324, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(values(sigmoid(x))[0] == 1.0 / (1.0 + std::exp(1.0)), boost::test_tools::tolerance(1e-14));
  BOOST_TEST((values(clamp(x, -0.5, 1.0)) == std::vector<double>{-0.5, 0, 1}));
  BOOST_TEST((values(tessera::pow(x, 2.0)) == std::vector<double>{1, 0, 4}));
}

BOOST_AUTO_TEST_CASE(softmax_and_layer_norm_values) {
  for (DType dt : {f32, f64}) {
    const std::vector<double> p = values(softmax(from_vector<double>({0, std::log(3.0)}).to(dt)));
    BOOST_TEST(p[0] == 0.25, boost::test_tools::tolerance(1e-6));
    BOOST_TEST(p[1] == 0.75, boost::test_tools::tolerance(1e-6));
    const std::vector<double> lp = values(log_softmax(from_vector<double>({0, 0, 0, 0}).to(dt)));
    BOOST_TEST(lp[3] == -std::log(4.0), boost::test_tools::tolerance(1e-5));
    // Row (1, 3): mean 2, variance 1 -> (-1, 1) (eps negligible), then * w + b.
    const Tensor y = layer_norm(from_vector<double>({1, 3}, {1, 2}).to(dt), from_vector<double>({2, 3}).to(dt),
                                from_vector<double>({0.5, -0.5}).to(dt), 1e-12);
    BOOST_TEST(values(y)[0] == -1.5, boost::test_tools::tolerance(1e-5));
    BOOST_TEST(values(y)[1] == 2.5, boost::test_tools::tolerance(1e-5));
  }
}

BOOST_AUTO_TEST_CASE(reduction_values) {
  const Tensor x = from_vector<double>({1, 5, 2, 8, 3, 4}, {2, 3});
  BOOST_TEST(sum(x).item() == 23.0);
  BOOST_TEST((values(sum(x, {0})) == std::vector<double>{9, 8, 6}));
  BOOST_TEST((sum(x, {1}, true).shape() == Shape{2, 1}));
  BOOST_TEST((values(mean(x, {1})) == std::vector<double>{8.0 / 3, 5.0}));
  BOOST_TEST((values(tessera::max(x, {1})) == std::vector<double>{5, 8}));
  BOOST_TEST((argmax(x, 1).to_vector<std::int64_t>() == std::vector<std::int64_t>{1, 0}));
  BOOST_TEST((argmax(x, 0).to_vector<std::int64_t>() == std::vector<std::int64_t>{1, 0, 1}));
  BOOST_TEST((sum_to(ones({2, 3, 4}), {3, 1}).to_vector<float>() == std::vector<float>{8, 8, 8}));
}

BOOST_AUTO_TEST_CASE(shape_op_values) {
  const Tensor x = arange(6, {.dtype = f64}).reshape({2, 3});
  BOOST_TEST((values(x.transpose(0, 1)) == std::vector<double>{0, 3, 1, 4, 2, 5}));
  BOOST_TEST((values(concat({x, x * 10.0}, 1)) == std::vector<double>{0, 1, 2, 0, 10, 20, 3, 4, 5, 30, 40, 50}));
  BOOST_TEST((values(slice(x, 1, 0, 3, 2)) == std::vector<double>{0, 2, 3, 5}));
  BOOST_TEST((values(slice(x, 0, -1, 2)) == std::vector<double>{3, 4, 5}));
  BOOST_TEST((values(index_select(x, 1, from_vector<std::int64_t>({2, 2, 0}))) == std::vector<double>{2, 2, 0, 5, 5, 3}));
  BOOST_TEST((values(gather(x, 1, from_vector<std::int64_t>({1, 0, 2, 2}, {2, 2}))) == std::vector<double>{1, 0, 5, 5}));
  BOOST_TEST((values(expand(from_vector<double>({1, 2}, {2, 1}), {2, 2})) == std::vector<double>{1, 1, 2, 2}));
  BOOST_TEST((x.reshape({-1}).shape() == Shape{6}));
  BOOST_TEST((x.unsqueeze(0).shape() == Shape{1, 2, 3}));
  BOOST_TEST((x.flatten().shape() == Shape{6}));
  const Tensor cond = from_vector<double>({1, 0, 1});
  BOOST_TEST((values(where(cond, from_vector<double>({1, 2, 3}), zeros({}, {.dtype = f64}))) == std::vector<double>{1, 0, 3}));
}

BOOST_AUTO_TEST_CASE(conv2d_values) {
  // 1x1x3x3 input, 2x2 kernel of ones, stride 1: sums of each 2x2 window.
  const Tensor x = arange(9, {.dtype = f64}).reshape({1, 1, 3, 3});
  for (DType dt : {f32, f64}) {
    const Tensor y = conv2d(x.to(dt), ones({1, 1, 2, 2}, {.dtype = dt}), from_vector<double>({1}).to(dt));
    BOOST_TEST((values(y) == std::vector<double>{9, 13, 21, 25}));
    const Tensor padded = conv2d(x.to(dt), ones({1, 1, 3, 3}, {.dtype = dt}), {}, {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1});
    BOOST_TEST((values(padded) == std::vector<double>{8, 12, 20, 24}));
  }
}

BOOST_AUTO_TEST_CASE(pooling_values) {
  const Tensor x = from_vector<double>({1, 5, -2, 0,   //
                                        3, 2, 8, -1,   //
                                        -4, 6, 9, 7,   //
                                        0, -3, 1, 2}, {1, 1, 4, 4});
  const Tensor ramp = arange(1, 10, 1, {.dtype = f64}).reshape({1, 1, 3, 3});  // 1..9
  for (DType dt : {f32, f64}) {
    BOOST_TEST_CONTEXT(dt) {
      // 4x4 max pool, 2x2 windows: the maxima and, for sum(y), a 1 at each one's place.
      Tensor xt = x.to(dt).detach().clone();  // .to(f64) of an f64 tensor is the tensor itself
      xt.set_requires_grad(true);
      const Tensor y = max_pool2d(xt, {});
      BOOST_TEST((y.shape() == Shape{1, 1, 2, 2}));
      BOOST_TEST((values(y) == std::vector<double>{5, 8, 6, 9}));
      backward(sum(y));
      BOOST_TEST((values(xt.grad()) == std::vector<double>{0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0}));
      // Padding never wins: -1..-16, 3x3 windows, stride 2, padding 1.
      const Tensor neg = (arange(1, 17, 1, {.dtype = f64}) * -1.0).reshape({1, 1, 4, 4}).to(dt);
      const Pool2dOptions o3{.kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1};
      BOOST_TEST((values(max_pool2d(neg, o3)) == std::vector<double>{-1, -2, -5, -6}));

      // 3x3 ramp, 2x2 windows, stride 2, padding 1: windows hold {1}, {2,3}, {4,7}, {5,6,8,9}.
      const Pool2dOptions o{.kernel_h = 2, .kernel_w = 2, .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1};
      Tensor r = ramp.to(dt).detach().clone();
      r.set_requires_grad(true);
      const Tensor with_pad = avg_pool2d(r, o);  // padding counted: always / 4
      BOOST_TEST((values(with_pad) == std::vector<double>{0.25, 1.25, 2.75, 7}));
      backward(sum(with_pad));
      BOOST_TEST((values(r.grad()) == std::vector<double>(9, 0.25)));
      Tensor r2 = ramp.to(dt).detach().clone();
      r2.set_requires_grad(true);
      Pool2dOptions exclude = o;
      exclude.count_include_pad = false;  // / the real inputs: 1, 2, 2, 4
      const Tensor without_pad = avg_pool2d(r2, exclude);
      BOOST_TEST((values(without_pad) == std::vector<double>{1, 2.5, 5.5, 7}));
      backward(sum(without_pad));
      BOOST_TEST((values(r2.grad()) == std::vector<double>{1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.5, 0.25, 0.25}));
      // 3x3 windows, stride 1, padding 1 (a "same" average): the corner averages 1, 2, 4, 5.
      const Pool2dOptions same{.kernel_h = 3, .kernel_w = 3, .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1};
      BOOST_TEST(values(avg_pool2d(ramp.to(dt), same))[0] == 12.0 / 9, boost::test_tools::tolerance(1e-6));
      Pool2dOptions same_exclude = same;
      same_exclude.count_include_pad = false;
      BOOST_TEST(values(avg_pool2d(ramp.to(dt), same_exclude))[0] == 3.0, boost::test_tools::tolerance(1e-6));
      BOOST_TEST(values(avg_pool2d(ramp.to(dt), same_exclude))[4] == 5.0, boost::test_tools::tolerance(1e-6));
    }
  }
}

BOOST_AUTO_TEST_CASE(batch_norm_values_and_running_statistics) {
  // x (B=2, C=2, 2): channel 0 holds 1, 3 | 5, 7 (mean 4, biased variance 5, unbiased 20/3),
  // channel 1 is constant 2 (variance 0).
  const Tensor x = from_vector<double>({1, 3, 2, 2, 5, 7, 2, 2}, {2, 2, 2});
  const Tensor w = from_vector<double>({2, 1}), b = from_vector<double>({0.5, -1});
  for (DType dt : {f32, f64}) {
    BOOST_TEST_CONTEXT(dt) {
      Tensor rm = zeros({2}, {.dtype = dt}), rv = ones({2}, {.dtype = dt});
      const Tensor y = batch_norm(x.to(dt), w.to(dt), b.to(dt), rm, rv, true, 0.1, 1e-5);
      const double s = std::sqrt(5.0 + 1e-5);
      const std::vector<double> want{2 * -3 / s + 0.5, 2 * -1 / s + 0.5, -1, -1,
                                     2 * 1 / s + 0.5,  2 * 3 / s + 0.5,  -1, -1};
      const std::vector<double> got = values(y);
      for (std::size_t i = 0; i < want.size(); ++i) BOOST_TEST(got[i] == want[i], boost::test_tools::tolerance(1e-5));
      // One step with momentum 0.1 from (0, 1): 0.9 * 0 + 0.1 * mean; 0.9 * 1 + 0.1 * unbiased variance.
      const std::vector<double> m = values(rm), v = values(rv);
      BOOST_TEST(m[0] == 0.4, boost::test_tools::tolerance(1e-6));
      BOOST_TEST(m[1] == 0.2, boost::test_tools::tolerance(1e-6));
      BOOST_TEST(v[0] == 0.9 + 0.1 * 20.0 / 3.0, boost::test_tools::tolerance(1e-6));
      BOOST_TEST(v[1] == 0.9, boost::test_tools::tolerance(1e-6));
      // Evaluation uses (and keeps) the running statistics: (5 - 0.4) / sqrt(v0 + eps) * 2 + 0.5.
      const Tensor e = batch_norm(x.to(dt), w.to(dt), b.to(dt), rm, rv, false);
      BOOST_TEST(values(e)[4] == (5 - 0.4) / std::sqrt(v[0] + 1e-5) * 2 + 0.5, boost::test_tools::tolerance(1e-5));
      BOOST_TEST(values(e)[2] == (2 - 0.2) / std::sqrt(0.9 + 1e-5) - 1, boost::test_tools::tolerance(1e-5));
      BOOST_TEST(values(rm) == m, boost::test_tools::per_element());
      BOOST_TEST(values(rv) == v, boost::test_tools::per_element());
      // Momentum 1 replaces the statistics; without running statistics nothing else changes.
      batch_norm(x.to(dt), {}, {}, rm, rv, true, 1.0);
      BOOST_TEST(values(rm)[0] == 4.0, boost::test_tools::tolerance(1e-6));
      BOOST_TEST(values(rv)[0] == 20.0 / 3.0, boost::test_tools::tolerance(1e-6));
      BOOST_TEST(values(rv)[1] == 0.0, boost::test_tools::tolerance(1e-6));
      BOOST_TEST(values(batch_norm(x.to(dt), {}, {}, {}, {}, true))[0] == -3 / s, boost::test_tools::tolerance(1e-5));
    }
  }
  // The update is not on the tape: one node for the op, and backward still works after a
  // later in-place update of the running statistics.
  clear_tape();
  Tensor xg = x.detach().clone();
  xg.set_requires_grad(true);
  Tensor rm = zeros({2}, {.dtype = f64}), rv = ones({2}, {.dtype = f64});
  const Tensor y = batch_norm(xg, {}, {}, rm, rv, false);
  BOOST_TEST(tape_size() == 1u);
  batch_norm(x, {}, {}, rm, rv, true);  // moves the running statistics
  backward(sum(y * y));
  // Evaluation: y = x / sqrt(1 + eps), so d sum(y^2) / dx = 2 x / (1 + eps).
  const std::vector<double> gx = values(xg.grad()), xv = values(x);
  for (std::size_t i = 0; i < xv.size(); ++i) BOOST_TEST(gx[i] == 2 * xv[i] / (1 + 1e-5), boost::test_tools::tolerance(1e-9));
}

BOOST_AUTO_TEST_CASE(designated_options_survive_avx512) {
  // GCC 12.2 with -march=native (AVX-512) and SLP vectorisation passed {4, 4, 4, 4} here.
  const Tensor y = conv2d(ones({1, 1, 8, 12}), ones({1, 1, 4, 4}), {}, {.stride_h = 4, .stride_w = 4});
  BOOST_TEST((y.shape() == Shape{1, 1, 2, 3}));
}

BOOST_AUTO_TEST_CASE(cross_entropy_values) {
  const Tensor target = from_vector<std::int64_t>({0, 2});
  for (DType dt : {f32, f64}) {
    // Uniform logits: the loss is log(C) with or without smoothing.
    BOOST_TEST(cross_entropy(zeros({2, 4}, {.dtype = dt}), target).item() == std::log(4.0), boost::test_tools::tolerance(1e-6));
    const Tensor z = from_vector<double>({2, 0, 0, 0, 0, 3}, {2, 3}).to(dt);
    const double l0 = std::log(std::exp(2.0) + 2) - 2, l1 = std::log(std::exp(3.0) + 2) - 3;
    BOOST_TEST(cross_entropy(z, target).item() == (l0 + l1) / 2, boost::test_tools::tolerance(1e-6));
    BOOST_TEST(cross_entropy(z, target, {.reduction = Reduction::sum}).item() == l0 + l1, boost::test_tools::tolerance(1e-6));
    // Smoothing 0.3 over 3 classes: loss = lse - 0.7 z_t - 0.1 sum(z).
    const double s0 = std::log(std::exp(2.0) + 2) - 0.7 * 2 - 0.1 * 2;
    BOOST_TEST(values(cross_entropy(z, target, {.reduction = Reduction::none, .label_smoothing = 0.3}))[0] == s0,
               boost::test_tools::tolerance(1e-6));
    // An ignored target is excluded from the mean.
    BOOST_TEST(cross_entropy(z, from_vector<std::int64_t>({0, -100})).item() == l0, boost::test_tools::tolerance(1e-6));
  }
}

BOOST_AUTO_TEST_CASE(dropout_statistics_and_scaling) {
  Generator g(1);
  const Tensor y = dropout(ones({100000}), 0.3, true, g);
  std::int64_t kept = 0;
  for (float v : y.to_vector<float>()) {
    BOOST_TEST((v == 0.0f || std::abs(v - 1.0f / 0.7f) < 1e-6f));
    kept += v != 0.0f;
  }
  BOOST_TEST(std::abs(kept / 100000.0 - 0.7) < 0.01);  // 3 sigma: 0.0043
  const Tensor x = ones({10});
  BOOST_TEST(dropout(x, 0.5, false).same(x));  // eval: identity
  Generator g1(4), g2(4);
  BOOST_TEST(dropout(ones({50}), 0.5, true, g1).to_vector<float>() == dropout(ones({50}), 0.5, true, g2).to_vector<float>());
}

BOOST_AUTO_TEST_CASE(errors_name_the_op_and_shapes) {
  check_error<ShapeError>([] { matmul(ones({8, 197, 192}), ones({384, 128})); },
                          {"matmul", "(8,197,192)", "(384,128)", "inner dimension"});
  check_error<ShapeError>([] { add(ones({2, 3}), ones({4})); }, {"add", "(2,3)", "(4)", "broadcast"});
  check_error<DTypeError>([] { mul(ones({2}), ones({2}, {.dtype = f64})); }, {"mul", "f32", "f64"});
  check_error<DTypeError>([] { relu(ones({2}, {.dtype = i64})); }, {"relu", "i64"});
  check_error<ShapeError>([] { linear(ones({3, 5}), ones({4, 6})); }, {"linear", "(3,5)", "(4,6)"});
  check_error<ShapeError>([] { linear(ones({3, 5}), ones({4, 5}), ones({3})); }, {"linear", "bias", "(3)"});
  check_error<ShapeError>([] { layer_norm(ones({3, 5}), ones({4}), {}); }, {"layer_norm", "weight", "(4)"});
  check_error<ShapeError>([] { conv2d(ones({1, 3, 8, 8}), ones({4, 2, 3, 3})); }, {"conv2d", "(1,3,8,8)", "(4,2,3,3)"});
  check_error<ShapeError>([] { conv2d(ones({1, 1, 2, 2}), ones({1, 1, 3, 3})); }, {"conv2d", "does not fit"});
  check_error<ShapeError>([] { concat({ones({2, 3}), ones({3, 3})}, 1); }, {"concat", "(3,3)", "(2,3)"});
  check_error<ShapeError>([] { ones({2, 3}).reshape({4, -1}); }, {"reshape", "(2,3)", "(4,-1)"});
  check_error<ShapeError>([] { permute(ones({2, 3}), {0, 0}); }, {"permute", "not a permutation"});
  check_error<ShapeError>([] { sum(ones({2, 3}), {2}); }, {"sum", "axis 2", "rank 2"});
  check_error<ShapeError>([] { slice(ones({4}), 0, 0, 4, 0); }, {"slice", "step"});
  check_error<ShapeError>([] { index_select(ones({3, 4}), 1, from_vector<std::int64_t>({0, 4})); },
                          {"index_select", "index 4", "size 4"});
  check_error<DTypeError>([] { gather(ones({3, 4}), 1, ones({3, 1})); }, {"gather", "i64"});
  check_error<ShapeError>([] { cross_entropy(ones({2, 3}), from_vector<std::int64_t>({0, 3})); },
                          {"cross_entropy", "target 3", "[0, 3)"});
  check_error<ShapeError>([] { cross_entropy(ones({2, 3}), from_vector<std::int64_t>({0})); }, {"cross_entropy", "(2,3)", "(1)"});
  check_error<Error>([] { dropout(ones({2}), 1.0); }, {"dropout", "[0, 1)"});
  check_error<Error>([] { add(Tensor(), ones({2})); }, {"add", "undefined"});
}

BOOST_AUTO_TEST_CASE(pooling_and_batch_norm_errors) {
  check_error<ShapeError>([] { max_pool2d(ones({2, 3, 8}), {}); }, {"max_pool2d", "(2,3,8)", "4-D (B, C, H, W)"});
  check_error<ShapeError>([] { avg_pool2d(ones({1, 1, 2, 2}), {.kernel_h = 3, .kernel_w = 3, .stride_h = 1, .stride_w = 1}); },
                          {"avg_pool2d", "kernel 3x3", "larger than the padded input 2x2", "(1,1,2,2)"});
  check_error<ShapeError>([] { max_pool2d(ones({1, 1, 4, 4}), {.kernel_h = 3, .kernel_w = 3, .stride_h = 1, .stride_w = 1, .pad_h = 2, .pad_w = 1}); },
                          {"max_pool2d", "padding (2, 1)", "half the kernel 3x3"});
  check_error<ShapeError>([] { avg_pool2d(ones({1, 1, 4, 4}), {.kernel_h = 2, .kernel_w = 2, .stride_h = 0, .stride_w = 2}); },
                          {"avg_pool2d", "stride (0, 2)"});
  check_error<ShapeError>([] { max_pool2d(ones({1, 1, 4, 4}), {.kernel_h = 0, .kernel_w = 2, .stride_h = 1, .stride_w = 1}); },
                          {"max_pool2d", "kernel 0x2"});
  check_error<ShapeError>([] { max_pool2d(ones({1, 1, 0, 4}), {.pad_h = 1}); }, {"max_pool2d", "(1,1,0,4)", "empty"});
  check_error<DTypeError>([] { max_pool2d(ones({1, 1, 2, 2}, {.dtype = i64}), {}); }, {"max_pool2d", "i64"});

  const Tensor x = ones({4, 3});
  check_error<ShapeError>([&] { batch_norm(x, ones({2}), {}, {}, {}, true); },
                          {"batch_norm", "weight (2)", "C = 3", "(4,3)"});
  check_error<ShapeError>([&] { batch_norm(x, {}, {}, zeros({3}), ones({3, 1}), false); },
                          {"batch_norm", "running_var (3,1)", "C = 3"});
  check_error<ShapeError>([] { batch_norm(ones({1, 3}), {}, {}, {}, {}, true); },
                          {"batch_norm", "more than 1 value per channel when training", "(1,3)"});
  check_error<ShapeError>([] { batch_norm(ones({1, 3, 1, 1}), {}, {}, {}, {}, true); },
                          {"batch_norm", "more than 1 value per channel", "(1,3,1,1)"});
  BOOST_CHECK_NO_THROW(batch_norm(ones({1, 3}), {}, {}, zeros({3}), ones({3}), false));  // fine in evaluation
  check_error<Error>([&] { batch_norm(x, {}, {}, {}, {}, false); }, {"batch_norm", "running_mean and running_var", "both are undefined"});
  check_error<Error>([&] { batch_norm(x, {}, {}, zeros({3}), {}, false); }, {"batch_norm", "running_var is undefined"});
  check_error<Error>([&] { batch_norm(x, {}, {}, zeros({3}), {}, true); }, {"batch_norm", "both be defined"});
  check_error<ShapeError>([] { batch_norm(ones({3}), {}, {}, {}, {}, true); }, {"batch_norm", "(3)", "(B, C, ...)"});
  check_error<DTypeError>([] { batch_norm(ones({4, 3}, {.dtype = i64}), {}, {}, {}, {}, true); }, {"batch_norm", "i64"});
  check_error<DTypeError>([&] { batch_norm(x, ones({3}, {.dtype = f64}), {}, {}, {}, true); }, {"batch_norm", "f32", "f64"});
  check_error<Error>([&] { batch_norm(x, {}, {}, {}, {}, true, 1.5); }, {"batch_norm", "momentum", "1.5"});
  check_error<Error>([&] { batch_norm(x, {}, {}, {}, {}, true, 0.1, 0.0); }, {"batch_norm", "eps"});
}

BOOST_AUTO_TEST_SUITE_END()
