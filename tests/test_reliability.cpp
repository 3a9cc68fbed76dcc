// The CLI attacked as a careless or unlucky user would: two runs into one directory, a seed
// past 2^63, a checkpoint of NaN weights, a diverging run, signals of every kind, and runs
// that would need more memory than there is. Each case is a row of the reliability issue
// and fails without its fix.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <sstream>

#include "support/test_support.h"
#include "tessera/train/memory.h"
#include "tessera/train/trainer.h"

namespace tt = tessera::train;
namespace fs = std::filesystem;
using namespace tessera;

using tessera::test::vit;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A small run on synthetic data; `train_size` sets how long an epoch lasts.
fs::path write_config(const fs::path& dir, int train_size = 256, const std::string& extra = "") {
  const fs::path file = dir / "run.yaml";
  std::ofstream(file) << fmt::format(R"(
model: {{image_size: 8, patch_size: 4, num_classes: 4, dim: 16, depth: 1, heads: 2, mlp_dim: 16}}
data: {{dataset: synthetic, synthetic: {{train_size: {}, test_size: 32}}}}
schedule: {{warmup_epochs: 0}}
train: {{epochs: 3, batch_size: 8, threads: 1, output_dir: "{}", log_interval: 1}}
{})",
                                     train_size, (dir / "run").string(), extra);
  return file;
}

// `tessera ARGS...` in the background, its stdout and stderr in `log` (or a pipe nobody reads
// when `log` is empty).
pid_t spawn(const std::vector<std::string>& args, const fs::path& log) {
  const std::string tessera = std::string(TESSERA_BINARY_DIR) + "/tessera";
  const pid_t child = ::fork();
  if (child == 0) {
    if (log.empty()) {
      // A terminal that went away: every write to stdout or stderr fails (EPIPE).
      int ends[2];
      if (::pipe(ends) != 0) std::_Exit(126);
      ::close(ends[0]);
      ::dup2(ends[1], STDOUT_FILENO);
      ::dup2(ends[1], STDERR_FILENO);
    } else {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
    }
    std::vector<char*> argv{const_cast<char*>(tessera.c_str())};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(tessera.c_str(), argv.data());
    std::_Exit(127);
  }
  return child;
}

// Waits (up to 2 minutes) until the run's log shows it is training.
bool wait_until_training(const fs::path& run_dir) {
  for (int i = 0; i < 6000; ++i) {
    if (slurp(run_dir / tt::kLogFile).find(" step ") != std::string::npos) return true;
    ::usleep(20000);
  }
  return false;
}

int exit_status(pid_t child) {
  int status = 0;
  ::waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(reliability)

BOOST_AUTO_TEST_CASE(a_second_run_into_a_busy_directory_is_refused_and_a_dead_one_does_not_block) {
  test::TempDir dir("busy_dir");
  const fs::path config = write_config(dir.path(), 20000);
  const pid_t first = spawn({"train", config.string()}, dir / "first.log");
  BOOST_TEST_REQUIRE(wait_until_training(dir / "run"), slurp(dir / "first.log"));
  const test::CommandResult second = test::run_cli({"train", config.string()}, dir.path());
  BOOST_TEST(second.status == 2, second.err);
  BOOST_TEST(second.err.find(fmt::format("in use by another run (pid {})", first)) != std::string::npos, second.err);
  BOOST_TEST(slurp(dir / "run" / tt::kLogFile).find("in use") == std::string::npos);  // the first run's log is intact
  ::kill(first, SIGKILL);  // a run that dies leaves its lock file behind...
  BOOST_TEST(exit_status(first) == -SIGKILL);
  BOOST_TEST(fs::exists(dir / "run" / ".lock"));
  const test::CommandResult third =
      test::run_cli({"train", config.string(), "--set", "data.synthetic.train_size=64"}, dir.path());
  BOOST_TEST(third.status == 0, third.err);  // ...which does not block the next
}

BOOST_AUTO_TEST_CASE(a_seed_beyond_2_63_trains_evaluates_predicts_and_resumes) {
  test::TempDir dir("big_seed");
  const fs::path config = write_config(dir.path(), 64);
  const std::string seed = "train.seed=9223372036854775808";
  BOOST_TEST(test::run_cli({"train", config.string(), "--set", seed, "--set", "train.epochs=1"}, dir.path()).status == 0);
  const std::string last = (dir / "run" / tt::kLastCheckpoint).string();
  const test::CommandResult eval = test::run_cli({"eval", config.string(), "--set", seed, "--checkpoint", last}, dir.path());
  BOOST_TEST(eval.status == 0, eval.err);
  std::ofstream(dir / "digit.pgm", std::ios::binary) << "P5\n8 8\n255\n" << std::string(64, '\x40');
  const test::CommandResult predict = test::run_cli({"predict", "--checkpoint", last, (dir / "digit.pgm").string()}, dir.path());
  BOOST_TEST(predict.status == 0, predict.err);
  const test::CommandResult resume =
      test::run_cli({"train", config.string(), "--set", seed, "--resume", (dir / "run").string()}, dir.path());
  BOOST_TEST(resume.status == 0, resume.err);
  BOOST_TEST(tt::load_checkpoint(last).info.state.epoch == 3);
}

BOOST_AUTO_TEST_CASE(checkpoints_of_non_finite_weights_are_refused_by_eval_predict_and_resume) {
  test::TempDir dir("nan_weights");
  const fs::path config = write_config(dir.path(), 64, "");
  BOOST_TEST_REQUIRE(test::run_cli({"train", config.string(), "--set", "train.epochs=1"}, dir.path()).status == 0);
  const fs::path last = dir / "run" / tt::kLastCheckpoint;
  {
    tt::Checkpoint ck = tt::load_checkpoint(last);
    auto model = tt::build_model(tt::load_config_string(ck.info.config_yaml));
    model->load_state_dict(ck.model);
    Tensor(model->named_parameters().back().second).fill_(std::nan(""));
    tt::save_checkpoint(last, *model, ck.optimizer, ck.info);
  }
  std::ofstream(dir / "digit.pgm", std::ios::binary) << "P5\n8 8\n255\n" << std::string(64, '\x40');
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"eval", config.string(), "--set", "train.epochs=1", "--checkpoint", last.string()},
        std::vector<std::string>{"predict", "--checkpoint", last.string(), (dir / "digit.pgm").string()},
        std::vector<std::string>{"train", config.string(), "--resume", (dir / "run").string()}}) {
    const test::CommandResult r = test::run_cli(args, dir.path());
    BOOST_TEST(r.status == 1, args[0] << ": " << r.err);
    BOOST_TEST(r.err.find("NaN or infinite values") != std::string::npos, args[0] << ": " << r.err);
    BOOST_TEST(r.out.find("accuracy") == std::string::npos, args[0] << ": " << r.out);
  }
}

BOOST_AUTO_TEST_CASE(a_diverging_run_says_why_on_stderr_and_in_its_log) {
  test::TempDir dir("diverged");
  const fs::path config = write_config(dir.path(), 64);
  BOOST_TEST_REQUIRE(test::run_cli({"train", config.string(), "--set", "train.epochs=1"}, dir.path()).status == 0);
  const fs::path last = dir / "run" / tt::kLastCheckpoint;
  {
    // Finite weights at the edge of f32's range: the next step's logits overflow.
    tt::Checkpoint ck = tt::load_checkpoint(last);
    auto model = tt::build_model(tt::load_config_string(ck.info.config_yaml));
    model->load_state_dict(ck.model);
    for (const auto& [name, p] : model->named_parameters())
      if (name == "head.weight") Tensor(p).fill_(3e38);
    tt::save_checkpoint(last, *model, ck.optimizer, ck.info);
  }
  const test::CommandResult r = test::run_cli({"train", config.string(), "--resume", (dir / "run").string()}, dir.path());
  BOOST_TEST(r.status == 1);
  BOOST_TEST(r.err.find("tessera: error: the loss became") != std::string::npos, r.err);
  BOOST_TEST(slurp(dir / "run" / tt::kLogFile).find("the loss became") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_terminating_signal_leaves_a_checkpoint_and_says_so_even_without_a_terminal) {
  for (const int sig : {SIGTERM, SIGHUP, SIGUSR1, SIGXCPU}) {
    test::TempDir dir("signal");
    const fs::path config = write_config(dir.path(), 20000);
    // Nowhere to print, as after a closed terminal: the run directory must tell.
    const pid_t child = spawn({"train", config.string()}, "");
    BOOST_TEST_REQUIRE(wait_until_training(dir / "run"));
    ::kill(child, sig);
    const int status = exit_status(child);
    BOOST_TEST(status == 128 + sig, strsignal(sig) << ": exit " << status);
    const std::string log = slurp(dir / "run" / tt::kLogFile);
    BOOST_TEST(log.find(fmt::format("interrupted by SIG{}", sigabbrev_np(sig))) != std::string::npos, log);
    BOOST_TEST(log.find("continue with --resume") != std::string::npos, log);
    BOOST_CHECK_NO_THROW(tt::load_checkpoint(dir / "run" / tt::kLastCheckpoint));
  }
}

BOOST_AUTO_TEST_CASE(a_second_signal_ends_the_run_at_once_and_says_why_there_is_no_new_checkpoint) {
  test::TempDir dir("two_signals");
  const fs::path config = write_config(dir.path(), 20000);
  const pid_t child = spawn({"train", config.string()}, dir / "out.log");
  BOOST_TEST_REQUIRE(wait_until_training(dir / "run"));
  // The handler's second call is what is tested: both signals arrive before the step ends.
  ::kill(child, SIGINT);
  ::kill(child, SIGTERM);
  const int status = exit_status(child);
  const std::string log = slurp(dir / "run" / tt::kLogFile), out = slurp(dir / "out.log");
  // Either signal may be handled first (any thread takes one), so either exit code is right.
  BOOST_TEST((status == 128 + SIGINT || status == 128 + SIGTERM), status);
  if (log.find("a second signal") != std::string::npos) {
    BOOST_TEST(out.find("a second signal: stopped at once, without a new checkpoint") != std::string::npos, out);
  } else {
    // The step ended between the two signals: the first one's checkpoint was written.
    BOOST_TEST(log.find("interrupted by SIG") != std::string::npos, log);
  }
  BOOST_TEST(out.find("--resume " + (dir / "run").string()) != std::string::npos, out);
}

BOOST_AUTO_TEST_CASE(a_run_too_big_for_memory_is_refused_before_anything_is_written) {
  // Row 7: an evaluation batch that does not fit, refused before the first epoch.
  test::TempDir dir("too_big");
  tt::TrainConfig cfg = tt::load_config_string(slurp(write_config(dir.path(), 64)));
  vit(cfg).heads = 8;
  cfg.train.eval_batch_size = 1 << 20;
  CachingAllocator& a = cpu_allocator();
  const std::size_t limit = a.memory_limit();
  a.set_memory_limit(std::size_t{1} << 30);  // a 1 GiB machine
  try {
    std::FILE* devnull = std::fopen("/dev/null", "w");
    tt::TrainOptions opts;
    opts.out = devnull;
    tt::train(cfg, opts);
    std::fclose(devnull);
    BOOST_ERROR("no error");
  } catch (const ConfigError& e) {
    const std::string w = e.what();
    BOOST_TEST(w.starts_with("train.eval_batch_size: this run needs about"), w);
    BOOST_TEST(w.find("evaluation at batch 1048576") != std::string::npos, w);
    BOOST_TEST(w.find("but 1.0 GiB is available") != std::string::npos, w);
  }
  a.set_memory_limit(limit);
  BOOST_TEST(!fs::exists(dir / "run" / tt::kMetricsFile));
  BOOST_TEST(!fs::exists(dir / "run" / tt::kConfigFile));
}

BOOST_AUTO_TEST_SUITE_END()
