// Running on the CPU at hand: the kernels follow oneDNN's effective ISA (so
// ONEDNN_MAX_CPU_ISA caps them), bf16 is offered exactly where oneDNN multiplies in bf16 and
// refused cleanly elsewhere, and the CLI reports the CPU. The suite also runs capped to AVX2
// (tests avx2/portability/...), which exercises the refusals on any machine.
#include <cstdlib>
#include <fstream>

#include "tessera/ops/cpu_info.h"
#include "tessera/ops/kernels.h"
#include "support/test_support.h"

using namespace tessera;
namespace utf = boost::unit_test;
namespace fs = std::filesystem;

namespace {

bool has_feature(const char* name) {
  for (const std::string& f : cpu_info().features)
    if (f == name) return true;
  return false;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::size_t lines(const std::string& s) { return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n')); }

boost::test_tools::assertion_result lacks_bf16(utf::test_unit_id id) {
  return test::skip_if(id, bf16_unavailable_reason().empty()
                               ? "this CPU multiplies in bf16; the avx2/ run of this case checks the refusal"
                               : "");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(portability)

BOOST_AUTO_TEST_CASE(kernels_follow_onednn_effective_isa) {
  const CpuInfo& c = cpu_info();
  const std::string cap = env("ONEDNN_MAX_CPU_ISA");
  if (cap == "AVX2") {
    BOOST_TEST(c.onednn_isa == "avx2");
    BOOST_TEST(c.isa_cap == "ONEDNN_MAX_CPU_ISA=AVX2");
    BOOST_TEST(kernel_isa_name(c.kernels) == "avx2");
    BOOST_TEST(!c.bf16);
  } else if (cap.empty() && env("DNNL_MAX_CPU_ISA").empty()) {
    const bool avx512 = has_feature("avx512f") && has_feature("avx512bw") && has_feature("avx512vl") &&
                        has_feature("avx512dq");
    BOOST_TEST(kernel_isa_name(c.kernels) == (avx512 ? "avx512" : "avx2"));
    BOOST_TEST(c.isa_cap.empty());
    // Native bf16 is reported exactly where the hardware has the instructions.
    BOOST_TEST(c.bf16_native == (has_feature("avx512_bf16") || has_feature("amx_bf16")));
  }
  BOOST_TEST((c.kernels != KernelIsa::none), "the suite runs only on CPUs with AVX2 and FMA");
  BOOST_TEST(!c.model.empty());
}

BOOST_AUTO_TEST_CASE(bf16_is_offered_exactly_where_onednn_multiplies_in_bf16) {
  const Tensor a = test::input({8, 16}, 1, -1, 1, false).to(DType::f32);
  const Tensor w = test::input({4, 16}, 2, -1, 1, false).to(DType::f32);
  if (cpu_info().bf16) {
    BOOST_TEST(bf16_unavailable_reason().empty());
    const Tensor exact = linear(a, w);
    const AutocastGuard bf16(DType::bf16);
    test::check_close(linear(a, w), exact, 2e-2, 2e-2);  // bf16 keeps 8 significant bits
  } else {
    const std::string why = bf16_unavailable_reason();
    BOOST_TEST(why.find("AVX-512") != std::string::npos, why);
    BOOST_TEST(why.find(cpu_info().onednn_isa) != std::string::npos, why);
    BOOST_CHECK_EXCEPTION(AutocastGuard(DType::bf16), DeviceError, [](const DeviceError& e) {
      const std::string m = e.what();
      return m.starts_with("AutocastGuard: bf16 mixed precision needs a CPU with AVX-512");
    });
    // Below the ops, a bf16 product reaching oneDNN is reported in the user's terms.
    Tensor out = empty({8, 4});
    BOOST_CHECK_EXCEPTION(kernels::linear(a.to(DType::bf16), w.to(DType::bf16), Tensor(), out), DeviceError,
                          [](const DeviceError& e) {
                            const std::string m = e.what();
                            return m.starts_with("linear on (8,16) bf16, (4,16) bf16, (8,4) f32: bf16 mixed") &&
                                   m.find("oneDNN ISA") != std::string::npos &&
                                   m.find("primitive descriptor") == std::string::npos;
                          });
  }
}

BOOST_AUTO_TEST_CASE(training_in_bf16_is_refused_before_the_output_directory_is_touched,
                     *utf::precondition(lacks_bf16)) {
  test::TempDir dir("bf16_refused");
  const fs::path run = dir / "run";
  fs::create_directories(run);
  std::ofstream(run / "metrics.jsonl") << "{\"epoch\": 1}\n";  // an earlier run's, to be kept
  std::ofstream(dir / "bf16.yaml") << fmt::format(
      "model: {{image_size: 8, patch_size: 4, channels: 1, num_classes: 2, dim: 8, depth: 1, heads: 1, mlp_dim: 8}}\n"
      "data: {{dataset: synthetic, synthetic: {{train_size: 8, test_size: 8}}}}\n"
      "schedule: {{name: constant}}\n"
      "train: {{precision: bf16, epochs: 1, batch_size: 4, output_dir: '{}'}}\n",
      run.string());
  const test::CommandResult r = test::run_cli({"train", (dir / "bf16.yaml").string()}, dir.path());
  BOOST_TEST(r.status == 2);
  BOOST_TEST(lines(r.err) == 1u, r.err);
  BOOST_TEST(r.err.find("tessera: error: train.precision: bf16 mixed precision needs a CPU with AVX-512") == 0,
             r.err);
  BOOST_TEST(r.err.find(cpu_info().onednn_isa) != std::string::npos, r.err);
  std::ifstream kept(run / "metrics.jsonl");
  std::string line;
  std::getline(kept, line);
  BOOST_TEST(line == "{\"epoch\": 1}");
  BOOST_TEST(!fs::exists(run / "config.yaml"));
}

BOOST_AUTO_TEST_CASE(version_and_bench_report_the_cpu) {
  test::TempDir dir("cpu_report");
  test::CommandResult r = test::run_cli({"--version"}, dir.path());
  BOOST_TEST(r.status == 0);
  BOOST_TEST(r.out.starts_with("tessera "), r.out);
  BOOST_TEST(r.out.find("\ncpu: ") != std::string::npos, r.out);
  BOOST_TEST(r.out.find("oneDNN ISA " + cpu_info().onednn_isa) != std::string::npos, r.out);
  BOOST_TEST(r.out.find(std::string("kernels ") + kernel_isa_name(cpu_info().kernels)) != std::string::npos, r.out);

  // f32 is always measured; bf16 where it runs, else one line saying why not.
  r = test::run_cli({"bench", "--matmul", "--steps", "1", "--threads", "1"}, dir.path());
  BOOST_TEST(r.status == 0, r.err);
  BOOST_TEST(r.out.find("matmul n=256 f32_gflop_s=") != std::string::npos, r.out);
  if (cpu_info().bf16)
    BOOST_TEST(r.out.find("bf16_gflop_s=") != std::string::npos, r.out);
  else
    BOOST_TEST(r.out.find("matmul: bf16 unavailable: bf16 mixed precision needs") != std::string::npos, r.out);
}

BOOST_AUTO_TEST_CASE(a_cpu_below_avx2_is_refused_in_one_line) {
  // Capping oneDNN below AVX2 is what a CPU without AVX2 looks like to the dispatch.
  test::TempDir dir("below_avx2");
  const test::CommandResult r =
      test::run_cli({"bench", "--matmul", "--steps", "1"}, dir.path(), "ONEDNN_MAX_CPU_ISA=SSE41");
  BOOST_TEST(r.status == 1);
  BOOST_TEST(lines(r.err) == 1u, r.err);
  BOOST_TEST(r.err.find("tessera: error: Tessera's CPU kernels need AVX2 and FMA") == 0, r.err);
  BOOST_TEST(r.out.empty(), r.out);
  // --version still answers: it is how a user finds out what the CPU lacks.
  const test::CommandResult v = test::run_cli({"--version"}, dir.path(), "ONEDNN_MAX_CPU_ISA=SSE41");
  BOOST_TEST(v.status == 0);
  BOOST_TEST(v.out.find("oneDNN ISA sse41 (ONEDNN_MAX_CPU_ISA=SSE41); kernels none") != std::string::npos, v.out);
}

BOOST_AUTO_TEST_SUITE_END()
