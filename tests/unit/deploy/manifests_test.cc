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
  EXPECT_EQ(metrics, (std::vector<std::string>{"cpu", "braid_queue_depth",
                                               "braid_queue_seconds_per_request"}));
  EXPECT_LE(hpa["minReplicas"].as<int>(), hpa["maxReplicas"].as<int>());

  ASSERT_TRUE(docs.count("PodDisruptionBudget/braid"));
  const YAML::Node budget = docs["PodDisruptionBudget/braid"]["spec"];
  EXPECT_EQ(budget["selector"]["matchLabels"]["app"].as<std::string>(), "braid");
  EXPECT_LT(budget["maxUnavailable"].as<int>(), hpa["minReplicas"].as<int>())
      << "a disruption never takes every replica";

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

// Envoy is not packaged for Debian 12: its config's structure is checked
// here, the ORCA header it reads in load_report_test.cc.
TEST(ManifestsTest, EnvoyBalancesHttpByTheReplicasOrcaReports) {
  const YAML::Node config = YAML::LoadFile(BRAID_SOURCE_DIR "/deploy/envoy/envoy.yaml");
  std::map<std::string, YAML::Node> clusters;
  for (const auto& cluster : config["static_resources"]["clusters"])
    clusters[cluster["name"].as<std::string>()] = YAML::Node(cluster);
  ASSERT_TRUE(clusters.count("braid_http") && clusters.count("braid_grpc"));

  const YAML::Node policy =
      clusters["braid_http"]["load_balancing_policy"]["policies"][0]["typed_extension_config"];
  EXPECT_EQ(policy["name"].as<std::string>(),
            "envoy.load_balancing_policies.client_side_weighted_round_robin");
  EXPECT_EQ(policy["typed_config"]["@type"].as<std::string>(),
            "type.googleapis.com/envoy.extensions.load_balancing_policies."
            "client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin");
  EXPECT_FALSE(policy["typed_config"]["enable_oob_load_report"].as<bool>())
      << "the reports come on the answers";
  EXPECT_EQ(
      clusters["braid_http"]["health_checks"][0]["http_health_check"]["path"].as<std::string>(),
      "/v2/health/ready");
  EXPECT_TRUE(clusters["braid_grpc"]["typed_extension_protocol_options"]
                      ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
                      ["explicit_http_config"]["http2_protocol_options"]);
  for (const auto& [name, cluster] : clusters) {
    EXPECT_EQ(cluster["load_assignment"]["cluster_name"].as<std::string>(), name);
    EXPECT_EQ(cluster["load_assignment"]["endpoints"][0]["lb_endpoints"].size(), 3u) << name;
  }

  // Every HTTP request asks the replica for a report; every route leads to
  // a cluster that exists.
  for (const auto& listener : config["static_resources"]["listeners"]) {
    const YAML::Node manager = listener["filter_chains"][0]["filters"][0]["typed_config"];
    EXPECT_EQ(manager["http_filters"][0]["name"].as<std::string>(), "envoy.filters.http.router");
    const YAML::Node routes = manager["route_config"];
    for (const auto& host : routes["virtual_hosts"]) {
      for (const auto& route : host["routes"])
        EXPECT_TRUE(clusters.count(route["route"]["cluster"].as<std::string>()));
    }
    if (listener["name"].as<std::string>() != "braid_http") continue;
    const YAML::Node added = routes["request_headers_to_add"][0]["header"];
    EXPECT_EQ(added["key"].as<std::string>(), "endpoint-load-metrics-format");
    EXPECT_EQ(added["value"].as<std::string>(), "BIN");
  }
}

// The HPA's pods metrics come from prometheus-adapter's rules: each names
// the metric the HPA asks for, and each query is PromQL that promtool
// accepts once the adapter's templates are filled in as it fills them.
TEST(ManifestsTest, TheAdapterRulesServeTheAutoscalersMetrics) {
  auto docs = ByKindAndName();
  ASSERT_TRUE(docs.count("ConfigMap/braid-prometheus-adapter"));
  const YAML::Node config = YAML::Load(
      docs["ConfigMap/braid-prometheus-adapter"]["data"]["config.yaml"].as<std::string>());
  std::vector<std::string> served;
  std::string rules = "groups:\n  - name: adapter\n    rules:\n";
  for (const auto& rule : config["rules"]) {
    const std::string name = rule["name"]["as"].as<std::string>();
    served.push_back(name);
    EXPECT_EQ(rule["resources"]["overrides"]["pod"]["resource"].as<std::string>(), "pod");
    std::string query = rule["metricsQuery"].as<std::string>();
    const std::string series = rule["seriesQuery"].as<std::string>();
    for (auto [from, to] :
         {std::pair<std::string, std::string>{"<<.Series>>", series.substr(0, series.find('{'))},
          {"<<.LabelMatchers>>", "namespace=\"default\",pod=\"braid-0\""},
          {"<<.GroupBy>>", "pod"}}) {
      for (auto at = query.find(from); at != std::string::npos; at = query.find(from))
        query.replace(at, from.size(), to);
    }
    rules += "      - record: " + name + "\n        expr: '" + query + "'\n";
  }
  EXPECT_EQ(served,
            (std::vector<std::string>{"braid_queue_depth", "braid_queue_seconds_per_request"}));
  const std::string file = ::testing::TempDir() + "/adapter_rules.yaml";
  std::ofstream(file) << rules;
  const int status = std::system(("promtool check rules " + file + " > /dev/null").c_str());
  EXPECT_EQ(status, 0) << rules;
}

}  // namespace
}  // namespace braid
