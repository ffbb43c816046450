#include "scheduler/utilization.h"

#include <algorithm>

namespace braid {

void UtilizationWindow::AddBusy(TimePoint start, TimePoint end) {
  const Duration length = end - start;
  busy_.push_back({start, end});
  busy_sum_ += length;
  while (!longest_.empty() && longest_.back().length <= length) longest_.pop_back();
  longest_.push_back({first_index_ + busy_.size() - 1, length});
  if (busy_.size() > 1 && end < latest_end_) disorder_ = std::max(disorder_, latest_end_ - end);
  latest_end_ = std::max(latest_end_, end);
}

double UtilizationWindow::Compute(TimePoint now, const std::vector<RunningBatch>& running) {
  const TimePoint from = now - window_;
  while (!busy_.empty() && busy_.front().end <= from) {
    busy_sum_ -= busy_.front().end - busy_.front().start;
    busy_.pop_front();
    if (longest_.front().index == first_index_) longest_.pop_front();
    ++first_index_;
  }
  // Each interval whole, less what lies outside [from, now]. Only intervals
  // ending within the longest one's length (and the disorder) of `from` can
  // reach before it, and only those ending within the disorder of `now`
  // can end after it.
  Duration busy = busy_sum_;
  const Duration longest = longest_.empty() ? Duration{} : longest_.front().length;
  for (const Interval& interval : busy_) {
    if (interval.end > from + longest + disorder_) break;
    if (interval.end <= from) {
      busy -= interval.end - interval.start;
    } else if (interval.start < from) {
      busy -= from - interval.start;
    }
  }
  for (auto it = busy_.rbegin(); it != busy_.rend() && it->end + disorder_ > now; ++it) {
    if (it->end > now) busy -= it->end - now;
  }
  for (const RunningBatch& batch : running) busy += now - std::max(batch.start, from);
  double fraction = ToMicros(busy) / (ToMicros(window_) * std::max(1, instances_));
  return std::clamp(fraction, 0.0, 1.0);
}

}  // namespace braid
