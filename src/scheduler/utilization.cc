#include "scheduler/utilization.h"

#include <algorithm>

namespace braid {

void UtilizationWindow::AddBusy(TimePoint start, TimePoint end) { busy_.emplace_back(start, end); }

double UtilizationWindow::Compute(TimePoint now, const std::vector<RunningBatch>& running) {
  const TimePoint from = now - window_;
  while (!busy_.empty() && busy_.front().second <= from) busy_.pop_front();
  Duration busy{};
  for (const auto& [start, end] : busy_) {
    if (end > from) busy += std::min(end, now) - std::max(start, from);
  }
  for (const RunningBatch& batch : running) busy += now - std::max(batch.start, from);
  double fraction = ToMicros(busy) / (ToMicros(window_) * std::max(1, instances_));
  return std::clamp(fraction, 0.0, 1.0);
}

}  // namespace braid
