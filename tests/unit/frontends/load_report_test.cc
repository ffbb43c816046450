// ORCA load reports: the three encodings of one report, the binary one
// decoded by protoc against OrcaLoadReport's schema, and the sampler.
#include "frontends/http/load_report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "core/base64.h"
#include "support/command.h"
#include "support/temp_dir.h"

namespace braid {
namespace {

using ::testing::HasSubstr;

// xds.data.orca.v3.OrcaLoadReport's fields (cncf/xds, orca_load_report.proto),
// for protoc to decode what braid writes by name.
constexpr char kOrcaSchema[] = R"(syntax = "proto3";
package xds.data.orca.v3;
message OrcaLoadReport {
  double cpu_utilization = 1;
  double mem_utilization = 2;
  uint64 rps = 3;
  map<string, double> request_cost = 4;
  map<string, double> utilization = 5;
  double rps_fractional = 6;
  double eps = 7;
  map<string, double> named_metrics = 8;
  double application_utilization = 9;
}
)";

LoadReport Example() {
  LoadReport report;
  report.cpu_utilization = 0.5;
  report.mem_utilization = 0.25;
  report.rps_fractional = 120;
  report.application_utilization = 0.75;
  report.named_metrics["queue_depth"] = 3;
  return report;
}

TEST(LoadReportTest, TextAndJsonAsTheSpecWritesThem) {
  EXPECT_EQ(EncodeLoadReport(Example(), LoadReportFormat::kText),
            "TEXT cpu_utilization=0.5, mem_utilization=0.25, rps_fractional=120, "
            "application_utilization=0.75, named_metrics.queue_depth=3");
  const std::string json = EncodeLoadReport(Example(), LoadReportFormat::kJson);
  ASSERT_TRUE(json.starts_with("JSON "));
  rapidjson::Document document;
  document.Parse(json.c_str() + 5);
  ASSERT_FALSE(document.HasParseError()) << json;
  EXPECT_EQ(document["cpu_utilization"].GetDouble(), 0.5);
  EXPECT_EQ(document["application_utilization"].GetDouble(), 0.75);
  EXPECT_EQ(document["named_metrics"]["queue_depth"].GetDouble(), 3);
}

TEST(LoadReportTest, BinaryIsAnOrcaLoadReportThatProtocDecodes) {
  const std::string header = EncodeLoadReport(Example(), LoadReportFormat::kBinary);
  ASSERT_TRUE(header.starts_with("BIN "));
  auto bytes = Base64Decode(header.substr(4));
  ASSERT_TRUE(bytes.ok());
  testing::TempDir dir;
  dir.Write("orca.proto", kOrcaSchema);
  const auto message = dir.Write("report.bin", *bytes);
  auto decoded = testing::RunCommand(
      "protoc --decode=xds.data.orca.v3.OrcaLoadReport -I " + dir.path().string() + " " +
      (dir.path() / "orca.proto").string() + " < " + message.string());
  ASSERT_EQ(decoded.exit_code, 0) << decoded.err;
  EXPECT_EQ(decoded.out,
            "cpu_utilization: 0.5\nmem_utilization: 0.25\nrps_fractional: 120\n"
            "named_metrics {\n  key: \"queue_depth\"\n  value: 3\n}\n"
            "application_utilization: 0.75\n");
}

TEST(LoadReportTest, TheFormatIsAskedForInAnyCase) {
  EXPECT_EQ(ParseLoadReportFormat("TEXT"), LoadReportFormat::kText);
  EXPECT_EQ(ParseLoadReportFormat("json"), LoadReportFormat::kJson);
  EXPECT_EQ(ParseLoadReportFormat("Bin"), LoadReportFormat::kBinary);
  EXPECT_EQ(ParseLoadReportFormat("yaml"), std::nullopt);
  EXPECT_EQ(ParseLoadReportFormat(""), std::nullopt);
}

TEST(LoadReportTest, TheReporterSamplesAtMostOncePerPeriod) {
  double queue = 4;
  LoadReporter slow({[] { return 0.5; }, [&] { return queue; }}, std::chrono::hours(1));
  for (int i = 0; i < 10; ++i) slow.Count();
  const LoadReport first = slow.Current();
  EXPECT_EQ(first.named_metrics.at("queue_depth"), 4);
  EXPECT_EQ(first.application_utilization, 0.5);
  EXPECT_GT(first.rps_fractional, 0) << "ten requests since it started";
  EXPECT_GT(first.mem_utilization, 0);
  queue = 9;
  EXPECT_EQ(slow.Current().named_metrics.at("queue_depth"), 4) << "within the period";
  LoadReporter eager({[] { return 0.5; }, [&] { return queue; }}, std::chrono::seconds(0));
  eager.Current();
  queue = 2;
  EXPECT_EQ(eager.Current().named_metrics.at("queue_depth"), 2);
}

}  // namespace
}  // namespace braid
