// The deployment files: the fields a broken rollout would come from.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <map>
#include <sstream>

namespace braid {
namespace {

std::map<std::string, YAML::Node> ByKindAndName() {
  std::map<std::string, YAML::Node> documents;
  for (const auto& doc : YAML::LoadAllFromFile(BRAID_SOURCE_DIR "/deploy/kubernetes/braid.yaml"))
    documents[doc["kind"].as<std::string>() + "/" + doc["metadata"]["name"].as<std::string>()] =
        doc;
  return documents;
}

TEST(ManifestsTest, ServingDeploymentProbesPortsDrainAndResources) {
  auto docs = ByKindAndName();
  ASSERT_TRUE(docs.count("Deployment/braid"));
  const YAML::Node spec = docs["Deployment/braid"]["spec"]["template"]["spec"];
  const YAML::Node container = spec["containers"][0];
  std::map<std::string, int> ports;
  for (const auto& port : container["ports"])
    ports[port["name"].as<std::string>()] = port["containerPort"].as<int>();
  EXPECT_EQ(ports, (std::map<std::string, int>{{"http", 8000}, {"grpc", 8001}, {"metrics", 8002}}));
  EXPECT_EQ(container["readinessProbe"]["httpGet"]["path"].as<std::string>(), "/v2/health/ready");
  EXPECT_EQ(container["livenessProbe"]["httpGet"]["path"].as<std::string>(), "/v2/health/live");
  EXPECT_EQ(container["readinessProbe"]["httpGet"]["port"].as<std::string>(), "http");
  EXPECT_TRUE(container["lifecycle"]["preStop"]);

  // The grace period covers the preStop pause and braid's drain.
  std::vector<std::string> args = container["args"].as<std::vector<std::string>>();
  EXPECT_EQ(args[0], "serve");
  auto flag = [&](const std::string& name) {
    auto it = std::find(args.begin(), args.end(), name);
    return it != args.end() && it + 1 != args.end() ? *(it + 1) : std::string();
  };
  const int drain = std::stoi(flag("--drain-timeout"));
  const int pause =
      std::stoi(container["lifecycle"]["preStop"]["exec"]["command"][1].as<std::string>());
  EXPECT_GT(spec["terminationGracePeriodSeconds"].as<int>(), drain + pause);
  EXPECT_EQ(flag("--redis"), "redis://braid-redis:6379");

  EXPECT_TRUE(container["resources"]["requests"]["cpu"]);
  EXPECT_TRUE(container["resources"]["requests"]["memory"]);
  EXPECT_TRUE(container["resources"]["limits"]["memory"]);
  EXPECT_EQ(container["env"][0]["name"].as<std::string>(), "BRAID_API_KEY");
  EXPECT_EQ(docs["Deployment/braid"]["spec"]["selector"]["matchLabels"]["app"].as<std::string>(),
            "braid");
}

TEST(ManifestsTest, ServicesAutoscalerAndRedis) {
  auto docs = ByKindAndName();
  ASSERT_TRUE(docs.count("Service/braid"));
  std::map<std::string, int> ports;
  for (const auto& port : docs["Service/braid"]["spec"]["ports"])
    ports[port["name"].as<std::string>()] = port["port"].as<int>();
  EXPECT_EQ(ports["http"], 8000);
  EXPECT_EQ(ports["grpc"], 8001);
  EXPECT_EQ(docs["Service/braid"]["spec"]["selector"]["app"].as<std::string>(), "braid");

  ASSERT_TRUE(docs.count("HorizontalPodAutoscaler/braid"));
  const YAML::Node hpa = docs["HorizontalPodAutoscaler/braid"]["spec"];
  EXPECT_EQ(hpa["scaleTargetRef"]["name"].as<std::string>(), "braid");
  std::vector<std::string> metrics;
  for (const auto& metric : hpa["metrics"]) {
    metrics.push_back(metric["type"].as<std::string>() == "Resource"
                          ? metric["resource"]["name"].as<std::string>()
                          : metric["pods"]["metric"]["name"].as<std::string>());
  }
  EXPECT_EQ(metrics, (std::vector<std::string>{"cpu", "braid_queue_depth"}));
  EXPECT_LE(hpa["minReplicas"].as<int>(), hpa["maxReplicas"].as<int>());

  ASSERT_TRUE(docs.count("Service/braid-redis"));
  EXPECT_EQ(docs["Service/braid-redis"]["spec"]["ports"][0]["port"].as<int>(), 6379);
  const std::string conf = docs["ConfigMap/braid-redis"]["data"]["redis.conf"].as<std::string>();
  EXPECT_NE(conf.find("maxmemory-policy allkeys-lru"), std::string::npos);
  EXPECT_TRUE(docs["Deployment/braid-redis"]["spec"]["template"]["spec"]["containers"][0]
                  ["readinessProbe"]);
}

TEST(ManifestsTest, SystemdUnitDrainsOnSigterm) {
  std::ifstream file(BRAID_SOURCE_DIR "/deploy/systemd/braid.service");
  std::stringstream text;
  text << file.rdbuf();
  const std::string unit = text.str();
  EXPECT_NE(unit.find("ExecStart=/usr/local/bin/braid serve"), std::string::npos);
  EXPECT_NE(unit.find("KillSignal=SIGTERM"), std::string::npos);
  const auto stop = unit.find("TimeoutStopSec=");
  ASSERT_NE(stop, std::string::npos);
  EXPECT_GT(std::stoi(unit.substr(stop + 15)), 30) << "longer than --drain-timeout 30";
  EXPECT_NE(unit.find("Restart=on-failure"), std::string::npos);
}

}  // namespace
}  // namespace braid
