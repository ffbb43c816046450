#include "loadgen/stats.h"

#include <gtest/gtest.h>

#include "loadgen/arrivals.h"

namespace braid {
namespace {

TEST(PercentileTest, NearestRank) {
  std::vector<double> values;
  for (int i = 1; i <= 100; ++i) values.push_back(i);
  EXPECT_EQ(Percentile(values, 50), 50);
  EXPECT_EQ(Percentile(values, 90), 90);
  EXPECT_EQ(Percentile(values, 99), 99);
  EXPECT_EQ(Percentile(values, 100), 100);
  EXPECT_EQ(Percentile(values, 0), 1);
  EXPECT_EQ(Percentile({7}, 99), 7);
  EXPECT_EQ(Percentile({}, 50), 0);
  EXPECT_EQ(Percentile({1, 2, 3, 4}, 50), 2) << "the smallest value with half at or below it";
  EXPECT_EQ(Percentile({1, 2, 3, 4}, 51), 3);
}

TEST(SummarizeTest, CountsThroughputAndOrder) {
  auto s = Summarize({30, 10, 20, 40}, {900, 5}, 3, 2.0);
  EXPECT_EQ(s.requests, 4u);
  EXPECT_EQ(s.errors, 3u) << "one error was never answered";
  EXPECT_EQ(s.error_p99_us, 900);
  EXPECT_DOUBLE_EQ(s.throughput, 2.0);
  EXPECT_EQ(s.p50_us, 20);
  EXPECT_EQ(s.max_us, 40);
  EXPECT_DOUBLE_EQ(s.mean_us, 25);
  EXPECT_EQ(Summarize({}, {}, 0, 1).throughput, 0);
}

TEST(PoissonArrivalsTest, MeanRateAndExponentialSpread) {
  PoissonArrivals arrivals(200, 42);
  const int n = 200000;
  std::vector<double> gaps;
  double sum = 0;
  for (int i = 0; i < n; ++i) {
    gaps.push_back(std::chrono::duration<double>(arrivals.Next()).count());
    sum += gaps.back();
  }
  const double mean = sum / n;
  EXPECT_NEAR(mean, 1.0 / 200, 0.02 / 200);
  double variance = 0;
  for (double g : gaps) variance += (g - mean) * (g - mean);
  const double cv = std::sqrt(variance / n) / mean;
  EXPECT_NEAR(cv, 1.0, 0.02) << "exponential gaps: standard deviation equals the mean";
  // P(gap > mean) = 1/e for an exponential distribution.
  const double above = std::count_if(gaps.begin(), gaps.end(), [&](double g) { return g > mean; });
  EXPECT_NEAR(above / n, std::exp(-1.0), 0.01);
  PoissonArrivals again(200, 42);
  EXPECT_EQ(std::chrono::duration<double>(again.Next()).count(), gaps[0]) << "seeded";
}

TEST(ReportTest, CsvAndJsonCarryEveryPoint) {
  BenchPoint a{"concurrency", 1, Summarize({100, 200, 300}, {}, 0, 1.5), true, 10};
  BenchPoint b{"concurrency", 16, Summarize({1000, 2000}, {50, 70, 60}, 3, 1.0), false, 20};
  const std::string csv = PointsToCsv({a, b});
  EXPECT_EQ(csv,
            "mode,load,requests,errors,seconds,throughput,p50_us,p90_us,p99_us,max_us,mean_us,"
            "stable,completed,error_p99_us\n"
            "concurrency,1,3,0,1.500,2.00,200.0,300.0,300.0,300.0,200.0,true,10,0.0\n"
            "concurrency,16,2,3,1.000,2.00,1000.0,2000.0,2000.0,2000.0,1500.0,false,20,70.0\n");
  const std::string json = PointsToJson({a, b}, "http://h:1/v2/models/\"m\"/infer");
  EXPECT_NE(json.find(R"("target":"http://h:1/v2/models/\"m\"/infer")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"({"mode":"concurrency","load":16,"requests":2,"errors":3,)"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find(R"("stable":false,"completed":20,"error_p99_us":70.0,"error_messages":[]})"),
            std::string::npos)
      << json;
  b.error_messages = {{"HTTP 400: {\"error\":\"x\"}", 3}};
  EXPECT_NE(PointsToJson({b}, "t").find(
                R"("error_messages":[{"message":"HTTP 400: {\"error\":\"x\"}","count":3}])"),
            std::string::npos);
}

}  // namespace
}  // namespace braid
