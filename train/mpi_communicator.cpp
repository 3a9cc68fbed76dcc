// MPI behind the Communicator interface. Every collective is non-blocking and polled, so a
// rank that dies, hangs or is stopped cannot hold the others forever: past the timeout, a
// waiting rank asks every other one whether it is alive (the ranks that wait answer from
// their polling loop) and names those that do not answer.
#include "train/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace tessera::train::detail {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kPingTag = 0x7e55;
constexpr int kPongTag = 0x7e56;
// How long a rank that timed out waits for the others to answer its roll call.
constexpr double kRollCallSeconds = 5;

void check(int status, const char* call) {
  if (status == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(status, text, &length);
  throw Error(fmt::format("{}: {}", call, std::string_view(text, static_cast<std::size_t>(length))));
}

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const LaunchInfo& launch) : local_size_(launch.local_size) {
    int initialized = 0;
    check(MPI_Initialized(&initialized), "MPI_Initialized");
    if (!initialized) {
      int provided = 0;
      // Only the thread that created the communicator calls MPI (loader threads never do).
      check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      owns_mpi_ = true;
    }
    check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    // Failures come back as status codes and become exceptions, not aborts.
    check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  }

  ~MpiCommunicator() override {
    MPI_Comm_free(&comm_);
    if (owns_mpi_) {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized) MPI_Finalize();
    }
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const override { return local_size_; }
  std::string describe() const override {
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int length = 0;
    MPI_Get_library_version(version, &length);
    std::string_view v(version, static_cast<std::size_t>(length));
    v = v.substr(0, v.find_first_of(",\n"));
    return fmt::format("rank {} of {}, {}", rank_, size_, v);
  }

  void all_reduce_sum(std::span<float> data, std::string_view what) override {
    reduce(data.data(), data.size(), MPI_FLOAT, what);
  }
  void all_reduce_sum(std::span<double> data, std::string_view what) override {
    reduce(data.data(), data.size(), MPI_DOUBLE, what);
  }

  void broadcast(std::span<std::byte> data, int root, std::string_view what) override {
    // MPI counts are ints: large buffers go in pieces.
    for (std::size_t at = 0; at < data.size(); at += kMaxCount) {
      const int n = static_cast<int>(std::min(kMaxCount, data.size() - at));
      MPI_Request req;
      check(MPI_Ibcast(data.data() + at, n, MPI_BYTE, root, comm_, &req), "MPI_Ibcast");
      wait(req, what);
    }
  }

  std::optional<RankError> agree(const std::optional<RankError>& mine) override {
    // Each rank's verdict (0: fine, 1: a config error, 2: another failure), then the message
    // of the lowest failing rank.
    const int verdict = !mine ? 0 : mine->config ? 1 : 2;
    std::vector<int> all(static_cast<std::size_t>(size_));
    MPI_Request req;
    check(MPI_Iallgather(&verdict, 1, MPI_INT, all.data(), 1, MPI_INT, comm_, &req), "MPI_Iallgather");
    wait(req, "the check that every rank is ready");
    const auto first = std::find_if(all.begin(), all.end(), [](int v) { return v != 0; });
    if (first == all.end()) return std::nullopt;
    RankError e{static_cast<int>(first - all.begin()), "", *first == 1};
    std::uint64_t length = e.rank == rank_ ? mine->message.size() : 0;
    broadcast(std::as_writable_bytes(std::span(&length, 1)), e.rank, "the error message");
    e.message.resize(length);
    if (e.rank == rank_) e.message = mine->message;
    broadcast(std::as_writable_bytes(std::span(e.message.data(), e.message.size())), e.rank, "the error message");
    return e;
  }

  [[noreturn]] void abort(int status) override {
    std::fflush(nullptr);
    MPI_Abort(MPI_COMM_WORLD, status);
    std::_Exit(status);  // MPI_Abort does not return; this is for a library that does
  }

 private:
  static constexpr std::size_t kMaxCount = std::size_t{1} << 30;

  void reduce(void* data, std::size_t count, MPI_Datatype type, std::string_view what) {
    int bytes = 0;
    MPI_Type_size(type, &bytes);
    for (std::size_t at = 0; at < count; at += kMaxCount) {
      const int n = static_cast<int>(std::min(kMaxCount, count - at));
      MPI_Request req;
      check(MPI_Iallreduce(MPI_IN_PLACE, static_cast<char*>(data) + at * static_cast<std::size_t>(bytes), n, type,
                           MPI_SUM, comm_, &req),
            "MPI_Iallreduce");
      wait(req, what);
    }
  }

  // Polls `req`, answering other ranks' roll calls, until it completes or the timeout passes.
  void wait(MPI_Request& req, std::string_view what) {
    const Clock::time_point start = Clock::now();
    const auto deadline = start + std::chrono::duration<double>(timeout_seconds_);
    for (long spins = 0;; ++spins) {
      int done = 0;
      check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test");
      if (done) return;
      answer_roll_calls();
      if (Clock::now() > deadline) fail(what, start);
      // Spin first (collectives of a step take microseconds to milliseconds), then back off
      // so that a long wait does not take a core from the ranks still computing.
      if (spins > 20000) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  void answer_roll_calls() {
    for (;;) {
      int pending = 0;
      MPI_Status status;
      MPI_Iprobe(MPI_ANY_SOURCE, kPingTag, comm_, &pending, &status);
      if (!pending) return;
      int ping = 0;
      MPI_Recv(&ping, 1, MPI_INT, status.MPI_SOURCE, kPingTag, comm_, MPI_STATUS_IGNORE);
      MPI_Request pong;
      MPI_Isend(&pong_value_, 1, MPI_INT, status.MPI_SOURCE, kPongTag, comm_, &pong);
      MPI_Request_free(&pong);
    }
  }

  [[noreturn]] void fail(std::string_view what, Clock::time_point start) {
    const double waited = std::chrono::duration<double>(Clock::now() - start).count();
    // Roll call: the ranks that wait in a collective answer; a dead, hung or stopped one cannot.
    std::vector<int> answers(static_cast<std::size_t>(size_), 0);
    std::vector<MPI_Request> pongs;
    std::vector<int> asked;
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      MPI_Request ping;
      MPI_Isend(&pong_value_, 1, MPI_INT, r, kPingTag, comm_, &ping);
      MPI_Request_free(&ping);
      pongs.emplace_back();
      MPI_Irecv(&answers[static_cast<std::size_t>(r)], 1, MPI_INT, r, kPongTag, comm_, &pongs.back());
      asked.push_back(r);
    }
    const auto until = Clock::now() + std::chrono::duration<double>(kRollCallSeconds);
    std::vector<bool> alive(static_cast<std::size_t>(size_), false);
    alive[static_cast<std::size_t>(rank_)] = true;
    while (Clock::now() < until) {
      answer_roll_calls();
      bool all = true;
      for (std::size_t i = 0; i < pongs.size(); ++i) {
        int done = 0;
        if (!alive[static_cast<std::size_t>(asked[i])]) MPI_Test(&pongs[i], &done, MPI_STATUS_IGNORE);
        if (done) alive[static_cast<std::size_t>(asked[i])] = true;
        all = all && alive[static_cast<std::size_t>(asked[i])];
      }
      if (all) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::vector<int> silent;
    for (int r = 0; r < size_; ++r)
      if (!alive[static_cast<std::size_t>(r)]) silent.push_back(r);
    const std::string who = silent.empty() ? "every rank answers, yet the collective did not complete"
                            : fmt::format("rank{} {} did not reach it and do{} not answer (dead, hung or stopped)",
                                          silent.size() > 1 ? "s" : "", fmt::join(silent, ", "),
                                          silent.size() > 1 ? "" : "es");
    // The lowest rank that answers reports; the others stay quiet so that the run says it once.
    const int reporter = static_cast<int>(std::find(alive.begin(), alive.end(), true) - alive.begin());
    if (reporter != rank_) {
      // Keep answering while the reporter prints and stops the run.
      const auto grace = Clock::now() + std::chrono::duration<double>(kRollCallSeconds);
      while (Clock::now() < grace) {
        answer_roll_calls();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    throw CollectiveError(fmt::format("rank {}: the {} waited {:.0f} s (train.collective_timeout {:g} s): {}; "
                                      "stopping every rank",
                                      rank_, what, waited, timeout_seconds_, who),
                          reporter == rank_);
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_size_ = 1;
  bool owns_mpi_ = false;
  int pong_value_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> mpi_communicator(const LaunchInfo& launch) {
  return std::make_unique<MpiCommunicator>(launch);
}

}  // namespace tessera::train::detail
