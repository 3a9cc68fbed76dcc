// Data-parallel training across processes: how a launcher (mpirun, srun) is recognised, the
// communicator between a run's ranks (MPI, or one process alone), and the gradient all-reduce.
//
// A run of N ranks does the mathematics of one process with the same global batch: each rank
// takes its shard of every batch (DataLoader's shard options), random draws are keyed by the
// global sample index (BatchShardGuard), gradients are summed weighted by each shard's share
// of the batch, and every rank then takes the same optimizer step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/autograd/tensor.h"

namespace tessera::train {

// What the environment says started this process.
struct LaunchInfo {
  std::string launcher;  // "" (none), "mpirun", "srun" or "an MPI launcher"
  int rank = 0;
  int size = 1;        // ranks the launcher started
  int local_size = 1;  // of them, on this machine (1 when the launcher does not say)
};

// Reads OMPI_COMM_WORLD_*, PMIX_RANK, PMI_RANK/PMI_SIZE and SLURM_PROCID/SLURM_NTASKS.
// `getenv` is replaceable for tests.
LaunchInfo detect_launcher(const std::function<const char*(const char*)>& getenv = [](const char* name) {
  return std::getenv(name);
});

// A collective that did not complete: another rank died, hung or stopped. `report` is false
// on the ranks that leave the message to a lower one, so that the run prints it once.
class CollectiveError : public Error {
 public:
  CollectiveError(const std::string& message, bool report) : Error(message), report_(report) {}
  bool report() const { return report_; }

 private:
  bool report_;
};

// A failure every rank of the run knows of (agree()): each throws it, rank 0 reports it,
// and all of them can end normally with exit status `status` (2: a config error).
class AgreedError : public Error {
 public:
  AgreedError(const std::string& message, int status, bool report)
      : Error(message), status_(status), report_(report) {}
  int status() const { return status_; }
  bool report() const { return report_; }

 private:
  int status_;
  bool report_;
};

// The first failure any rank reported before training (agree()).
struct RankError {
  int rank = 0;
  std::string message;
  bool config = false;  // a ConfigError (exit status 2) rather than another failure
};

// The ranks of one run. Every collective is called by every rank in the same order, from the
// thread that created the communicator; one that waits longer than timeout() throws
// CollectiveError naming the ranks that do not answer.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_size() const = 0;  // ranks on this machine
  virtual std::string describe() const = 0;
  double timeout() const { return timeout_seconds_; }
  void set_timeout(double seconds);

  // Element-wise sums over the ranks, in place; `what` names the collective in messages.
  virtual void all_reduce_sum(std::span<float> data, std::string_view what) = 0;
  virtual void all_reduce_sum(std::span<double> data, std::string_view what) = 0;
  virtual void broadcast(std::span<std::byte> data, int root, std::string_view what) = 0;
  // Every rank passes its error (nullopt: none); every rank gets the lowest failing rank's.
  virtual std::optional<RankError> agree(const std::optional<RankError>& mine) = 0;
  // Ends the whole run now with this exit status (after a failure on this rank).
  [[noreturn]] virtual void abort(int status) = 0;

 protected:
  double timeout_seconds_ = 300;
};

// A communicator of one rank: every collective returns at once.
std::unique_ptr<Communicator> single_process();

// Whether this build can run several ranks (it found MPI).
bool mpi_built();

// The run's communicator: MPI when a launcher started this process, else single_process().
// ConfigError when a launcher started several ranks but this build has no MPI, or when MPI
// sees another world than the launcher announced (srun without --mpi=pmix).
std::unique_ptr<Communicator> connect();

// Gives every rank rank 0's parameter values (at the start of a run, as they may differ:
// a model of one's own initialised otherwise than from train.seed, a checkpoint read).
void broadcast_parameters(Communicator& comm, std::span<const Tensor> params);

// Sums GPU buffers over the ranks in place, GPU to GPU (NCCL).
class DeviceReducer {
 public:
  virtual ~DeviceReducer() = default;
  virtual void all_reduce_sum(std::span<float* const> buffers, std::span<const std::size_t> counts) = 0;
};

// NCCL over the communicator's ranks on this rank's GPU when `device` is CUDA, the run has
// several ranks and this build has NCCL; otherwise null (gradients then go through host
// memory and MPI).
std::unique_ptr<DeviceReducer> device_reducer(Communicator& comm, Device device);

// Sums the parameters' gradients over the ranks, each rank's weighted by `share` (its part of
// the global batch, so that the result is the global batch's mean gradient): on the GPU
// through `device` when given, else through host buffers of at most `bucket_bytes`. A
// parameter no rank has a gradient for keeps none, as in one process.
void all_reduce_gradients(Communicator& comm, std::span<const Tensor> params, double share,
                          DeviceReducer* device = nullptr, std::size_t bucket_bytes = std::size_t{25} << 20);

}  // namespace tessera::train
