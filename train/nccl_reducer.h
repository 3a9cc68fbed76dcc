// NCCL behind DeviceReducer (train/nccl_reducer.cpp), built with CUDA, MPI and NCCL
// (TESSERA_WITH_NCCL).
#pragma once

#include <memory>

#include "tessera/train/distributed.h"

namespace tessera::train::detail {

#ifdef TESSERA_WITH_NCCL
inline constexpr bool kNcclBuilt = true;
std::unique_ptr<DeviceReducer> nccl_reducer(Communicator& comm, int device);
#else
inline constexpr bool kNcclBuilt = false;
#endif

}  // namespace tessera::train::detail
