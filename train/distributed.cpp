#include "tessera/train/distributed.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "train/mpi_communicator.h"
#include "train/nccl_reducer.h"

namespace tessera::train {
namespace {

std::optional<int> env_int(const std::function<const char*(const char*)>& getenv, const char* name) {
  const char* v = getenv(name);
  if (!v || !*v) return std::nullopt;
  int x = 0;
  const char* end = v + std::strlen(v);
  const auto [p, ec] = std::from_chars(v, end, x);
  TESSERA_CHECK(ec == std::errc{} && p == end && x >= 0, ConfigError,
                "{}={}: the launcher's variable is not a non-negative integer", name, v);
  return x;
}

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_size() const override { return 1; }
  std::string describe() const override { return "one process"; }
  void all_reduce_sum(std::span<float>, std::string_view) override {}
  void all_reduce_sum(std::span<double>, std::string_view) override {}
  void broadcast(std::span<std::byte>, int, std::string_view) override {}
  std::optional<RankError> agree(const std::optional<RankError>& mine) override { return mine; }
  [[noreturn]] void abort(int status) override { std::exit(status); }
};

}  // namespace

LaunchInfo detect_launcher(const std::function<const char*(const char*)>& getenv) {
  LaunchInfo info;
  const auto set = [&](const char* launcher, const char* rank, const char* size, const char* local) {
    const std::optional<int> r = env_int(getenv, rank), s = env_int(getenv, size);
    if (!r || !s) return false;
    TESSERA_CHECK(*s >= 1 && *r < *s, ConfigError, "{}={} and {}={}: the launcher's rank is not below its size", rank,
                  *r, size, *s);
    info = {launcher, *r, *s, std::clamp(env_int(getenv, local).value_or(1), 1, *s)};
    return true;
  };
  // Open MPI's mpirun first: under srun with PMIx it is absent, and Slurm's own then tells.
  if (set("mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE")) return info;
  if (set("srun", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_NTASKS_PER_NODE")) return info;
  if (set("an MPI launcher", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS")) return info;
  if (set("an MPI launcher", "PMIX_RANK", "PMIX_SIZE", "PMIX_LOCAL_SIZE")) return info;
  return info;
}

void Communicator::set_timeout(double seconds) {
  TESSERA_CHECK(seconds > 0 && seconds <= 86400 * 7, ConfigError,
                "train.collective_timeout: {} s is not in (0, 604800]", seconds);
  timeout_seconds_ = seconds;
}

std::unique_ptr<Communicator> single_process() { return std::make_unique<SingleProcess>(); }

bool mpi_built() { return detail::kMpiBuilt; }

std::unique_ptr<Communicator> connect() {
  const LaunchInfo launch = detect_launcher();
  if (launch.launcher.empty()) return single_process();
#ifndef TESSERA_WITH_MPI
  TESSERA_CHECK(launch.size == 1, ConfigError,
                "{} started {} ranks, but this build of tessera has no MPI (install libopenmpi-dev and rebuild; "
                "CMake then reports 'Tessera: MPI ON')",
                launch.launcher, launch.size);
  return single_process();
#else
  std::unique_ptr<Communicator> comm = detail::mpi_communicator(launch);
  TESSERA_CHECK(comm->size() == launch.size && comm->rank() == launch.rank, ConfigError,
                "{} announced rank {} of {}, but MPI sees rank {} of {}{}", launch.launcher, launch.rank, launch.size,
                comm->rank(), comm->size(),
                launch.launcher == "srun" ? " (Open MPI under Slurm needs srun --mpi=pmix)" : "");
  return comm;
#endif
}

void broadcast_parameters(Communicator& comm, std::span<const Tensor> params) {
  if (comm.size() == 1) return;
  for (const Tensor& p : params) {
    Tensor host = p.cpu();  // the parameter itself when it is on the CPU
    comm.broadcast(std::span(static_cast<std::byte*>(host.raw_data()), static_cast<std::size_t>(host.nbytes())), 0,
                   "broadcast of the parameters");
    if (!p.device().is_cpu()) Tensor(p).copy_(host.to(p.device()));
  }
}

std::unique_ptr<DeviceReducer> device_reducer(Communicator& comm, Device device) {
  if (device.is_cpu() || comm.size() == 1) return nullptr;
#ifdef TESSERA_WITH_NCCL
  return detail::nccl_reducer(comm, device.index);
#else
  return nullptr;
#endif
}

void all_reduce_gradients(Communicator& comm, std::span<const Tensor> params, double share, DeviceReducer* device,
                          std::size_t bucket_bytes) {
  if (comm.size() == 1) return;
  for (const Tensor& p : params)
    TESSERA_CHECK(p.dtype() == DType::f32, Error, "all_reduce_gradients: parameters must be f32, one is {}",
                  p.dtype());
  // Which parameters have a gradient on some rank: those without one anywhere keep none, so
  // that the optimizer skips them as it would in one process.
  std::vector<float> present(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) present[i] = params[i].grad().defined() ? 1.0f : 0.0f;
  comm.all_reduce_sum(present, "all-reduce of which gradients exist");

  if (device && !params.empty() && !params.front().device().is_cpu()) {
    std::vector<float*> buffers;
    std::vector<std::size_t> counts;
    for (std::size_t i = 0; i < params.size(); ++i) {
      if (present[i] == 0) continue;
      Tensor g = params[i].grad();
      if (g.defined()) {
        g.mul_(share);
      } else {
        g = zeros(params[i].shape(), {.device = params[i].device()});
        params[i].set_grad(g);
      }
      buffers.push_back(g.data<float>());
      counts.push_back(static_cast<std::size_t>(g.numel()));
    }
    device->all_reduce_sum(buffers, counts);
    return;
  }

  const std::size_t bucket_floats = std::max<std::size_t>(bucket_bytes / sizeof(float), 1);
  std::vector<float> buffer;
  std::size_t first = 0;
  while (first < params.size()) {
    // [first, last) fills one bucket (a parameter larger than a bucket goes alone).
    std::size_t last = first, floats = 0;
    while (last < params.size() && (last == first || floats + params[last].numel() <= bucket_floats))
      floats += static_cast<std::size_t>(params[last++].numel());
    buffer.assign(floats, 0.0f);
    std::size_t at = 0;
    for (std::size_t i = first; i < last; ++i) {
      const auto n = static_cast<std::size_t>(params[i].numel());
      if (const Tensor g = params[i].grad(); g.defined()) {
        const Tensor host = g.cpu();
        const float* src = host.data<float>();
        for (std::size_t j = 0; j < n; ++j) buffer[at + j] = static_cast<float>(share * src[j]);
      }
      at += n;
    }
    comm.all_reduce_sum(buffer, "all-reduce of the gradients");
    at = 0;
    for (std::size_t i = first; i < last; ++i) {
      const auto n = static_cast<std::size_t>(params[i].numel());
      const Tensor g = params[i].grad();
      if (g.defined() && g.device().is_cpu()) {
        std::copy_n(buffer.begin() + static_cast<std::ptrdiff_t>(at), n, g.data<float>());
      } else if (present[i] > 0) {
        const Tensor sum = from_vector(std::vector<float>(buffer.begin() + static_cast<std::ptrdiff_t>(at),
                                                          buffer.begin() + static_cast<std::ptrdiff_t>(at + n)),
                                       params[i].shape());
        params[i].set_grad(sum.to(params[i].device()));
      }
      at += n;
    }
    first = last;
  }
}

}  // namespace tessera::train
