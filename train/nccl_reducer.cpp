// Gradients of a CUDA run summed over the ranks by NCCL, GPU to GPU: the NCCL communicator
// is set up through the run's MPI communicator (rank 0's unique id, broadcast).
#include "train/nccl_reducer.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <fmt/format.h>

namespace tessera::train::detail {
namespace {

void check(ncclResult_t r, const char* call) {
  if (r != ncclSuccess) throw DeviceError(fmt::format("{}: {}", call, ncclGetErrorString(r)));
}

class NcclReducer final : public DeviceReducer {
 public:
  NcclReducer(Communicator& comm, int device) {
    if (cudaSetDevice(device) != cudaSuccess) {
      cudaGetLastError();
      throw DeviceError(fmt::format("NCCL: cannot select GPU {}", device));
    }
    ncclUniqueId id{};
    if (comm.rank() == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    comm.broadcast(std::as_writable_bytes(std::span(&id, 1)), 0, "broadcast of the NCCL id");
    check(ncclCommInitRank(&comm_, comm.size(), id, comm.rank()), "ncclCommInitRank");
  }
  ~NcclReducer() override { ncclCommDestroy(comm_); }

  void all_reduce_sum(std::span<float* const> buffers, std::span<const std::size_t> counts) override {
    // One group: NCCL fuses the parameters' reductions into as few launches as it can. The
    // backend works on the default stream, so the gradients are ready and the results are
    // seen by what follows in stream order.
    check(ncclGroupStart(), "ncclGroupStart");
    for (std::size_t i = 0; i < buffers.size(); ++i)
      check(ncclAllReduce(buffers[i], buffers[i], counts[i], ncclFloat32, ncclSum, comm_, cudaStreamLegacy),
            "ncclAllReduce");
    check(ncclGroupEnd(), "ncclGroupEnd");
  }

 private:
  ncclComm_t comm_ = nullptr;
};

}  // namespace

std::unique_ptr<DeviceReducer> nccl_reducer(Communicator& comm, int device) {
  return std::make_unique<NcclReducer>(comm, device);
}

}  // namespace tessera::train::detail
