#include "support/test_support.h"

#include <atomic>
#include <cmath>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include <sys/wait.h>

#include "tessera/ops/cpu_info.h"

namespace tessera::test {

Tensor input(const Shape& shape, std::uint64_t seed, double low, double high, bool requires_grad) {
  Generator gen(seed);
  Tensor t = uniform(shape, low, high, {.dtype = DType::f64}, gen);
  if (requires_grad) t.set_requires_grad(true);
  return t;
}

Tensor as_f32(const Tensor& t) { return t.detach().to(DType::f32); }

models::ViTConfig& vit(train::ModelConfig& model) { return model.as<models::ViTConfig>(); }
const models::ViTConfig& vit(const train::ModelConfig& model) { return model.as<models::ViTConfig>(); }
models::ViTConfig& vit(train::TrainConfig& cfg) { return vit(cfg.model); }
const models::ViTConfig& vit(const train::TrainConfig& cfg) { return vit(cfg.model); }

const std::vector<UnaryCase>& unary_cases() {
  static const std::vector<UnaryCase> cases = {
#define TESSERA_UNARY_CASE(name, api, fwd, bwd, params, value, derivative, test) \
  {UnaryOp::name, #name, TESSERA_UNARY_STRIP test},
      TESSERA_UNARY_OPS(TESSERA_UNARY_CASE)
#undef TESSERA_UNARY_CASE
  };
  return cases;
}

Tensor unary_input(const UnaryCase& c, const Shape& shape, std::uint64_t seed) {
  constexpr double kGap = 0.05;  // finite differences of h = 1e-6 never straddle a kink
  std::vector<double> v = input(shape, seed, c.low, c.high, false).to_vector<double>();
  for (double& x : v)
    for (const double kink : {0.0, c.a, c.b})
      if (std::abs(x - kink) < kGap) x = kink + (x < kink ? -kGap : kGap);
  Tensor t = from_vector(v, shape, {.dtype = DType::f64});
  t.set_requires_grad(true);
  return t;
}

CommandResult run_cli(const std::vector<std::string>& args, const std::filesystem::path& dir, const std::string& env) {
  const std::filesystem::path out = dir / "stdout.txt", err = dir / "stderr.txt";
  std::string cmd = env + " '" + std::string(TESSERA_BINARY_DIR) + "/tessera'";
  for (const std::string& a : args) cmd += " '" + a + "'";
  cmd += " > '" + out.string() + "' 2> '" + err.string() + "'";
  const int raw = std::system(cmd.c_str());
  auto slurp = [](const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, slurp(out), slurp(err)};
}

boost::test_tools::assertion_result skip_if(boost::unit_test::test_unit_id id, const std::string& reason) {
  boost::test_tools::assertion_result r(reason.empty());
  if (!reason.empty()) {
    r.message() << reason;
    std::cout << "SKIPPED " << boost::unit_test::framework::get(id, boost::unit_test::TUT_ANY).full_name() << ": "
              << reason << std::endl;
  }
  return r;
}

boost::test_tools::assertion_result needs_bf16(boost::unit_test::test_unit_id id) {
  return skip_if(id, bf16_unavailable_reason());
}

void check_gradients(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                     const GradcheckOptions& opts) {
  const GradcheckResult r = gradcheck(f, inputs, opts);
  BOOST_TEST(r.ok, r.message);
  BOOST_TEST(!r.inputs.empty(), "gradcheck compared no input: none requires a gradient");
}

void check_close(const Tensor& a, const Tensor& b, double rtol, double atol) {
  BOOST_TEST_REQUIRE((a.shape() == b.shape()),
                     "shapes differ: " << shape_str(a.shape()) << " vs " << shape_str(b.shape()));
  const std::vector<double> x = a.detach().to(DType::f64).to_vector<double>();
  const std::vector<double> y = b.detach().to(DType::f64).to_vector<double>();
  std::size_t bad = 0, worst = 0;
  double worst_excess = -1;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double excess = std::abs(x[i] - y[i]) - (atol + rtol * std::abs(y[i]));
    if (excess > 0 || std::isnan(x[i]) != std::isnan(y[i])) ++bad;
    if (excess > worst_excess) { worst_excess = excess; worst = i; }
  }
  BOOST_TEST(bad == 0u, bad << " of " << x.size() << " elements differ; worst at " << worst << ": "
                               << (x.empty() ? 0 : x[worst]) << " vs reference "
                               << (y.empty() ? 0 : y[worst]));
}

TempDir::TempDir(const std::string& tag) {
  static std::atomic<int> counter{0};
  path_ = std::filesystem::path(TESSERA_BINARY_DIR) / "test_tmp" /
          (tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace tessera::test
