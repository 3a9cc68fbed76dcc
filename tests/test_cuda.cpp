// Tests of the CUDA backend: round trips, allocator, kernel parity with the CPU f64 reference, gradients.

// Parity goes through the public ops where they exist, else through the kernels:: interface
// against reference loops written here. Cases in suite `cuda_device` need a GPU and are
// skipped, with a line on stdout, without one. Building this file with
// -DTESSERA_CUDA_TESTS_ON_CPU runs those cases on the CPU backend instead: a check of the
// tests themselves on a machine without a GPU.

#include <cmath>
#include <functional>
#include <iostream>
#include <limits>

#include "tessera/autograd/allocator.h"
#include "ops/dropout_mask.h"
#include "tessera/ops/kernels.h"
#include "optim/update_kernels.h"
#include "support/test_support.h"

using namespace tessera;
namespace utf = boost::unit_test;

namespace {

Device test_device() {
#ifdef TESSERA_CUDA_TESTS_ON_CPU
  return Device::cpu();
#else
  return Device::cuda();
#endif
}

boost::test_tools::assertion_result gpu_present(utf::test_unit_id id) {
#ifdef TESSERA_CUDA_TESTS_ON_CPU
  (void)id;
  return true;
#else
  boost::test_tools::assertion_result r(cuda_available());
  if (!r) {
    r.message() << "no usable CUDA GPU";
    std::cout << "SKIPPED " << utf::framework::get(id, utf::TUT_ANY).full_name()
              << ": no usable CUDA GPU (this build " << (cuda_built() ? "has" : "lacks")
              << " the CUDA backend)" << std::endl;
  }
  return r;
#endif
}

#define GPU_TEST_CASE(name) BOOST_AUTO_TEST_CASE(name, *utf::precondition(gpu_present))

Tensor dev(const Tensor& t) { return t.detach().to(test_device()); }
Tensor host(const Tensor& t) { return t.detach().cpu(); }
Tensor in(const Shape& shape, std::uint64_t seed, double low = -1.0, double high = 1.0) {
  return test::input(shape, seed, low, high, false);
}
std::vector<double> values(const Tensor& t) { return host(t).to(DType::f64).to_vector<double>(); }
Tensor empty_on_dev(const Shape& shape, DType dtype) { return empty(shape, {.dtype = dtype, .device = test_device()}); }

// Data movement and max are exact, but the f32 run sees its inputs rounded to f32.
constexpr double kExact32 = 1e-7;

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Runs f on CPU f64 inputs (the reference), then on the device in f64 (near-exact) and in
// f32 (within rtol32/atol32). i64 inputs are moved as they are.
void check_parity(const OpFn& f, const std::vector<Tensor>& inputs, double rtol32, double atol32) {
  NoGradGuard no_grad;
  const Tensor ref = f(inputs);
  std::vector<Tensor> in64, in32;
  for (const Tensor& t : inputs) {
    in64.push_back(dev(t));
    in32.push_back(dev(t.dtype() == DType::f64 ? t.detach().to(DType::f32) : t));
  }
  const Tensor r64 = f(in64);
  BOOST_TEST(r64.device() == test_device());
  BOOST_TEST(r64.dtype() == ref.dtype());
  test::check_close(host(r64), ref, 1e-10, 1e-12);
  const Tensor r32 = f(in32);
  test::check_close(host(r32), ref, rtol32, atol32);
}

// Compares a device result (f32 or f64) with reference values.
void check_values(const Tensor& got, const std::vector<double>& want, const Shape& shape, double rtol,
                  double atol) {
  test::check_close(host(got), from_vector<double>(want, shape, {.dtype = DType::f64}), rtol, atol);
}

// Tolerances for a device result of dtype t: f64 near-exact, f32 as given.
struct Tol { double rtol, atol; };
Tol tol_for(DType t, Tol f32) { return t == DType::f64 ? Tol{1e-10, 1e-12} : f32; }

struct Axis3 { std::int64_t A, L, B; };
Axis3 axis3(const Shape& s, int axis) {
  Axis3 v{1, s[axis], 1};
  for (int i = 0; i < axis; ++i) v.A *= s[i];
  for (std::size_t i = axis + 1; i < s.size(); ++i) v.B *= s[i];
  return v;
}

}  // namespace

// ================================================================ runs without a GPU

BOOST_AUTO_TEST_SUITE(cuda_host)

BOOST_AUTO_TEST_CASE(build_flags_and_availability_agree) {
#ifdef TESSERA_WITH_CUDA
  BOOST_TEST(cuda_built());
#else
  BOOST_TEST(!cuda_built());
#endif
  if (cuda_available()) {
    BOOST_TEST(cuda_built());
    BOOST_CHECK_NO_THROW(allocator_for(Device::cuda()));
  } else {
    BOOST_CHECK_THROW(allocator_for(Device::cuda()), DeviceError);
    BOOST_CHECK_THROW(zeros({2}).to(Device::cuda()), DeviceError);
  }
}

BOOST_AUTO_TEST_CASE(dropout_keep_rule_is_the_philox_to_unit_rule) {
  static_assert(dropout_threshold(0.0) == 0u);
  static_assert(dropout_threshold(0.5) == 1u << 23);
  static_assert(dropout_threshold(1.0) == 1u << 24);
  // Philox is constexpr: the known-answer vector of Salmon et al. (Random123's kat_vectors,
  // philox4x32_10 with a zero key and counter) is checked at compile time.
  static_assert(philox4x32(0, 0, 0) == std::array<std::uint32_t, 4>{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  // The integer threshold decides exactly like to_unit(bits) >= p, also at the boundaries:
  // p on the 2^-24 grid, just off it, tiny, and outside [0, 1].
  const double grid = 1.0 / 16777216.0;
  const std::vector<double> ps = {0.0, 0.1, 0.25, 0.3, 0.5, 0.9, 1.0 - grid, 1.0, 12345 * grid,
                                  12345 * grid + 1e-12, 12345 * grid - 1e-12,
                                  std::numeric_limits<double>::denorm_min(), 1e-30, -0.5, 1.5,
                                  std::numeric_limits<double>::quiet_NaN()};
  for (double p : ps) {
    const std::uint32_t t = dropout_threshold(p);
    for (std::uint32_t m : {0u, 1u, 12344u, 12345u, 12346u, t > 0 ? t - 1 : 0u, t, t + 1, (1u << 24) - 1}) {
      if (m >= (1u << 24)) continue;
      for (std::uint32_t low : {0u, 0xffu}) {
        const std::uint32_t bits = (m << 8) | low;
        BOOST_TEST(((bits >> 8) >= t) == (to_unit(bits) >= p), "p = " << p << ", bits = " << bits);
      }
    }
  }
  // And element by element on real draws.
  for (std::uint64_t i = 0; i < 2000; ++i) {
    const double u = to_unit(philox4x32(42, 1000 + i)[0]);
    BOOST_TEST(dropout_keep(42, 1000 + i, dropout_threshold(0.3)) == (u >= 0.3));
  }
}

#ifdef TESSERA_WITH_CUDA
BOOST_AUTO_TEST_CASE(cuda_kernels_reject_host_tensors_by_name) {
  Tensor a = ones({2, 3}), b = ones({2, 3}), out = empty({2, 3});
  try {
    cuda::binary(BinaryOp::mul, a, b, out);
    BOOST_FAIL("cuda::binary accepted CPU tensors");
  } catch (const DeviceError& e) {
    const std::string msg = e.what();
    BOOST_TEST(msg.find("mul") != std::string::npos, msg);
    BOOST_TEST(msg.find("(2,3)") != std::string::npos, msg);
    BOOST_TEST(msg.find("cpu") != std::string::npos, msg);
  }
  Tensor idx = from_vector<std::int64_t>({0, 1});
  BOOST_CHECK_THROW(cuda::index_select(a, 0, idx, out), DeviceError);
  BOOST_CHECK_THROW(optim::cuda::squared_norm(a), DeviceError);
}
#endif

BOOST_AUTO_TEST_SUITE_END()

// ================================================================ needs a GPU

BOOST_AUTO_TEST_SUITE(cuda_device)

GPU_TEST_CASE(round_trips_preserve_every_dtype) {
  const std::vector<double> vals = {-1.5, 0.0, 2.25, 1e10, 0.15625, -7.75};
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::i64}) {
    const Tensor x = from_vector<double>(vals, {2, 3}, {.dtype = t});
    const Tensor g = x.to(test_device());
    BOOST_TEST(g.device() == test_device());
    BOOST_TEST(g.dtype() == t);
    BOOST_TEST((g.shape() == Shape{2, 3}));
    BOOST_TEST(values(g) == values(x));
    BOOST_TEST(values(g.contiguous_copy()) == values(x));  // device to device
  }
  Tensor g = empty_on_dev({2, 3}, DType::f32);
  g.copy_(from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}));
  BOOST_TEST((values(g) == std::vector<double>{1, 2, 3, 4, 5, 6}));
  g.fill_(3.5);
  BOOST_TEST((values(g) == std::vector<double>(6, 3.5)));
  BOOST_TEST(scalar_tensor(2.5, {.device = test_device()}).item() == 2.5);
  BOOST_TEST(zeros({0, 3}, {.device = test_device()}).cpu().numel() == 0);
  BOOST_TEST((values(zeros({4}, {.dtype = DType::f64, .device = test_device()})) == std::vector<double>(4, 0.0)));
  if (test_device().is_cuda()) {
    BOOST_TEST(g.to_string().find("cuda:0") != std::string::npos);
    BOOST_CHECK_THROW(zeros({2}).to(Device::cuda(1)), DeviceError);
  }
}

GPU_TEST_CASE(caching_allocator_reuses_device_blocks) {
  auto* alloc = dynamic_cast<CachingAllocator*>(&allocator_for(test_device()));
  BOOST_TEST_REQUIRE(alloc != nullptr);
  const Shape shape{1 << 20};  // 4 MiB of f32
  { Tensor warm = empty(shape, {.device = test_device()}); }
  const AllocatorStats before = alloc->stats();
  for (int i = 0; i < 10; ++i) {
    Tensor t = empty(shape, {.device = test_device()});
    BOOST_TEST(alloc->stats().in_use >= before.in_use + (std::size_t{4} << 20));
  }
  BOOST_TEST(alloc->stats().raw_allocations == before.raw_allocations);
  BOOST_TEST(alloc->stats().in_use == before.in_use);
  alloc->empty_cache();
  BOOST_TEST(alloc->stats().cached == 0u);
  { Tensor t = empty(shape, {.device = test_device()}); }
  BOOST_TEST(alloc->stats().raw_allocations == before.raw_allocations + 1);
}

GPU_TEST_CASE(binary_ops_broadcast_like_cpu) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 4}, {3, 4}},       {{3, 4}, {4}},          {{2, 1, 3}, {1, 4, 1}}, {{5, 1}, {1}},
      {{}, {2, 3}},           {{2, 3, 4, 5}, {3, 1, 5}}, {{4, 1}, {4, 6}},
      {{2, 1, 2, 1, 2, 1, 2}, {1, 2, 1, 2, 1, 2, 1}}, {{1000}, {1000}}};
  const std::vector<std::function<Tensor(const Tensor&, const Tensor&)>> ops = {
      [](const Tensor& a, const Tensor& b) { return tessera::add(a, b); },
      [](const Tensor& a, const Tensor& b) { return tessera::sub(a, b); },
      [](const Tensor& a, const Tensor& b) { return tessera::mul(a, b); },
      [](const Tensor& a, const Tensor& b) { return tessera::div(a, b); }};
  std::uint64_t seed = 10;
  for (const auto& [sa, sb] : cases) {
    const Tensor a = in(sa, seed++, 0.5, 1.5), b = in(sb, seed++, 0.5, 1.5);
    for (const auto& op : ops) {
      check_parity([&](const std::vector<Tensor>& x) { return op(x[0], x[1]); }, {a, b}, 1e-6, 1e-6);
      check_parity([&](const std::vector<Tensor>& x) { return op(x[1], x[0]); }, {a, b}, 1e-6, 1e-6);
    }
  }
}

GPU_TEST_CASE(unary_ops_and_derivatives_match_cpu) {
  // Every row of the unary table (ops/unary_ops.h), forward and derivative.
  std::uint64_t seed = 100;
  for (const test::UnaryCase& c : test::unary_cases()) {
    BOOST_TEST_CONTEXT("unary op " << c.name) {
      const Tensor x = test::unary_input(c, {7, 151}, seed++).detach();
      check_parity([&](const std::vector<Tensor>& v) { return unary(c.op, v[0], c.a, c.b); }, {x}, 2e-6, 2e-6);
      const Tensor dy = in({7, 151}, seed++);
      check_parity(
          [&](const std::vector<Tensor>& v) {
            Tensor dx = empty_like(v[0]);
            kernels::unary_backward(c.op, v[0], v[1], dx, c.a, c.b);
            return dx;
          },
          {x, dy}, 2e-5, 2e-6);
    }
  }
}

GPU_TEST_CASE(where_and_casts_match_cpu) {
  const Tensor a = in({3, 4}, 1), b = in({4}, 2);
  for (DType ct : {DType::f32, DType::f64, DType::i64, DType::bf16}) {
    const Tensor cond = from_vector<double>({1, 0, 2}, {3, 1}, {.dtype = ct});
    check_parity([](const std::vector<Tensor>& v) { return where(v[0], v[1], v[2]); }, {cond, a, b}, kExact32, 0);
  }
  const std::vector<double> vals = {-1.5, 0.0, 2.25, 1e10, 0.15625, 1.0 + 1.0 / 512, -7.75, 3.999, 65504.5, 1e-3};
  for (DType from : {DType::f32, DType::f64, DType::bf16, DType::i64})
    for (DType to : {DType::f32, DType::f64, DType::bf16, DType::i64}) {
      const Tensor x = from_vector<double>(vals, {2, 5}, {.dtype = from});
      const Tensor on_dev = dev(x).to(to);
      BOOST_TEST(on_dev.dtype() == to);
      BOOST_TEST(values(on_dev) == values(x.to(to)), "cast " << from << " -> " << to);
    }
}

GPU_TEST_CASE(in_place_updates_match_cpu) {
  const Tensor a = in({5, 33}, 3), b = in({5, 33}, 4);
  check_parity(
      [](const std::vector<Tensor>& v) {
        Tensor t = v[0].contiguous_copy();
        t.add_(v[1], -0.75);
        t.add_(v[1]);
        t.mul_(1.7);
        return t;
      },
      {a, b}, 1e-6, 1e-6);
}

GPU_TEST_CASE(matmul_covers_transposes_and_batch_broadcasting) {
  struct Case { Shape a, b; bool ta, tb; };
  const std::vector<Case> cases = {
      {{5, 7}, {7, 3}, false, false},         {{7, 5}, {7, 3}, true, false},
      {{5, 7}, {3, 7}, false, true},          {{7, 5}, {3, 7}, true, true},
      {{4, 5, 7}, {4, 7, 3}, false, false},   {{4, 5, 7}, {7, 3}, false, false},  // b shared: folded
      {{4, 7, 5}, {7, 3}, true, false},       {{5, 7}, {4, 7, 3}, false, false},  // a shared
      {{2, 1, 5, 7}, {1, 3, 7, 4}, false, false},  // mixed broadcasting: a host loop of GEMMs
      {{2, 3, 7, 5}, {3, 4, 7}, true, true},  {{1, 1, 5, 7}, {7, 2}, false, false},
      {{3, 0}, {0, 4}, false, false},         // K = 0: zeros
      {{64, 128}, {128, 96}, false, false},
  };
  std::uint64_t seed = 200;
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT("a " << shape_str(c.a) << (c.ta ? "^T" : "") << " b " << shape_str(c.b) << (c.tb ? "^T" : "")) {
      const Tensor a = in(c.a, seed++), b = in(c.b, seed++);
      check_parity([&](const std::vector<Tensor>& v) { return matmul(v[0], v[1], c.ta, c.tb); }, {a, b}, 1e-4,
                   1e-4);
    }
  }
}

GPU_TEST_CASE(linear_with_and_without_bias) {
  const Tensor x = in({2, 3, 8}, 1), w = in({5, 8}, 2), bias = in({5}, 3);
  check_parity([](const std::vector<Tensor>& v) { return linear(v[0], v[1], v[2]); }, {x, w, bias}, 1e-5, 1e-5);
  check_parity([](const std::vector<Tensor>& v) { return linear(v[0], v[1]); }, {x, w}, 1e-5, 1e-5);
  // The kernel itself (the op special-cases K = 0 before calling it): bias only, and zeros.
  for (bool with_bias : {true, false})
    check_parity(
        [with_bias](const std::vector<Tensor>& v) {
          Tensor out = empty({4, 3}, {.dtype = v[0].dtype(), .device = v[0].device()});
          kernels::linear(v[0], v[1], with_bias ? v[2] : Tensor(), out);
          return out;
        },
        {in({4, 0}, 4), in({3, 0}, 5), in({3}, 6)}, kExact32, 0);
}

GPU_TEST_CASE(reductions_match_cpu) {
  const Tensor x = in({4, 5, 6}, 7);
  const std::vector<std::vector<std::int64_t>> axes_list = {{}, {0}, {1}, {2}, {0, 2}, {1, 2}, {0, 1}};
  for (const auto& axes : axes_list)
    for (bool keep : {false, true}) {
      check_parity([&](const std::vector<Tensor>& v) { return sum(v[0], axes, keep); }, {x}, 1e-5, 1e-5);
      check_parity([&](const std::vector<Tensor>& v) { return mean(v[0], axes, keep); }, {x}, 1e-5, 1e-5);
      check_parity([&](const std::vector<Tensor>& v) { return max(v[0], axes, keep); }, {x}, kExact32, 0);
    }
  for (int axis = 0; axis < 3; ++axis)
    check_parity([&](const std::vector<Tensor>& v) { return argmax(v[0], axis); }, {x}, kExact32, 0);
  // Long sums split into chunks, a row sum wider than a block, a wide max group (a warp
  // per output), and the sum_to of broadcasting's backward.
  check_parity([](const std::vector<Tensor>& v) { return sum(v[0], {1}); }, {in({3, 5000, 2}, 8)}, 1e-4, 1e-4);
  check_parity([](const std::vector<Tensor>& v) { return sum(v[0], {0}); }, {in({70000, 3}, 9)}, 1e-4, 1e-4);
  check_parity([](const std::vector<Tensor>& v) { return sum(v[0], {1}); }, {in({200, 3000}, 10)}, 1e-4, 1e-4);
  check_parity([](const std::vector<Tensor>& v) { return sum(v[0]); }, {in({300000}, 15)}, 1e-4, 1e-3);
  check_parity([](const std::vector<Tensor>& v) { return max(v[0], {1}); }, {in({4, 100}, 11)}, kExact32, 0);
  check_parity([](const std::vector<Tensor>& v) { return argmax(v[0], 0); }, {in({100, 7}, 12)}, kExact32, 0);
  check_parity([](const std::vector<Tensor>& v) { return sum_to(v[0], {3, 1, 5}); }, {in({2, 3, 4, 5}, 13)}, 1e-5,
               1e-5);
  // Ties go to the first maximum, and NaN wins, as on the CPU.
  const Tensor ties = from_vector<double>({1, 3, 3, 2, 5, 5, 5, 0, 2, 2, 1, 2}, {3, 4}, {.dtype = DType::f64});
  check_parity([](const std::vector<Tensor>& v) { return argmax(v[0], 1); }, {ties}, kExact32, 0);
  check_parity([](const std::vector<Tensor>& v) { return argmax(v[0], 0); }, {ties}, kExact32, 0);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor with_nan = from_vector<double>({1, nan, 5, nan, 2, 3}, {2, 3}, {.dtype = DType::f64});
  check_parity([](const std::vector<Tensor>& v) { return max(v[0], {1}); }, {with_nan}, kExact32, 0);
  check_parity([](const std::vector<Tensor>& v) { return argmax(v[0], 1); }, {with_nan}, kExact32, 0);
  // squared_norm accumulates in double over many blocks.
  for (DType t : {DType::f32, DType::f64}) {
    const Tensor big = in({1000003}, 14).to(t);
    double want = 0;
    for (double v : values(big)) want += v * v;
    BOOST_TEST(optim::kernels::squared_norm(dev(big)) == want, boost::test_tools::tolerance(1e-9));
  }
  BOOST_TEST(optim::kernels::squared_norm(empty_on_dev({0}, DType::f32)) == 0.0);
}

GPU_TEST_CASE(shape_ops_match_cpu) {
  const Tensor x = in({2, 3, 4, 5}, 20);
  check_parity([](const std::vector<Tensor>& v) { return permute(v[0], {3, 1, 0, 2}); }, {x}, kExact32, 0);
  check_parity([](const std::vector<Tensor>& v) { return permute(v[0], {0, 2, 1, 3}); }, {x}, kExact32, 0);
  check_parity([](const std::vector<Tensor>& v) { return transpose(v[0], -1, -2); }, {x}, kExact32, 0);
  check_parity([](const std::vector<Tensor>& v) { return expand(v[0], {2, 3, 5, 4}); }, {in({3, 1, 4}, 21)}, kExact32, 0);
  check_parity([](const std::vector<Tensor>& v) { return concat({v[0], v[1], v[2]}, 1); },
               {in({2, 1, 4}, 22), in({2, 3, 4}, 23), in({2, 2, 4}, 24)}, kExact32, 0);
  check_parity([](const std::vector<Tensor>& v) { return concat({v[0], v[1]}, 0); },
               {in({1, 5}, 25), in({3, 5}, 26)}, kExact32, 0);
  check_parity([](const std::vector<Tensor>& v) { return slice(v[0], 2, 1, 4, 2); }, {x}, kExact32, 0);
  check_parity([](const std::vector<Tensor>& v) { return slice(v[0], -1, -4, 5, 3); }, {x}, kExact32, 0);
  check_parity([](const std::vector<Tensor>& v) { return slice(v[0], 0, 1, 2); }, {x}, kExact32, 0);
  const Tensor idx = from_vector<std::int64_t>({2, 0, 2, 1});
  check_parity([](const std::vector<Tensor>& v) { return index_select(v[0], 1, v[1]); }, {x, idx}, kExact32, 0);
  check_parity([](const std::vector<Tensor>& v) { return index_select(v[0], 3, v[1]); }, {x, idx}, kExact32, 0);
  Generator gen(5);
  const Tensor gidx = randint({2, 6, 4, 5}, 3, gen);
  check_parity([](const std::vector<Tensor>& v) { return gather(v[0], 1, v[1]); }, {x, gidx}, kExact32, 0);
  const Tensor gidx0 = randint({4, 3, 4, 5}, 2, gen);
  check_parity([](const std::vector<Tensor>& v) { return gather(v[0], 0, v[1]); }, {x, gidx0}, kExact32, 0);
  // The copies are dtype-agnostic: i64 and bf16 move bit for bit.
  const Tensor xi = randint({3, 4, 5}, 1000, gen), xb = x.detach().to(DType::bf16);
  BOOST_TEST(values(permute(dev(xi), {2, 0, 1})) == values(permute(xi, {2, 0, 1})));
  BOOST_TEST(values(slice(dev(xi), 1, 1, 4, 2)) == values(slice(xi, 1, 1, 4, 2)));
  BOOST_TEST(values(permute(dev(xb), {1, 3, 0, 2})) == values(permute(xb, {1, 3, 0, 2})));
  BOOST_TEST(values(expand(dev(xb.reshape({2, 3, 20})).unsqueeze(0), {2, 2, 3, 20})) ==
             values(expand(xb.reshape({2, 3, 20}).unsqueeze(0), {2, 2, 3, 20})));
}

GPU_TEST_CASE(scatter_kernels_accumulate_repeated_indices) {
  const Tensor base = in({3, 4, 5}, 30);
  const Tensor rep = from_vector<std::int64_t>({1, 3, 1, 1, 0, 3});
  // index_add along axis 1: src (3, 6, 5)
  check_parity(
      [](const std::vector<Tensor>& v) {
        Tensor out = v[0].contiguous_copy();
        kernels::index_add(v[1], 1, v[2], out);
        return out;
      },
      {base, in({3, 6, 5}, 31), rep}, 1e-6, 1e-6);
  // scatter_add along axis 2: index (3, 4, 7) into size 5
  Generator gen(9);
  check_parity(
      [](const std::vector<Tensor>& v) {
        Tensor out = v[0].contiguous_copy();
        kernels::scatter_add(v[1], 2, v[2], out);
        return out;
      },
      {base, in({3, 4, 7}, 32), randint({3, 4, 7}, 5, gen)}, 1e-6, 1e-6);
  // scatter_add_flat: dst.flat[index[i]] += src[i]
  check_parity(
      [](const std::vector<Tensor>& v) {
        Tensor out = v[0].contiguous_copy();
        kernels::scatter_add_flat(out, v[2], v[1]);
        return out;
      },
      {base, in({500}, 33), randint({500}, 60, gen)}, 1e-5, 1e-5);
  // slice_assign, accumulating into every other row, and plain
  for (bool accumulate : {true, false})
    check_parity(
        [accumulate](const std::vector<Tensor>& v) {
          Tensor out = v[0].contiguous_copy();
          kernels::slice_assign(v[1], 1, 1, 2, out, accumulate);
          return out;
        },
        {base, in({3, 2, 5}, 34)}, 1e-6, 1e-6);
}

// ---------------------------------------------------------------- families without CPU ops yet:
// checked against reference loops in f64

namespace {

std::vector<double> softmax_ref(const std::vector<double>& x, Axis3 v, bool log) {
  std::vector<double> y(x.size());
  for (std::int64_t a = 0; a < v.A; ++a)
    for (std::int64_t b = 0; b < v.B; ++b) {
      auto at = [&](std::int64_t l) { return (a * v.L + l) * v.B + b; };
      double m = -std::numeric_limits<double>::infinity(), s = 0;
      for (std::int64_t l = 0; l < v.L; ++l) m = std::max(m, x[at(l)]);
      for (std::int64_t l = 0; l < v.L; ++l) s += std::exp(x[at(l)] - m);
      for (std::int64_t l = 0; l < v.L; ++l)
        y[at(l)] = log ? x[at(l)] - m - std::log(s) : std::exp(x[at(l)] - m) / s;
    }
  return y;
}

std::vector<double> softmax_backward_ref(const std::vector<double>& y, const std::vector<double>& dy, Axis3 v,
                                         bool log) {
  std::vector<double> dx(y.size());
  for (std::int64_t a = 0; a < v.A; ++a)
    for (std::int64_t b = 0; b < v.B; ++b) {
      auto at = [&](std::int64_t l) { return (a * v.L + l) * v.B + b; };
      double s = 0;
      for (std::int64_t l = 0; l < v.L; ++l) s += log ? dy[at(l)] : dy[at(l)] * y[at(l)];
      for (std::int64_t l = 0; l < v.L; ++l)
        dx[at(l)] = log ? dy[at(l)] - std::exp(y[at(l)]) * s : y[at(l)] * (dy[at(l)] - s);
    }
  return dx;
}

}  // namespace

GPU_TEST_CASE(softmax_and_cross_entropy_stay_exact_far_from_zero) {
  // The CPU's regression (tests/test_parity.cpp) on the device: x = 1e4 + N(0, 1), both axes;
  // the reference reads the same f32 values.
  Generator g(5);
  const Tensor x = (randn({9, 4}, {.dtype = DType::f64}, g) + 1e4).to(DType::f32);
  const Tensor ref = x.to(DType::f64);
  for (const std::int64_t axis : {0, 1}) {
    test::check_close(host(log_softmax(dev(x), axis)), log_softmax(ref, axis), 1e-5, 1e-6);
    test::check_close(host(softmax(dev(x), axis)), softmax(ref, axis), 1e-5, 1e-7);
  }
  const Tensor target = from_vector<std::int64_t>({0, 3, 1, 2, 2, 0, 1, 3, 0}, {9});
  const CrossEntropyOptions o{.reduction = Reduction::none, .label_smoothing = 0.1};
  test::check_close(host(cross_entropy(dev(x), dev(target), o)), cross_entropy(ref, target, o), 1e-5, 1e-5);
}

GPU_TEST_CASE(softmax_and_log_softmax_match_reference) {
  struct Case { Shape shape; int axis; };
  const std::vector<Case> cases = {{{3, 4, 50}, 2}, {{3, 4, 50}, 1}, {{3, 4, 50}, 0}, {{2, 3000}, 1},
                                   {{7, 3}, 0},     {{5, 1}, 1},     {{4, 10}, -1}};
  std::uint64_t seed = 40;
  for (const Case& c : cases)
    for (bool log : {false, true})
      for (DType t : {DType::f32, DType::f64}) {
        BOOST_TEST_CONTEXT(shape_str(c.shape) << " axis " << c.axis << (log ? " log" : "") << " " << t) {
          const Tensor x = in(c.shape, seed++, -4, 4), dy = in(c.shape, seed++);
          const Axis3 v = axis3(c.shape, normalize_axis(c.axis, static_cast<std::int64_t>(c.shape.size()), "test"));
          const std::vector<double> y_ref = softmax_ref(values(x), v, log);
          const Tensor xg = dev(x.to(t)), dyg = dev(dy.to(t));
          Tensor yg = empty_on_dev(c.shape, t), dxg = empty_on_dev(c.shape, t);
          kernels::softmax_forward(xg, c.axis, log, yg);
          const Tol tol = tol_for(t, {1e-5, 1e-6});
          check_values(yg, y_ref, c.shape, tol.rtol, tol.atol);
          kernels::softmax_backward(yg, dyg, c.axis, log, dxg);
          check_values(dxg, softmax_backward_ref(values(yg), values(dy.to(t)), v, log), c.shape, tol.rtol,
                       tol.atol);
        }
      }
}

GPU_TEST_CASE(layer_norm_matches_reference) {
  struct Case { Shape shape; bool affine; };
  const std::vector<Case> cases = {{{6, 37}, true}, {{2, 3, 300}, true}, {{4, 16}, false},
                                   {{5000, 8}, true}, {{3, 2000}, true}};
  const double eps = 1e-5;
  std::uint64_t seed = 60;
  for (const Case& c : cases)
    for (DType t : {DType::f32, DType::f64}) {
      BOOST_TEST_CONTEXT(shape_str(c.shape) << (c.affine ? " affine " : " plain ") << t) {
        const std::int64_t D = c.shape.back(), rows = shape_numel(c.shape) / D;
        const Tensor x = in(c.shape, seed++, -2, 3).to(t), dy = in(c.shape, seed++).to(t);
        const Tensor w = in({D}, seed++, 0.5, 1.5).to(t), b = in({D}, seed++).to(t);
        const std::vector<double> xv = values(x), dyv = values(dy);
        const std::vector<double> wv = c.affine ? values(w) : std::vector<double>(D, 1.0);
        const std::vector<double> bv = c.affine ? values(b) : std::vector<double>(D, 0.0);
        std::vector<double> y(xv.size()), mean(rows), rstd(rows), dx(xv.size()), dw(D, 0.0), db(D, 0.0);
        for (std::int64_t r = 0; r < rows; ++r) {
          const double* xr = &xv[r * D];
          double mu = 0, var = 0;
          for (std::int64_t j = 0; j < D; ++j) mu += xr[j];
          mu /= D;
          for (std::int64_t j = 0; j < D; ++j) var += (xr[j] - mu) * (xr[j] - mu);
          var /= D;
          const double rs = 1.0 / std::sqrt(var + eps);
          mean[r] = mu;
          rstd[r] = rs;
          double c1 = 0, c2 = 0;
          for (std::int64_t j = 0; j < D; ++j) {
            const double xhat = (xr[j] - mu) * rs, g = dyv[r * D + j] * wv[j];
            y[r * D + j] = xhat * wv[j] + bv[j];
            c1 += g;
            c2 += g * xhat;
            dw[j] += dyv[r * D + j] * xhat;
            db[j] += dyv[r * D + j];
          }
          c1 /= D;
          c2 /= D;
          for (std::int64_t j = 0; j < D; ++j) {
            const double xhat = (xr[j] - mu) * rs, g = dyv[r * D + j] * wv[j];
            dx[r * D + j] = rs * (g - c1 - xhat * c2);
          }
        }
        const Tensor xg = dev(x), dyg = dev(dy);
        const Tensor wg = c.affine ? dev(w) : Tensor(), bg = c.affine ? dev(b) : Tensor();
        Tensor yg = empty_on_dev(c.shape, t), mg = empty_on_dev({rows}, t), rg = empty_on_dev({rows}, t);
        kernels::layer_norm_forward(xg, wg, bg, eps, yg, mg, rg);
        const Tol tol = tol_for(t, {1e-4, 1e-5});
        check_values(yg, y, c.shape, tol.rtol, tol.atol);
        check_values(mg, mean, {rows}, tol.rtol, tol.atol);
        check_values(rg, rstd, {rows}, tol.rtol, tol.atol);
        Tensor dxg = empty_on_dev(c.shape, t);
        Tensor dwg = c.affine ? empty_on_dev({D}, t) : Tensor(), dbg = c.affine ? empty_on_dev({D}, t) : Tensor();
        kernels::layer_norm_backward(xg, wg, mg, rg, dyg, eps, dxg, dwg, dbg);
        const Tol sums = tol_for(t, {1e-4, 1e-4});  // dw, db sum over up to 5000 rows
        check_values(dxg, dx, c.shape, tol.rtol, tol.atol);
        if (c.affine) {
          check_values(dwg, dw, {D}, sums.rtol, sums.atol);
          check_values(dbg, db, {D}, sums.rtol, sums.atol);
        }
      }
    }
}

namespace {

struct ConvCase {
  std::int64_t B, C, H, W, O, KH, KW;
  Conv2dOptions opts;
  bool bias;
};

struct ConvRef { std::vector<double> y, dx, dw, db; Shape y_shape; };

ConvRef conv_ref(const ConvCase& c, const std::vector<double>& x, const std::vector<double>& w,
                 const std::vector<double>& bias, const std::vector<double>& dy_in, bool with_dy) {
  const auto& o = c.opts;
  const std::int64_t OH = (c.H + 2 * o.pad_h - c.KH) / o.stride_h + 1;
  const std::int64_t OW = (c.W + 2 * o.pad_w - c.KW) / o.stride_w + 1;
  ConvRef r;
  r.y_shape = {c.B, c.O, OH, OW};
  r.y.assign(c.B * c.O * OH * OW, 0.0);
  r.dx.assign(x.size(), 0.0);
  r.dw.assign(w.size(), 0.0);
  r.db.assign(c.O, 0.0);
  for (std::int64_t b = 0; b < c.B; ++b)
    for (std::int64_t oc = 0; oc < c.O; ++oc)
      for (std::int64_t oh = 0; oh < OH; ++oh)
        for (std::int64_t ow = 0; ow < OW; ++ow) {
          const std::int64_t yi = ((b * c.O + oc) * OH + oh) * OW + ow;
          double acc = c.bias ? bias[oc] : 0.0;
          const double g = with_dy ? dy_in[yi] : 0.0;
          r.db[oc] += g;
          for (std::int64_t ch = 0; ch < c.C; ++ch)
            for (std::int64_t kh = 0; kh < c.KH; ++kh)
              for (std::int64_t kw = 0; kw < c.KW; ++kw) {
                const std::int64_t h = oh * o.stride_h - o.pad_h + kh, ww = ow * o.stride_w - o.pad_w + kw;
                if (h < 0 || h >= c.H || ww < 0 || ww >= c.W) continue;
                const std::int64_t xi = ((b * c.C + ch) * c.H + h) * c.W + ww;
                const std::int64_t wi = ((oc * c.C + ch) * c.KH + kh) * c.KW + kw;
                acc += x[xi] * w[wi];
                r.dx[xi] += g * w[wi];
                r.dw[wi] += g * x[xi];
              }
          r.y[yi] = acc;
        }
  return r;
}

}  // namespace

GPU_TEST_CASE(conv2d_matches_reference) {
  const std::vector<ConvCase> cases = {
      {2, 3, 7, 6, 4, 3, 2, {.stride_h = 2, .stride_w = 1, .pad_h = 1, .pad_w = 0}, true},
      {3, 5, 6, 6, 4, 1, 1, {}, true},                                    // pointwise: no im2col
      {2, 3, 8, 8, 6, 4, 4, {.stride_h = 4, .stride_w = 4}, false},       // patch embedding
      {1, 2, 9, 7, 3, 3, 3, {.stride_h = 3, .stride_w = 2, .pad_h = 2, .pad_w = 2}, true},
      {4, 1, 28, 28, 8, 3, 3, {.pad_h = 1, .pad_w = 1}, true},
  };
  std::uint64_t seed = 80;
  for (const ConvCase& c : cases)
    for (DType t : {DType::f32, DType::f64}) {
      BOOST_TEST_CONTEXT("x (" << c.B << "," << c.C << "," << c.H << "," << c.W << ") w (" << c.O << "," << c.C
                               << "," << c.KH << "," << c.KW << ") " << t) {
        const Tensor x = in({c.B, c.C, c.H, c.W}, seed++).to(t), w = in({c.O, c.C, c.KH, c.KW}, seed++).to(t);
        const Tensor bias = in({c.O}, seed++).to(t);
        ConvRef probe = conv_ref(c, values(x), values(w), values(bias), {}, false);
        const Tensor dy = in(probe.y_shape, seed++).to(t);
        const ConvRef r = conv_ref(c, values(x), values(w), values(bias), values(dy), true);
        const Tensor xg = dev(x), wg = dev(w), bg = c.bias ? dev(bias) : Tensor(), dyg = dev(dy);
        Tensor yg = empty_on_dev(r.y_shape, t);
        kernels::conv2d_forward(xg, wg, bg, c.opts, yg);
        const Tol tol = tol_for(t, {1e-4, 1e-5});
        check_values(yg, r.y, r.y_shape, tol.rtol, tol.atol);
        Tensor dxg = empty_on_dev(x.shape(), t);
        kernels::conv2d_backward_data(wg, dyg, c.opts, dxg);
        check_values(dxg, r.dx, x.shape(), tol.rtol, tol.atol);
        Tensor dwg = empty_on_dev(w.shape(), t), dbg = empty_on_dev({c.O}, t), none;
        kernels::conv2d_backward_weights(xg, dyg, c.opts, dwg, dbg);
        const Tol sums = tol_for(t, {1e-4, 1e-4});
        check_values(dwg, r.dw, w.shape(), sums.rtol, sums.atol);
        check_values(dbg, r.db, {c.O}, sums.rtol, sums.atol);
        dwg.fill_(0.0);
        kernels::conv2d_backward_weights(xg, dyg, c.opts, dwg, none);  // db is optional
        check_values(dwg, r.dw, w.shape(), sums.rtol, sums.atol);
      }
    }
}

GPU_TEST_CASE(dropout_draws_the_shared_mask) {
  const std::int64_t n = 10007;
  const std::uint64_t seed = 123, offset = 77;
  for (DType t : {DType::f32, DType::f64})
    for (double p : {0.0, 0.3, 0.9, 1.0}) {
      BOOST_TEST_CONTEXT("p = " << p << " " << t) {
        const Tensor x = in({n}, 90, 0.5, 1.5).to(t);
        Tensor out = empty_on_dev({n}, t);
        kernels::dropout(dev(x), p, seed, offset, out);
        const std::vector<double> xv = values(x), got = values(out);
        const std::uint32_t threshold = dropout_threshold(p);
        std::int64_t kept = 0, wrong = 0;
        for (std::int64_t i = 0; i < n; ++i) {
          const bool keep = dropout_keep(seed, offset + static_cast<std::uint64_t>(i), threshold);
          kept += keep;
          const double want = keep ? xv[i] / (1.0 - p) : 0.0;
          if (keep != (got[i] != 0.0) || std::abs(got[i] - want) > 1e-6 * std::abs(want)) ++wrong;
        }
        BOOST_TEST(wrong == 0);
        // Sanity of the rule itself: about 1 - p of the elements survive (5 sigma).
        const double sigma = std::sqrt(n * p * (1 - p));
        BOOST_TEST(std::abs(static_cast<double>(kept) - n * (1 - p)) <= 5 * sigma + 1e-9);
      }
    }
}

GPU_TEST_CASE(cross_entropy_matches_reference) {
  struct Case { std::int64_t N, C; double smoothing; std::int64_t ignore_index; };
  const std::vector<Case> cases = {{7, 11, 0.0, -100}, {7, 11, 0.1, -100}, {6, 1000, 0.2, 3}, {5, 2, 0.0, 1}};
  std::uint64_t seed = 100;
  for (const Case& c : cases)
    for (DType t : {DType::f32, DType::f64}) {
      BOOST_TEST_CONTEXT("N " << c.N << " C " << c.C << " smoothing " << c.smoothing << " " << t) {
        const Tensor logits = in({c.N, c.C}, seed++, -3, 3).to(t), dloss = in({c.N}, seed++).to(t);
        Generator gen(seed++);
        std::vector<std::int64_t> target = randint({c.N}, c.C, gen).to_vector<std::int64_t>();
        target[1] = c.ignore_index;  // one ignored row
        if (c.ignore_index >= 0) target[2] = c.ignore_index;
        const std::vector<double> x = values(logits), g = values(dloss);
        std::vector<double> loss(c.N, 0.0), dlogits(c.N * c.C, 0.0);
        for (std::int64_t r = 0; r < c.N; ++r) {
          if (target[r] == c.ignore_index) continue;
          const double* xr = &x[r * c.C];
          double m = -std::numeric_limits<double>::infinity(), s = 0, sx = 0;
          for (std::int64_t k = 0; k < c.C; ++k) m = std::max(m, xr[k]);
          for (std::int64_t k = 0; k < c.C; ++k) {
            s += std::exp(xr[k] - m);
            sx += xr[k];
          }
          const double lse = m + std::log(s);
          loss[r] = (1 - c.smoothing) * (lse - xr[target[r]]) + c.smoothing * (lse - sx / c.C);
          for (std::int64_t k = 0; k < c.C; ++k)
            dlogits[r * c.C + k] = g[r] * (std::exp(xr[k] - lse) - (k == target[r] ? 1 - c.smoothing : 0.0) -
                                           c.smoothing / c.C);
        }
        const Tensor tgt = from_vector<std::int64_t>(target);
        Tensor lg = empty_on_dev({c.N}, t), dg = empty_on_dev({c.N, c.C}, t);
        kernels::cross_entropy_forward(dev(logits), dev(tgt), c.smoothing, c.ignore_index, lg);
        const Tol tol = tol_for(t, {1e-5, 1e-5});
        check_values(lg, loss, {c.N}, tol.rtol, tol.atol);
        // A target left on the host is accepted too.
        kernels::cross_entropy_backward(dev(logits), tgt, dev(dloss), c.smoothing, c.ignore_index, dg);
        check_values(dg, dlogits, {c.N, c.C}, tol.rtol, tol.atol);
      }
    }
}

GPU_TEST_CASE(optimizer_updates_match_reference) {
  // 40 tensors (more than one launch's worth), one empty, one without a gradient.
  std::vector<Shape> shapes;
  for (int i = 0; i < 38; ++i) shapes.push_back({1 + (i * 7) % 13, 3});
  shapes.push_back({0});
  shapes.push_back({5000});
  for (DType t : {DType::f32, DType::f64})
    for (int variant = 0; variant < 4; ++variant) {
      BOOST_TEST_CONTEXT("variant " << variant << " " << t) {
        std::uint64_t seed = 500;
        std::vector<Tensor> p, g, m, v, buf;
        std::vector<std::vector<double>> rp, rm, rv, rg;
        for (std::size_t k = 0; k < shapes.size(); ++k) {
          const Tensor pk = in(shapes[k], seed++).to(t), gk = in(shapes[k], seed++).to(t);
          p.push_back(dev(pk));
          g.push_back(k == 5 ? Tensor() : dev(gk));  // tensor 5 has no gradient: left alone
          m.push_back(zeros(shapes[k], {.dtype = t, .device = test_device()}));
          v.push_back(zeros(shapes[k], {.dtype = t, .device = test_device()}));
          buf.push_back(zeros(shapes[k], {.dtype = t, .device = test_device()}));
          rp.push_back(values(pk));
          rg.push_back(values(gk));
          rm.emplace_back(pk.numel(), 0.0);
          rv.emplace_back(pk.numel(), 0.0);
        }
        for (int step = 1; step <= 3; ++step) {
          if (variant < 2) {  // Adam (L2) and AdamW (decoupled)
            const bool decoupled = variant == 1;
            const optim::AdamUpdate u{.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.05,
                               .decoupled = decoupled, .bias_correction1 = 1 - std::pow(0.9, step),
                               .bias_correction2 = 1 - std::pow(0.999, step)};
            optim::kernels::adam_update(p, g, m, v, u);
            for (std::size_t k = 0; k < shapes.size(); ++k) {
              if (k == 5) continue;
              for (std::size_t j = 0; j < rp[k].size(); ++j) {
                double gr = rg[k][j], pv = rp[k][j];
                if (decoupled) pv *= 1 - u.lr * u.weight_decay;
                else gr += u.weight_decay * pv;
                rm[k][j] = u.beta1 * rm[k][j] + (1 - u.beta1) * gr;
                rv[k][j] = u.beta2 * rv[k][j] + (1 - u.beta2) * gr * gr;
                const double denom = std::sqrt(rv[k][j]) / std::sqrt(u.bias_correction2) + u.eps;
                rp[k][j] = pv - u.lr / u.bias_correction1 * rm[k][j] / denom;
              }
            }
          } else {  // SGD with momentum and dampening, plain and Nesterov
            const optim::SgdUpdate u{.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01,
                              .nesterov = variant == 3, .first_step = step == 1};
            optim::kernels::sgd_update(p, g, buf, u);
            for (std::size_t k = 0; k < shapes.size(); ++k) {
              if (k == 5) continue;
              for (std::size_t j = 0; j < rp[k].size(); ++j) {
                double gr = rg[k][j] + u.weight_decay * rp[k][j];
                rm[k][j] = u.first_step ? gr : u.momentum * rm[k][j] + (1 - u.dampening) * gr;
                gr = u.nesterov ? gr + u.momentum * rm[k][j] : rm[k][j];
                rp[k][j] -= u.lr * gr;
              }
            }
          }
        }
        const Tol tol = tol_for(t, {1e-5, 1e-5});
        for (std::size_t k = 0; k < shapes.size(); ++k) {
          check_values(p[k], rp[k], shapes[k], tol.rtol, tol.atol);
          if (variant < 2) {
            check_values(m[k], rm[k], shapes[k], tol.rtol, tol.atol);
            check_values(v[k], rv[k], shapes[k], tol.rtol, tol.atol);
          } else {
            check_values(buf[k], rm[k], shapes[k], tol.rtol, tol.atol);
          }
        }
      }
    }
  // Momentum 0: no buffers needed.
  std::vector<Tensor> p = {dev(in({4}, 1))}, g = {dev(in({4}, 2))};
  const std::vector<double> p0 = values(p[0]), g0 = values(g[0]);
  optim::kernels::sgd_update(p, g, {}, optim::SgdUpdate{.lr = 0.5, .momentum = 0, .dampening = 0, .weight_decay = 0,
                                          .nesterov = false, .first_step = true});
  std::vector<double> want(4);
  for (int j = 0; j < 4; ++j) want[j] = p0[j] - 0.5 * g0[j];
  check_values(p[0], want, {4}, 1e-12, 1e-12);
}

// ---------------------------------------------------------------- pooling and batch norm

namespace {

// Runs f on CPU f64 inputs (the reference) and on the device in f64 and f32, each with fresh
// leaves (requires_grad as the reference input has it), backpropagates the same dy, and
// compares outputs and gradients: f64 near-exact, f32 within tol32 (values) and grad32.
void check_with_gradients(const OpFn& f, const std::vector<Tensor>& inputs, Tol tol32, Tol grad32) {
  auto leaves = [&](DType t, Device d) {
    std::vector<Tensor> out;
    for (const Tensor& x : inputs) {
      Tensor c = x.detach().to(t).to(d).contiguous_copy();
      if (x.requires_grad()) c.set_requires_grad(true);
      out.push_back(c);
    }
    return out;
  };
  const std::vector<Tensor> ref_in = leaves(DType::f64, Device::cpu());
  const Tensor ref = f(ref_in);
  Generator g(7);
  const Tensor dy = randn(ref.shape(), {.dtype = DType::f64}, g);
  backward(ref, dy);
  for (DType t : {DType::f64, DType::f32}) {
    BOOST_TEST_CONTEXT(t) {
      const Tol tol = tol_for(t, tol32), gtol = tol_for(t, grad32);
      const std::vector<Tensor> in = leaves(t, test_device());
      const Tensor y = f(in);
      BOOST_TEST(y.device() == test_device());
      BOOST_TEST(y.dtype() == t);
      test::check_close(host(y), ref.detach(), tol.rtol, tol.atol);
      backward(y, dev(dy.to(t)));
      for (std::size_t i = 0; i < in.size(); ++i) {
        if (!in[i].requires_grad()) continue;
        BOOST_TEST_CONTEXT("gradient of input " << i) {
          BOOST_TEST_REQUIRE(in[i].grad().defined());
          test::check_close(host(in[i].grad()), ref_in[i].grad(), gtol.rtol, gtol.atol);
        }
      }
    }
  }
}

Tensor with_grad(Tensor t) { return t.set_requires_grad(true); }

}  // namespace

GPU_TEST_CASE(pooling_matches_cpu) {
  struct Case { Shape x; Pool2dOptions o; };
  const std::vector<Case> cases = {
      {{4, 16, 32, 32}, {.kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1}},
      {{2, 3, 8, 8}, {}},
      {{2, 4, 9, 7}, {.kernel_h = 3, .kernel_w = 2, .stride_h = 1, .stride_w = 2, .pad_h = 1, .pad_w = 0}},
      {{1, 3, 10, 6}, {.kernel_h = 4, .kernel_w = 3, .stride_h = 3, .stride_w = 2, .pad_h = 2, .pad_w = 1}},
      {{3, 5, 1, 1}, {.kernel_h = 1, .kernel_w = 1, .stride_h = 1, .stride_w = 1}},
      {{2, 2, 1, 1}, {.kernel_h = 2, .kernel_w = 2, .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1}}};
  std::uint64_t seed = 900;
  for (const Case& c : cases)
    BOOST_TEST_CONTEXT("x " << shape_str(c.x) << " kernel " << c.o.kernel_h << "x" << c.o.kernel_w << " stride "
                            << c.o.stride_h << "," << c.o.stride_w << " pad " << c.o.pad_h << "," << c.o.pad_w) {
      // Continuous random values: no ties; all negative: the padding must never win.
      for (double low : {-1.0, -3.0})
        check_with_gradients([&](const std::vector<Tensor>& v) { return max_pool2d(v[0], c.o); },
                             {with_grad(in(c.x, seed++, low, low + 2.0))}, {1e-6, 1e-6}, {1e-6, 1e-6});
      for (bool include_pad : {true, false}) {
        Pool2dOptions o = c.o;
        o.count_include_pad = include_pad;
        BOOST_TEST_CONTEXT("avg, count_include_pad " << include_pad) {
          check_with_gradients([&](const std::vector<Tensor>& v) { return avg_pool2d(v[0], o); },
                               {with_grad(in(c.x, seed++))}, {1e-5, 1e-6}, {1e-5, 1e-6});
        }
      }
    }
  // Ties: the whole gradient of a window goes to its first maximum, as on the CPU.
  const std::vector<double> plateau{1, 2, 2, 0, 2, 2, 1, 2, 0, 1, 2, 2};
  for (DType t : {DType::f32, DType::f64}) {
    Tensor x = dev(from_vector(plateau, {1, 1, 3, 4}, {.dtype = DType::f64}).to(t));
    x.set_requires_grad(true);
    backward(sum(max_pool2d(x, {.kernel_h = 2, .kernel_w = 2, .stride_h = 1, .stride_w = 2})));
    BOOST_TEST(values(x.grad()) == std::vector<double>({0, 1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0}),
               boost::test_tools::per_element());
  }
}

GPU_TEST_CASE(batch_norm_matches_cpu) {
  struct Case { Shape x; bool training, weight, bias; };
  const std::vector<Case> cases = {{{8, 16, 10, 10}, true, true, true}, {{8, 16, 10, 10}, false, true, true},
                                   {{64, 4, 32, 32}, true, true, true}, // 65536 values per channel
                                   {{32, 12}, true, false, false},     {{5, 7, 33}, true, true, false},
                                   {{5, 7, 33}, true, false, true},    {{5, 7, 33}, false, false, true},
                                   {{2, 3, 1, 1}, true, true, true},   {{1, 4, 3, 1}, false, true, false}};
  std::uint64_t seed = 950;
  for (const Case& c : cases)
    BOOST_TEST_CONTEXT("x " << shape_str(c.x) << (c.training ? " training" : " eval") << " weight " << c.weight
                            << " bias " << c.bias) {
      const std::int64_t C = c.x[1];
      std::vector<Tensor> inputs{with_grad(in(c.x, seed++, -2, 3)), in({C}, seed++, -0.5, 0.5),
                                 in({C}, seed++, 0.3, 2.0)};
      if (c.weight) inputs.push_back(with_grad(in({C}, seed++, 0.5, 1.5)));
      if (c.bias) inputs.push_back(with_grad(in({C}, seed++)));
      check_with_gradients([&](const std::vector<Tensor>& v) {
        const Tensor w = c.weight ? v[3] : Tensor(), b = c.bias ? v[c.weight ? 4 : 3] : Tensor();
        return batch_norm(v[0], w, b, v[1].contiguous_copy(), v[2].contiguous_copy(), c.training);
      }, inputs, {1e-4, 1e-5}, {1e-4, 1e-4});
    }
  // Values far from zero: the statistics must keep the digits of x - mean (see the CPU parity
  // test; the bound is f32's own rounding of the mean).
  Generator g(5);
  const Tensor far = (randn({16, 4, 8, 8}, {.dtype = DType::f64}, g) + 1e4).to(DType::f32).to(DType::f64);
  check_with_gradients([](const std::vector<Tensor>& v) { return batch_norm(v[0], {}, {}, {}, {}, true); },
                       {with_grad(far)}, {1e-3, 1e-3}, {1e-3, 1e-3});
  // The running statistics, updated in place on the device (unbiased variance).
  const Tensor x = in({6, 4, 5}, 990, -2, 3);
  Tensor rm = in({4}, 991), rv = in({4}, 992, 0.5, 1.5);
  for (DType t : {DType::f32, DType::f64}) {
    Tensor dm = dev(rm.to(t)).contiguous_copy(), dv = dev(rv.to(t)).contiguous_copy();  // rm, rv stay
    for (int step = 0; step < 3; ++step) batch_norm(dev(x.to(t)), {}, {}, dm, dv, true, 0.2);
    Tensor cm = rm.contiguous_copy(), cv = rv.contiguous_copy();
    for (int step = 0; step < 3; ++step) batch_norm(x, {}, {}, cm, cv, true, 0.2);
    BOOST_TEST(dm.device() == test_device());
    const Tol tol = tol_for(t, {1e-5, 1e-6});
    test::check_close(host(dm), cm, tol.rtol, tol.atol);
    test::check_close(host(dv), cv, tol.rtol, tol.atol);
  }
  // Mixed devices are refused by name.
  if (test_device().is_cuda()) {
    BOOST_CHECK_THROW(batch_norm(dev(in({4, 3}, 993)), in({3}, 994), {}, {}, {}, true), DeviceError);
    BOOST_CHECK_THROW(batch_norm(dev(in({4, 3}, 995)), {}, {}, in({3}, 996), in({3}, 997, 0.5, 1), false),
                      DeviceError);
  }
}

// ---------------------------------------------------------------- gradients on the device

GPU_TEST_CASE(gradients_through_the_device_match_finite_differences) {
  const auto on = [](const Tensor& t) { return t.to(test_device()); };
  const auto back = [](const Tensor& t) { return t.to(Device::cpu()); };
  test::check_gradients([&](const std::vector<Tensor>& v) { return back(matmul(on(v[0]), on(v[1]))); },
                        {test::input({2, 3, 4}, 1), test::input({4, 5}, 2)});
  test::check_gradients([&](const std::vector<Tensor>& v) { return back(matmul(on(v[0]), on(v[1]), true, true)); },
                        {test::input({2, 1, 4, 3}, 3), test::input({3, 5, 4}, 4)});
  test::check_gradients([&](const std::vector<Tensor>& v) { return back(linear(on(v[0]), on(v[1]), on(v[2]))); },
                        {test::input({3, 4}, 5), test::input({5, 4}, 6), test::input({5}, 7)});
  test::check_gradients([&](const std::vector<Tensor>& v) { return back(on(v[0]) * on(v[1]) / on(v[2])); },
                        {test::input({3, 4}, 8), test::input({4}, 9), test::input({3, 1}, 10, 0.5, 1.5)});
  test::check_gradients(
      [&](const std::vector<Tensor>& v) { return back(sigmoid(gelu(on(v[0]))) + tessera::tanh(on(v[0]))); },
      {test::input({3, 5}, 11)});
  test::check_gradients(
      [&](const std::vector<Tensor>& v) {
        const Tensor x = on(v[0]);
        return back(concat({sum(x, {1}, true), mean(x, {1}, true), max(x, {1}, true)}, 1));
      },
      {test::input({4, 6}, 12)});
  test::check_gradients(
      [&](const std::vector<Tensor>& v) {
        const Tensor x = on(v[0]);
        const Tensor idx = from_vector<std::int64_t>({2, 0, 2}).to(test_device());
        return back(concat({slice(permute(x, {1, 0, 2}), 0, 0, 3, 2).reshape({-1}),
                            index_select(x, 2, idx).reshape({-1}), expand(x, {2, 2, 3, 4}).reshape({-1})},
                           0));
      },
      {test::input({2, 3, 4}, 13)});
  Generator gen(3);
  const Tensor gidx = randint({2, 5}, 4, gen).to(test_device());
  test::check_gradients([&](const std::vector<Tensor>& v) { return back(gather(on(v[0]), 1, gidx)); },
                        {test::input({2, 4}, 14)});
  const Tensor cond = from_vector<double>({1, 0, 1, 0}, {4, 1}, {.dtype = DType::f64}).to(test_device());
  test::check_gradients([&](const std::vector<Tensor>& v) { return back(where(cond, on(v[0]), on(v[1]))); },
                        {test::input({4, 3}, 15), test::input({3}, 16)});
}

GPU_TEST_CASE(f32_gradients_on_the_device_match_cpu_f64) {
  // A two-layer MLP: the f32 gradients on the device against the f64 ones on the CPU.
  const Tensor x = in({8, 16}, 1), w1 = in({32, 16}, 2, -0.3, 0.3), b1 = in({32}, 3);
  const Tensor w2 = in({4, 32}, 4, -0.3, 0.3), b2 = in({4}, 5);
  auto run = [&](Device d, DType t) {
    std::vector<Tensor> params;
    for (const Tensor& p : {w1, b1, w2, b2}) {
      Tensor q = p.detach().to(t).to(d);
      q.set_requires_grad(true);
      params.push_back(q);
    }
    const Tensor h = gelu(linear(x.to(t).to(d), params[0], params[1]));
    const Tensor y = linear(h, params[2], params[3]);
    backward(sum(y * y));
    std::vector<Tensor> grads;
    for (const Tensor& p : params) grads.push_back(host(p.grad()));
    return grads;
  };
  const std::vector<Tensor> ref = run(Device::cpu(), DType::f64);
  const std::vector<Tensor> got = run(test_device(), DType::f32);
  for (std::size_t i = 0; i < ref.size(); ++i) test::check_close(got[i], ref[i], 1e-4, 1e-4);
}

GPU_TEST_CASE(errors_name_the_op_and_the_problem) {
  const Tensor a = dev(in({2, 3}, 1));
  if (test_device().is_cuda()) {
    BOOST_CHECK_THROW(add(a, in({2, 3}, 2)), DeviceError);
    BOOST_CHECK_THROW(add(dev(in({2, 3}, 5).to(DType::f32)), in({2, 3}, 6).to(DType::f32)), DeviceError);
  }
  Tensor bf = dev(in({2, 3}, 3).to(DType::bf16)), out = empty_on_dev({2, 3}, DType::bf16);
  try {
    kernels::binary(BinaryOp::add, bf, bf, out);
    BOOST_FAIL("binary accepted bf16");
  } catch (const DTypeError& e) {
    BOOST_TEST(std::string(e.what()).find("bf16") != std::string::npos, e.what());
  }
  const Tensor x32 = dev(in({2, 3}, 4).to(DType::f32));
  BOOST_CHECK_THROW(matmul(x32, x32), ShapeError);
  BOOST_CHECK_THROW(add(x32, a), DTypeError);
}

BOOST_AUTO_TEST_SUITE_END()
