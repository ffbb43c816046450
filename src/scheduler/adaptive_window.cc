#include "scheduler/adaptive_window.h"

#include <algorithm>
#include <chrono>

namespace braid {
namespace {

Duration FromMicros(double us) {
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double, std::micro>(us));
}

}  // namespace

void AdaptiveWindow::OnArrival(TimePoint now) {
  if (last_arrival_) {
    double gap = std::max(0.0, ToMicros(now - *last_arrival_));
    mean_gap_us_ = mean_gap_us_ ? *mean_gap_us_ + kGapWeight * (gap - *mean_gap_us_) : gap;
  }
  last_arrival_ = now;
}

void AdaptiveWindow::OnBatch(int batch, Duration compute) {
  double us = ToMicros(compute);
  auto [it, inserted] = compute_us_.emplace(batch, us);
  if (!inserted) it->second += kComputeWeight * (us - it->second);
}

std::optional<Duration> AdaptiveWindow::MeanGap() const {
  if (!mean_gap_us_) return std::nullopt;
  return FromMicros(*mean_gap_us_);
}

std::optional<Duration> AdaptiveWindow::FixedCost() const {
  if (compute_us_.size() < 2) return std::nullopt;
  // Ordinary least squares of compute time on batch size, one point per size.
  double n = 0, sum_b = 0, sum_c = 0, sum_bb = 0, sum_bc = 0;
  for (const auto& [batch, us] : compute_us_) {
    n += 1;
    sum_b += batch;
    sum_c += us;
    sum_bb += double(batch) * batch;
    sum_bc += batch * us;
  }
  double denominator = n * sum_bb - sum_b * sum_b;
  if (denominator <= 0) return std::nullopt;
  double slope = (n * sum_bc - sum_b * sum_c) / denominator;
  double intercept = (sum_c - slope * sum_b) / n;
  return FromMicros(std::max(0.0, intercept));
}

std::optional<Duration> AdaptiveWindow::PredictCompute(int batch) const {
  if (compute_us_.empty()) return std::nullopt;
  if (auto exact = compute_us_.find(batch); exact != compute_us_.end())
    return FromMicros(exact->second);
  auto fixed = FixedCost();
  if (!fixed) {  // one size seen: assume cost proportional to size
    const auto& [size, us] = *compute_us_.begin();
    return FromMicros(us * batch / size);
  }
  // Slope from the largest observed size and the fitted intercept.
  const auto& [size, us] = *compute_us_.rbegin();
  double slope = (us - ToMicros(*fixed)) / size;
  return FromMicros(ToMicros(*fixed) + slope * batch);
}

std::optional<TimePoint> AdaptiveWindow::WaitUntil() const {
  auto gap = MeanGap();
  auto fixed = FixedCost();
  if (!gap || !fixed || !last_arrival_ || *gap >= *fixed) return std::nullopt;
  return *last_arrival_ + *gap;
}

}  // namespace braid
