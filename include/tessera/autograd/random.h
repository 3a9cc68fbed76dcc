// Seeded, counter-based random numbers (Philox4x32-10, Salmon et al., SC'11). Element i of
// a random tensor depends only on (seed, offset + i), so results do not depend on the
// thread count, and a generator's whole state is two integers: cheap to checkpoint.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

#include "tessera/autograd/philox.h"

namespace tessera {

struct GeneratorState {
  std::uint64_t seed = 0;
  std::uint64_t offset = 0;
  friend bool operator==(const GeneratorState&, const GeneratorState&) = default;
};

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0) : state_{seed, 0} {}

  std::uint64_t seed() const { return state_.seed; }
  GeneratorState state() const { return state_; }
  void set_state(GeneratorState s) { state_ = s; }
  void manual_seed(std::uint64_t seed) { state_ = {seed, 0}; }

  // Reserves `count` counters; a kernel derives element i from counter (returned + i).
  std::uint64_t reserve(std::uint64_t count) {
    const std::uint64_t base = state_.offset;
    state_.offset += count;
    return base;
  }

  // Counters for a batch-major draw of `count` elements whose first dimension has `rows`
  // rows (a dropout mask over (B, ...), drop path's (B, 1, 1)). Outside a data-parallel step
  // this is reserve(count). Inside one (BatchShardGuard) the whole global batch's counters
  // are reserved and this process's rows are returned, so that N processes draw for each
  // sample what one process would: the draw is keyed by the global sample index.
  std::uint64_t reserve_batch(std::uint64_t count, std::int64_t rows);

  // Scalar draws for host-side logic (shuffles, augmentation choices).
  std::uint64_t next_u64();
  double next_uniform();                      // [0, 1)
  std::uint64_t next_below(std::uint64_t n);  // [0, n), unbiased

 private:
  GeneratorState state_;
};

// The samples this process holds in a data-parallel step: [offset, offset + local) of a
// global batch of `global`.
struct BatchShard {
  std::int64_t global = 0;
  std::int64_t offset = 0;
  std::int64_t local = 0;
};

// Sets the calling thread's batch shard for the guard's lifetime (the trainer's step).
class BatchShardGuard {
 public:
  explicit BatchShardGuard(BatchShard shard);
  ~BatchShardGuard();
  BatchShardGuard(const BatchShardGuard&) = delete;
  BatchShardGuard& operator=(const BatchShardGuard&) = delete;

 private:
  BatchShard previous_;
};

// The calling thread's shard; {0, 0, 0} outside a data-parallel step.
BatchShard current_batch_shard();

// The process-wide generator used by initialisers and dropout unless one is passed.
Generator& default_generator();
void manual_seed(std::uint64_t seed);

// A standard normal from one counter: Box-Muller on the first two words.
inline double normal_from(const std::array<std::uint32_t, 4>& r) {
  const double u1 = 1.0 - to_unit(r[0]);  // (0, 1]: log stays finite
  const double u2 = to_unit(r[1]);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace tessera
