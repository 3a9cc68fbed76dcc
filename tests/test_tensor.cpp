// Tensor basics: factories, dtypes, conversions, printing, the allocator and the generator.
#include "tessera/ops/kernels.h"
#include "support/test_support.h"

using namespace tessera;

BOOST_AUTO_TEST_SUITE(tensor)

BOOST_AUTO_TEST_CASE(factories_fill_shapes_and_values) {
  const Tensor z = zeros({2, 3});
  BOOST_TEST(z.numel() == 6);
  BOOST_TEST((z.shape() == Shape{2, 3}));
  BOOST_TEST(z.dtype() == DType::f32);
  for (float v : z.to_vector<float>()) BOOST_TEST(v == 0.0f);
  for (double v : ones({4}, {.dtype = f64}).to_vector<double>()) BOOST_TEST(v == 1.0);
  for (float v : full({3, 1}, 2.5).to_vector<float>()) BOOST_TEST(v == 2.5f);
  BOOST_TEST((arange(5, {.dtype = i64}).to_vector<std::int64_t>() == std::vector<std::int64_t>{0, 1, 2, 3, 4}));
  BOOST_TEST((arange(1.0, 2.0, 0.25, {.dtype = f64}).to_vector<double>() ==
              std::vector<double>{1.0, 1.25, 1.5, 1.75}));
  const Tensor v = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  BOOST_TEST(v.size(-1) == 3);
  BOOST_TEST(v.to_vector<float>()[4] == 5.0f);
  BOOST_TEST(scalar_tensor(3.0).dim() == 0);
  BOOST_TEST(scalar_tensor(3.0).item() == 3.0);
  BOOST_TEST(zeros({0, 3}).numel() == 0);
}

BOOST_AUTO_TEST_CASE(bad_shapes_and_values_are_errors) {
  BOOST_CHECK_THROW(zeros({2, -1}), ShapeError);
  BOOST_CHECK_THROW(from_vector<float>({1, 2, 3}, {2, 2}), ShapeError);
  BOOST_CHECK_THROW(zeros({2, 2}).item(), ShapeError);
  BOOST_CHECK_THROW(zeros({2}).data<double>(), DTypeError);
  BOOST_CHECK_THROW(Tensor().shape(), Error);
  BOOST_CHECK_THROW(zeros({2}, {.dtype = i64}).set_requires_grad(), DTypeError);
  BOOST_CHECK_THROW(zeros({2}).size(2), ShapeError);
  if (!cuda_available()) BOOST_CHECK_THROW(zeros({2}, {.device = Device::cuda()}), DeviceError);
}

BOOST_AUTO_TEST_CASE(storage_is_shared_between_handles) {
  Tensor a = zeros({4});
  Tensor b = a;                // same impl
  Tensor c = a.detach();       // same storage, new impl
  Tensor d = a.reshape({2, 2});
  c.data<float>()[1] = 7.0f;
  BOOST_TEST(b.to_vector<float>()[1] == 7.0f);
  BOOST_TEST(d.to_vector<float>()[1] == 7.0f);
  Tensor e = a.contiguous_copy();
  e.data<float>()[1] = 1.0f;
  BOOST_TEST(a.to_vector<float>()[1] == 7.0f);
}

BOOST_AUTO_TEST_CASE(dtype_conversions_round_trip) {
  const Tensor x = from_vector<double>({-1.5, 0.0, 2.25, 1e10}, {4});
  BOOST_TEST((x.to(f32).to(f64).to_vector<double>() == x.to_vector<double>()));
  BOOST_TEST((x.to(i64).to_vector<std::int64_t>() == std::vector<std::int64_t>{-1, 0, 2, 10000000000}));
  // bf16 keeps 8 significant bits: these values are exact; 1 + 2^-9 rounds to 1.
  const Tensor b = from_vector<float>({1.0f, -2.5f, 0.15625f, 1.0f + 1.0f / 512}, {4}).to(bf16);
  BOOST_TEST(b.dtype() == DType::bf16);
  BOOST_TEST((b.to(f32).to_vector<float>() == std::vector<float>{1.0f, -2.5f, 0.15625f, 1.0f}));
}

BOOST_AUTO_TEST_CASE(printing_shows_shape_dtype_and_values) {
  const std::string s = fmt::format("{}", from_vector<float>({1, 2, 3, 4}, {2, 2}));
  BOOST_TEST(s == "Tensor(shape=(2,2), dtype=f32, device=cpu, [[1, 2], [3, 4]])");
  const std::string big = arange(100).to_string();
  BOOST_TEST(big.find("...") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(generator_is_seeded_and_counter_based) {
  Generator g1(42), g2(42), g3(43);
  const auto a = randn({1000}, {}, g1).to_vector<float>();
  const auto b = randn({1000}, {}, g2).to_vector<float>();
  const auto c = randn({1000}, {}, g3).to_vector<float>();
  BOOST_TEST(a == b);
  BOOST_TEST(a != c);
  BOOST_TEST(g1.state().offset == 1000u);
  // Same state, same stream: a restored generator continues exactly.
  Generator g4(0);
  g4.set_state(g1.state());
  BOOST_TEST(randn({10}, {}, g1).to_vector<float>() == randn({10}, {}, g4).to_vector<float>());
  // Moments of 1000 normals: mean ~ 0 (3 sigma: 0.095), variance ~ 1.
  double m = 0, v = 0;
  for (float x : a) m += x;
  m /= a.size();
  for (float x : a) v += (x - m) * (x - m);
  v /= a.size();
  BOOST_TEST(std::abs(m) < 0.1);
  BOOST_TEST(std::abs(v - 1.0) < 0.15);
}

BOOST_AUTO_TEST_CASE(trunc_normal_and_uniform_stay_in_bounds) {
  Generator g(7);
  for (float x : trunc_normal({5000}, 1.0, -0.5, 0.5, 0.0, {}, g).to_vector<float>()) {
    BOOST_TEST(x >= -0.5f);
    BOOST_TEST(x <= 0.5f);
  }
  for (float x : uniform({5000}, 2.0, 3.0, {}, g).to_vector<float>()) {
    BOOST_TEST(x >= 2.0f);
    BOOST_TEST(x < 3.0f);
  }
  for (std::int64_t k : randint({1000}, 10, g).to_vector<std::int64_t>()) {
    BOOST_TEST(k >= 0);
    BOOST_TEST(k < 10);
  }
}

BOOST_AUTO_TEST_CASE(caching_allocator_reuses_blocks) {
  CachingAllocator& alloc = cpu_allocator();
  { Tensor t = empty({1024, 1024}); }
  const auto before = alloc.stats().raw_allocations;
  for (int i = 0; i < 10; ++i) { Tensor t = empty({1024, 1024}); }
  BOOST_TEST(alloc.stats().raw_allocations == before);
  BOOST_TEST(CachingAllocator::size_class(1) == 64u);
  BOOST_TEST(CachingAllocator::size_class(4097) == 4608u);
  BOOST_TEST(CachingAllocator::size_class(8192) == 8192u);
  for (std::size_t n : {5000u, 100000u, 3000000u}) {
    const std::size_t c = CachingAllocator::size_class(n);
    BOOST_TEST(c >= n);
    BOOST_TEST(c <= n + n / 8 + 64);
  }
}

BOOST_AUTO_TEST_SUITE_END()
