// Helpers shared by the test binaries: gradient-check assertions, seeded inputs, temp dirs.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "tessera/autograd/gradcheck.h"
#include "tessera/models/vit.h"
#include "tessera/ops/ops.h"
#include "tessera/train/config.h"

namespace tessera::test {

// f64 CPU input in [low, high) with requires_grad set, from a fixed seed.
Tensor input(const Shape& shape, std::uint64_t seed, double low = -1.0, double high = 1.0,
             bool requires_grad = true);
// Same values in f32 (no grad): for parity tests against the f64 reference.
Tensor as_f32(const Tensor& t);

// Asserts that gradcheck passes, with its report as the failure message.
void check_gradients(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                     const GradcheckOptions& opts = {});

// Asserts |a - b| <= atol + rtol * |b| elementwise (b is the reference), naming the worst.
void check_close(const Tensor& a, const Tensor& b, double rtol, double atol);

// Boost.Test precondition: the case runs when `reason` is empty, else it is skipped with
// "SKIPPED suite/case: reason" on stdout, which CTest reports as skipped (its log and
// `ctest -V` show the reason). Use as *utf::precondition(test::needs_bf16).
boost::test_tools::assertion_result skip_if(boost::unit_test::test_unit_id id, const std::string& reason);
// Needs a CPU on which oneDNN multiplies in bf16 under the current ISA cap.
boost::test_tools::assertion_result needs_bf16(boost::unit_test::test_unit_id id);

// The exit status (-1 when killed by a signal) and output of a `tessera` CLI run.
struct CommandResult {
  int status = -1;
  std::string out, err;
};
// Runs the built tessera binary with `args` (each quoted for the shell), its stdout and
// stderr captured through files in `dir`; `env` is prepended, e.g. "ONEDNN_MAX_CPU_ISA=AVX2".
CommandResult run_cli(const std::vector<std::string>& args, const std::filesystem::path& dir,
                      const std::string& env = "");

// Every row of the unary op table (ops/unary_ops.h) with its gradient-check domain: the tests
// that loop over it cover a new op without being edited.
struct UnaryCase {
  UnaryOp op;
  const char* name;
  double low, high;  // inputs drawn from [low, high]...
  double a, b;       // ...kept 0.05 away from 0, a and b; a and b are the op's parameters
};
const std::vector<UnaryCase>& unary_cases();
// f64 input for a case (requires_grad set), from a fixed seed.
Tensor unary_input(const UnaryCase& c, const Shape& shape, std::uint64_t seed);

// The ViT config inside a config's model section (the default model, model.name: vit).
models::ViTConfig& vit(train::TrainConfig& cfg);
const models::ViTConfig& vit(const train::TrainConfig& cfg);
models::ViTConfig& vit(train::ModelConfig& model);
const models::ViTConfig& vit(const train::ModelConfig& model);

// A fresh empty directory under the build tree, removed when the object dies.
class TempDir {
 public:
  explicit TempDir(const std::string& tag);
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace tessera::test
