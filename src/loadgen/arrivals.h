// Open-loop arrivals: requests offered at a fixed mean rate with
// exponentially distributed gaps (a Poisson process), the way independent
// users arrive, so bursts happen as they would in production.
#pragma once

#include <cstdint>
#include <random>

#include "core/clock.h"

namespace braid {

class PoissonArrivals {
 public:
  // `rate`: mean arrivals per second (> 0). Deterministic for a seed.
  PoissonArrivals(double rate, std::uint64_t seed);
  // The gap before the next arrival.
  Duration Next();

 private:
  std::mt19937_64 random_;
  std::exponential_distribution<double> gap_s_;
};

}  // namespace braid
