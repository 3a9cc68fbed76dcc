#include "tessera/autograd/random.h"

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

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}

void manual_seed(std::uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace tessera
