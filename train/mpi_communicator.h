// The MPI communicator behind Communicator (train/mpi_communicator.cpp), built when CMake
// finds MPI (TESSERA_WITH_MPI).
#pragma once

#include <memory>

#include "tessera/train/distributed.h"

namespace tessera::train::detail {

#ifdef TESSERA_WITH_MPI
inline constexpr bool kMpiBuilt = true;
// Initialises MPI (once per process) and returns MPI_COMM_WORLD's view of this rank.
std::unique_ptr<Communicator> mpi_communicator(const LaunchInfo& launch);
#else
inline constexpr bool kMpiBuilt = false;
#endif

}  // namespace tessera::train::detail
