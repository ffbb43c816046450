#include "scheduler/autoscaler.h"

#include <algorithm>
#include <cmath>

namespace braid {

Autoscaler::Autoscaler(AutoscalePolicy policy, int instances, TimePoint now)
    : policy_(policy),
      instances_(std::clamp(instances, policy.min_instances, policy.max_instances)),
      last_change_(now) {}

void Autoscaler::Change(int instances, TimePoint now) {
  instances_ = instances;
  last_change_ = now;
  samples_.clear();
}

int Autoscaler::Observe(TimePoint now, double utilization, double arrival_rate) {
  samples_.push_back({now, std::clamp(utilization, 0.0, 1.0), std::max(0.0, arrival_rate)});
  while (!samples_.empty() && now - samples_.front().at > policy_.window) samples_.pop_front();
  if (samples_.size() < 3) return instances_;

  const double n = static_cast<double>(samples_.size());
  double mean_utilization = 0, mean_rate = 0, mean_t = 0;
  for (const auto& s : samples_) {
    mean_utilization += s.utilization / n;
    mean_rate += s.rate / n;
    mean_t += std::chrono::duration<double>(s.at - samples_.front().at).count() / n;
  }
  // The arrival trend: least squares through (t, rate), half a window ahead.
  double covariance = 0, variance = 0;
  for (const auto& s : samples_) {
    const double t = std::chrono::duration<double>(s.at - samples_.front().at).count() - mean_t;
    covariance += t * (s.rate - mean_rate);
    variance += t * t;
  }
  const double slope = variance > 0 ? covariance / variance : 0;
  const double ahead = std::chrono::duration<double>(now - samples_.front().at).count() - mean_t +
                       std::chrono::duration<double>(policy_.window).count() / 2;
  const double predicted_rate = std::max(0.0, mean_rate + slope * ahead);
  predicted_ = mean_rate > 0 ? mean_utilization * predicted_rate / mean_rate : mean_utilization;

  // Instances' worth of work now and predicted; the count that puts it
  // in the middle of the band.
  const double middle = (policy_.scale_up_utilization + policy_.scale_down_utilization) / 2;
  const double work = std::max(mean_utilization, predicted_) * instances_;
  const int fitting = static_cast<int>(std::ceil(work / middle));
  if ((mean_utilization > policy_.scale_up_utilization ||
       predicted_ > policy_.scale_up_utilization) &&
      instances_ < policy_.max_instances) {
    Change(std::clamp(fitting, instances_ + 1, policy_.max_instances), now);
  } else if (mean_utilization < policy_.scale_down_utilization &&
             predicted_ < policy_.scale_down_utilization && instances_ > policy_.min_instances &&
             now - last_change_ >= policy_.cooldown) {
    Change(std::clamp(fitting, policy_.min_instances, instances_ - 1), now);
  }
  return instances_;
}

}  // namespace braid
