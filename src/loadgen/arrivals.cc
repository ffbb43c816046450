#include "loadgen/arrivals.h"

namespace braid {

PoissonArrivals::PoissonArrivals(double rate, std::uint64_t seed) : random_(seed), gap_s_(rate) {}

Duration PoissonArrivals::Next() {
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(gap_s_(random_)));
}

}  // namespace braid
