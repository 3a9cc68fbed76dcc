// Data-parallel training, run by CTest under `mpirun -np 2`: two ranks train as one process
// with the same global batch (losses and weights), resume across rank counts, and a failure
// on one rank stops both with its message. The reference runs are rank 0's, alone.
#include <algorithm>
#include <cmath>
#include <map>

#include "support/test_support.h"
#include "tessera/train/checkpoint.h"
#include "tessera/train/distributed.h"
#include "tessera/train/trainer.h"

using namespace tessera;
namespace tt = tessera::train;
namespace fs = std::filesystem;

namespace {

tt::Communicator& world() {
  static const std::unique_ptr<tt::Communicator> comm = tt::connect();
  return *comm;
}

// A ViT with every random draw on: dropout, attention dropout, drop path, crops and flips.
// Batch 7 splits 4 + 3 over two ranks; 64 images make 10 batches per epoch, the last of one
// image, which leaves rank 1 without rows; 2 epochs are 20 steps. Evaluation: 13 images in
// batches of 5.
//
// SGD with momentum for the weight comparisons: under Adam, a parameter whose exact gradient
// is zero (the key bias: softmax ignores it) gets rounding noise, which differs with the
// order of the sums, scaled up to steps of the learning rate's size.
tt::TrainConfig config(const fs::path& out, const std::string& optim = "{name: sgd, lr: 0.05, momentum: 0.9}") {
  return tt::load_config_string(fmt::format(R"(
model: {{image_size: 16, patch_size: 4, channels: 1, num_classes: 4, dim: 32, depth: 2, heads: 2, mlp_dim: 64,
         dropout: 0.1, attn_dropout: 0.1, drop_path: 0.2}}
data: {{dataset: synthetic, synthetic: {{train_size: 64, test_size: 13}}, normalize: none,
        augment: {{random_crop_padding: 2, horizontal_flip: true}}}}
optim: {}
schedule: {{name: cosine, warmup_epochs: 0.5}}
train: {{epochs: 2, batch_size: 7, eval_batch_size: 5, seed: 11, threads: 1, output_dir: "{}", log_interval: 5}}
)", optim, out.string()), "data_parallel.yaml");
}

struct Outcome {
  std::vector<double> losses;  // per step
  tt::TrainResult result;
};

Outcome run(const fs::path& out, tt::Communicator& comm, std::optional<std::int64_t> stop_at = {},
            std::optional<fs::path> resume = {}, const tt::TrainConfig* cfg = nullptr) {
  static std::FILE* devnull = std::fopen("/dev/null", "w");
  Outcome o;
  tt::TrainOptions opts;
  opts.out = devnull;
  opts.live_progress = false;
  opts.comm = &comm;
  opts.stop_at_step = stop_at;
  opts.resume = resume;
  opts.on_step = [&](const tt::StepReport& s) { o.losses.push_back(s.loss); };
  o.result = tt::train(cfg ? *cfg : config(out), opts);
  return o;
}

// A directory every rank names the same: rank 0 makes it and tells the others.
fs::path shared_dir(const std::string& tag) {
  static std::vector<std::unique_ptr<test::TempDir>> dirs;
  std::string path;
  if (world().rank() == 0) {
    dirs.push_back(std::make_unique<test::TempDir>(tag));
    path = dirs.back()->path().string();
  }
  std::uint64_t length = path.size();
  world().broadcast(std::as_writable_bytes(std::span(&length, 1)), 0, "test directory");
  path.resize(length);
  world().broadcast(std::as_writable_bytes(std::span(path.data(), path.size())), 0, "test directory");
  return path;
}

// Every rank waits here for the others (rank 0 may be running a reference alone).
void rendezvous() { BOOST_REQUIRE(!world().agree(std::nullopt)); }

void check_losses(const std::vector<double>& got, const std::vector<double>& want) {
  BOOST_REQUIRE_EQUAL(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    BOOST_TEST(std::abs(got[i] - want[i]) <= 1e-5 * std::abs(want[i]), "step " << i + 1 << ": loss " << got[i]
                                                                                << " against " << want[i]);
}

// Final weights within 1e-5 relative to the largest magnitude of each tensor.
void check_weights(const fs::path& got, const fs::path& want) {
  const tt::Checkpoint a = tt::load_checkpoint(got), b = tt::load_checkpoint(want);
  BOOST_TEST(a.info.state.global_step == b.info.state.global_step);
  BOOST_TEST((a.info.state.generator == b.info.state.generator));
  BOOST_REQUIRE_EQUAL(a.model.size(), b.model.size());
  for (std::size_t i = 0; i < a.model.size(); ++i) {
    const std::vector<double> x = a.model[i].second.to_vector<double>(), y = b.model[i].second.to_vector<double>();
    double scale = 0, worst = 0;
    for (std::size_t j = 0; j < y.size(); ++j) scale = std::max(scale, std::abs(y[j]));
    for (std::size_t j = 0; j < y.size(); ++j) worst = std::max(worst, std::abs(x[j] - y[j]));
    BOOST_TEST(worst <= 1e-5 * std::max(scale, 1e-12), a.model[i].first << ": differs by " << worst << " (scale "
                                                                        << scale << ")");
  }
}

// Rank 0's single-process run of the whole config: the reference.
const Outcome& reference() {
  static const fs::path dir = fs::path(TESSERA_BINARY_DIR) / "test_tmp" / "data_parallel_reference";
  static const Outcome o = [] {
    fs::remove_all(dir);
    const auto alone = tt::single_process();
    return run(dir, *alone);
  }();
  return o;
}
fs::path reference_checkpoint() {
  return fs::path(TESSERA_BINARY_DIR) / "test_tmp" / "data_parallel_reference" / tt::kLastCheckpoint;
}

// A run stopped and resumed in `dir` (its losses before and after) matches the reference.
void check_continuation(std::vector<double> before, const std::vector<double>& after, const fs::path& dir) {
  before.insert(before.end(), after.begin(), after.end());
  check_losses(before, reference().losses);
  check_weights(dir / tt::kLastCheckpoint, reference_checkpoint());
}

}  // namespace

BOOST_AUTO_TEST_SUITE(distributed)

BOOST_AUTO_TEST_CASE(runs_on_two_ranks) {
  BOOST_REQUIRE_MESSAGE(world().size() == 2, "launch with mpirun -np 2; this process sees " << world().size()
                                                                                            << " rank(s)");
}

BOOST_AUTO_TEST_CASE(two_ranks_train_as_one_process_with_the_same_global_batch) {
  const fs::path dir = shared_dir("dp_two_ranks");
  const Outcome two = run(dir, world());
  BOOST_TEST((two.result.status == tt::TrainResult::Status::finished));
  BOOST_TEST(two.losses.size() == 20u);
  if (world().rank() == 0) {
    const Outcome& one = reference();
    check_losses(two.losses, one.losses);
    check_weights(dir / tt::kLastCheckpoint, reference_checkpoint());
    BOOST_TEST(std::abs(two.result.last_accuracy - one.result.last_accuracy) < 1e-9);
    // Rank 0 alone wrote the run's files.
    BOOST_TEST(fs::exists(dir / tt::kMetricsFile));
  }
  rendezvous();
}

BOOST_AUTO_TEST_CASE(two_ranks_under_adamw_see_the_losses_of_one_process) {
  const std::string adamw = "{name: adamw, lr: 2.0e-3, clip_grad_norm: 1.0}";
  const fs::path dir = shared_dir("dp_adamw");
  const tt::TrainConfig cfg = config(dir / "two", adamw);
  const Outcome two = run(dir / "two", world(), std::nullopt, std::nullopt, &cfg);
  if (world().rank() == 0) {
    const auto alone = tt::single_process();
    const tt::TrainConfig one_cfg = config(dir / "one", adamw);
    const Outcome one = run(dir / "one", *alone, std::nullopt, std::nullopt, &one_cfg);
    check_losses(two.losses, one.losses);
    BOOST_TEST(std::abs(two.result.last_accuracy - one.result.last_accuracy) < 1e-9);
  }
  rendezvous();
}

BOOST_AUTO_TEST_CASE(a_two_rank_run_resumes_in_one_process) {
  const fs::path dir = shared_dir("dp_two_to_one");
  const Outcome first = run(dir, world(), 7);  // stops mid-epoch with a checkpoint
  BOOST_TEST((first.result.status == tt::TrainResult::Status::interrupted));
  if (world().rank() == 0) {
    const auto alone = tt::single_process();
    check_continuation(first.losses, run(dir, *alone, std::nullopt, dir).losses, dir);
  }
  rendezvous();
}

BOOST_AUTO_TEST_CASE(a_one_process_run_resumes_on_two_ranks) {
  const fs::path dir = shared_dir("dp_one_to_two");
  std::vector<double> losses;
  if (world().rank() == 0) {
    const auto alone = tt::single_process();
    losses = run(dir, *alone, 13).losses;  // 3 steps into the second epoch
  }
  rendezvous();
  const Outcome rest = run(dir, world(), std::nullopt, dir);
  BOOST_TEST(rest.losses.size() == 7u);
  if (world().rank() == 0) check_continuation(losses, rest.losses, dir);
  rendezvous();
}

BOOST_AUTO_TEST_CASE(a_failure_on_one_rank_stops_every_rank_with_its_message) {
  const fs::path dir = shared_dir("dp_failure");
  tt::TrainConfig cfg = config(dir);
  if (world().rank() == 1) {  // this rank alone cannot read its data
    cfg.data.dataset = "mnist";
    cfg.data.root = dir / "no_such_directory";
  }
  tt::TrainOptions opts;
  static std::FILE* devnull = std::fopen("/dev/null", "w");
  opts.out = devnull;
  opts.comm = &world();
  try {
    tt::train(cfg, opts);
    BOOST_ERROR("training went on although rank 1 could not open its data");
  } catch (const tt::AgreedError& e) {
    const std::string message = e.what();
    BOOST_TEST(message.starts_with("rank 1: "), message);
    BOOST_TEST(message.find("no_such_directory") != std::string::npos, message);
    BOOST_TEST(e.report() == (world().rank() == 0));
  }
  // Nothing was trained: no checkpoint.
  if (world().rank() == 0) BOOST_TEST(!fs::exists(dir / tt::kLastCheckpoint));
  rendezvous();
}

BOOST_AUTO_TEST_CASE(gradients_are_summed_weighted_by_each_ranks_share) {
  // Rank r holds gradient (r + 1) * [1, 2, 3] for its share; a parameter without any
  // gradient keeps none; one with a gradient on rank 1 only gets rank 1's weighted part.
  const float r = static_cast<float>(world().rank() + 1);
  Tensor w = from_vector(std::vector<float>{0, 0, 0}, {3}), none = zeros({2}), some = zeros({2});
  w.set_grad(from_vector(std::vector<float>{r, 2 * r, 3 * r}, {3}));
  if (world().rank() == 1) some.set_grad(from_vector(std::vector<float>{4, 8}, {2}));
  const double share = world().rank() == 0 ? 0.75 : 0.25;
  tt::all_reduce_gradients(world(), std::vector<Tensor>{w, none, some}, share, nullptr, /*bucket_bytes=*/8);
  // 0.75 * 1 + 0.25 * 2 = 1.25 per unit.
  BOOST_TEST(w.grad().to_vector<double>() == (std::vector<double>{1.25, 2.5, 3.75}), boost::test_tools::per_element());
  BOOST_TEST(!none.grad().defined());
  BOOST_TEST(some.grad().to_vector<double>() == (std::vector<double>{1, 2}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(every_rank_starts_from_rank_0s_weights) {
  const float r = static_cast<float>(world().rank());
  Tensor w = from_vector(std::vector<float>{r, r + 1, r + 2}, {3});
  tt::broadcast_parameters(world(), std::vector<Tensor>{w});
  BOOST_TEST(w.to_vector<double>() == (std::vector<double>{0, 1, 2}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()
