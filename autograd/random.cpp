#include "tessera/autograd/random.h"

#include "tessera/autograd/error.h"

namespace tessera {

std::uint64_t Generator::next_u64() {
  const auto r = philox4x32(state_.seed, reserve(1));
  return (std::uint64_t{r[0]} << 32) | r[1];
}

double Generator::next_uniform() { return (next_u64() >> 11) * (1.0 / 9007199254740992.0); }

std::uint64_t Generator::next_below(std::uint64_t n) {
  if (n <= 1) return 0;
  // Rejection sampling removes the modulo bias.
  const std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % n);
  std::uint64_t x;
  do x = next_u64(); while (x >= limit);
  return x % n;
}

namespace {
thread_local BatchShard t_shard;
}  // namespace

BatchShardGuard::BatchShardGuard(BatchShard shard) : previous_(t_shard) {
  TESSERA_CHECK(shard.global >= 0 && shard.offset >= 0 && shard.local >= 0 && shard.offset + shard.local <= shard.global,
                Error, "BatchShardGuard: rows [{}, {}) do not lie in a batch of {}", shard.offset,
                shard.offset + shard.local, shard.global);
  t_shard = shard;
}

BatchShardGuard::~BatchShardGuard() { t_shard = previous_; }

BatchShard current_batch_shard() { return t_shard; }

std::uint64_t Generator::reserve_batch(std::uint64_t count, std::int64_t rows) {
  const BatchShard s = t_shard;
  if (s.global == 0 || (s.local == s.global && s.offset == 0)) return reserve(count);
  // rows = k * local: k rows per sample (heads folded into the batch, tokens flattened).
  TESSERA_CHECK(s.local > 0 && rows > 0 && rows % s.local == 0 && count % static_cast<std::uint64_t>(rows) == 0,
                Error,
                "random draw: a tensor of {} elements with {} rows is not batch-major over this process's {} "
                "samples; in data-parallel training, random draws must be over (batch, ...) tensors",
                count, rows, s.local);
  const std::uint64_t per_sample = count / static_cast<std::uint64_t>(s.local);
  const std::uint64_t base = reserve(per_sample * static_cast<std::uint64_t>(s.global));
  return base + per_sample * static_cast<std::uint64_t>(s.offset);
}

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}

void manual_seed(std::uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace tessera
