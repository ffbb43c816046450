// `braid serve` on loopback, driven by curl: the KServe v2 REST contract,
// the binary tensor extension, limits, auth, repository control, metrics
// (checked by promtool) and a drain under load.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "core/base64.h"
#include "grpc_service.grpc.pb.h"
#include "server/server.h"
#include "support/command.h"
#include "support/fixtures.h"
#include "support/loopback.h"
#include "support/redis_process.h"
#include "support/server_process.h"
#include "support/temp_dir.h"
#include "support/wav.h"

namespace braid {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunCommand;
using testing::ServerProcess;
using ::testing::StartsWith;

struct Reply {
  int code = 0;
  std::string body;
  std::string headers;
};

// One curl call: `args` are extra curl arguments, `path` is appended to `url`.
Reply Curl(const std::string& url, const std::string& path, const std::string& args = "") {
  testing::TempDir dir;
  auto result = RunCommand("curl -s -S -o " + (dir.path() / "body").string() + " -D " +
                           (dir.path() / "headers").string() + " -w '%{http_code}' " + args + " '" +
                           url + path + "'");
  Reply reply;
  reply.code = std::atoi(result.out.c_str());
  std::ifstream body(dir.path() / "body", std::ios::binary), headers(dir.path() / "headers");
  reply.body.assign(std::istreambuf_iterator<char>(body), {});
  reply.headers.assign(std::istreambuf_iterator<char>(headers), {});
  return reply;
}

Reply Curl(const ServerProcess& server, const std::string& path, const std::string& args = "") {
  return Curl(server.url(), path, args);
}

Reply Post(const ServerProcess& server, const std::string& path, const std::string& json,
           const std::string& args = "") {
  testing::TempDir dir;
  auto file = dir.Write("request.json", json);
  return Curl(
      server, path,
      "-X POST -H 'Content-Type: application/json' --data-binary @" + file.string() + " " + args);
}

rapidjson::Document Parse(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str());
  EXPECT_FALSE(doc.HasParseError()) << text;
  return doc;
}

std::string IdentityRequest(const std::string& shape = "[1,16]",
                            const std::string& data = "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15.5]",
                            const std::string& datatype = "FP32") {
  return R"({"inputs":[{"name":"input","shape":)" + shape + R"(,"datatype":")" + datatype +
         R"(","data":)" + data + "}]}";
}

class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess();
    ASSERT_TRUE(server_->ready()) << "ready line: " << server_->ready_line();
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(server_->Stop(), 0) << "braid serve exits 0 on SIGTERM";
    delete server_;
  }
  // The runs `workflow`'s statistics count so far (the suite shares one
  // server, so tests compare before and after).
  static std::uint64_t WorkflowRuns(const std::string& workflow) {
    Reply stats = Curl(*server_, "/v2/models/" + workflow + "/stats");
    EXPECT_EQ(stats.code, 200) << stats.body;
    auto doc = Parse(stats.body);
    EXPECT_EQ(doc["model_stats"].Size(), 1u) << stats.body;
    return doc["model_stats"][0]["inference_count"].GetUint64();
  }
  static ServerProcess* server_;
};
ServerProcess* ServeTest::server_ = nullptr;

// Every endpoint in the server's route table (what 404s suggest from) is
// served: asked with its method, each answers with a status of its own, or
// an error other than "no endpoint" (an empty repository: models are unknown).
TEST(ServerRoutesTest, EveryEndpointOfTheTableIsServed) {
  testing::TempDir repository, data;
  ServerOptions options;
  options.repository = repository.path();
  options.workflows = std::filesystem::path(BRAID_BINARY).parent_path() / "workflows";
  options.collections = data.path();
  options.host = "127.0.0.1";
  options.http_port = options.grpc_port = options.metrics_port = 0;
  auto server = Server::Start(options);
  ASSERT_TRUE(server.ok()) << server.status().message();
  const std::string url = "http://127.0.0.1:" + std::to_string((*server)->ports().http);
  ASSERT_GT((*server)->endpoints().size(), 50u);
  for (const Endpoint& endpoint : (*server)->endpoints()) {
    std::string path(endpoint.path);
    for (const auto& [placeholder, value] :
         std::vector<std::pair<std::string, std::string>>{{"{model}", "identity"},
                                                          {"{version}", "1"},
                                                          {"{name}", "listed"},
                                                          {"{task_id}", "task"},
                                                          {"{collection}", "listed"},
                                                          {"{id...}", "item"},
                                                          {"{report}", "report"},
                                                          {"{file...}", "favicon.svg"}}) {
      for (auto at = path.find(placeholder); at != std::string::npos; at = path.find(placeholder))
        path.replace(at, placeholder.size(), value);
    }
    ASSERT_EQ(path.find('{'), std::string::npos)
        << "a placeholder without a sample value: " << path;
    Reply reply =
        Curl(url, path,
             "-X " + endpoint.method + " --max-time 5" +
                 (endpoint.method == "POST" ? " -H 'Content-Type: application/json' -d '{}'" : ""));
    EXPECT_NE(reply.code, 405) << endpoint.method << " " << path << ": " << reply.body;
    EXPECT_THAT(reply.body, Not(HasSubstr("no endpoint"))) << endpoint.method << " " << path;
  }
  EXPECT_TRUE((*server)->Shutdown(std::chrono::seconds(5)).clean());
}

TEST_F(ServeTest, ReadyLineHealthAndServerMetadata) {
  EXPECT_THAT(server_->ready_line(), StartsWith("braid ready http=127.0.0.1:"));
  EXPECT_EQ(Curl(*server_, "/v2/health/live").code, 200);
  EXPECT_EQ(Curl(*server_, "/v2/health/ready").code, 200);
  Reply meta = Curl(*server_, "/v2");
  ASSERT_EQ(meta.code, 200);
  auto doc = Parse(meta.body);
  EXPECT_STREQ(doc["name"].GetString(), "braid");
  EXPECT_TRUE(doc["extensions"].IsArray());
}

// Envoy's client-side weighted round robin reads ORCA reports from the
// answers of the requests that ask for them (frontends/http/load_report.h).
TEST_F(ServeTest, AnswersCarryAnOrcaLoadReportWhenAskedFor) {
  auto head = [&](const std::string& format) {
    return RunCommand("curl -s -o /dev/null -D - -H 'endpoint-load-metrics-format: " + format +
                      "' " + server_->url() + "/v2/health/ready")
        .out;
  };
  EXPECT_THAT(head("text"), HasSubstr("endpoint-load-metrics: TEXT cpu_utilization="));
  EXPECT_THAT(head("JSON"), HasSubstr("endpoint-load-metrics: JSON {\"cpu_utilization\":"));
  EXPECT_THAT(head("bin"), HasSubstr("endpoint-load-metrics: BIN "));
  EXPECT_THAT(head("xml"), Not(HasSubstr("endpoint-load-metrics"))) << "an unknown format";
  EXPECT_THAT(RunCommand("curl -s -o /dev/null -D - " + server_->url() + "/v2/health/ready").out,
              Not(HasSubstr("endpoint-load-metrics")))
      << "not asked for";
}

TEST_F(ServeTest, ModelMetadataConfigReadyAndStats) {
  Reply meta = Curl(*server_, "/v2/models/clip-image");
  ASSERT_EQ(meta.code, 200) << meta.body;
  auto doc = Parse(meta.body);
  EXPECT_STREQ(doc["name"].GetString(), "clip-image");
  EXPECT_STREQ(doc["inputs"][0]["name"].GetString(), "pixel_values");
  EXPECT_EQ(doc["inputs"][0]["shape"].Size(), 4u);
  EXPECT_EQ(doc["inputs"][0]["shape"][0].GetInt(), -1);
  EXPECT_EQ(doc["outputs"][0]["shape"][1].GetInt(), 512);
  EXPECT_EQ(Curl(*server_, "/v2/models/clip-image/versions/1").code, 200);
  EXPECT_EQ(Curl(*server_, "/v2/models/clip-image/ready").code, 200);
  EXPECT_EQ(Curl(*server_, "/v2/models/clip-image/versions/1/ready").code, 200);
  Reply config = Curl(*server_, "/v2/models/clip-image/config");
  ASSERT_EQ(config.code, 200);
  EXPECT_EQ(Parse(config.body)["max_batch_size"].GetInt(), 64);
  ASSERT_EQ(Post(*server_, "/v2/models/identity/infer", IdentityRequest()).code, 200);
  Reply stats = Curl(*server_, "/v2/models/identity/stats");
  ASSERT_EQ(stats.code, 200);
  auto stats_doc = Parse(stats.body);
  EXPECT_GE(stats_doc["model_stats"][0]["inference_count"].GetUint64(), 1u);
}

TEST_F(ServeTest, InferJsonTensors) {
  Reply reply = Post(
      *server_, "/v2/models/identity/infer",
      R"({"id":"r1","inputs":[{"name":"input","shape":[2,16],"datatype":"FP32","data":[[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15],[16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31.25]]}]})");
  ASSERT_EQ(reply.code, 200) << reply.body;
  auto doc = Parse(reply.body);
  EXPECT_STREQ(doc["id"].GetString(), "r1");
  EXPECT_STREQ(doc["model_version"].GetString(), "1");
  const auto& output = doc["outputs"][0];
  EXPECT_STREQ(output["name"].GetString(), "output");
  EXPECT_EQ(output["shape"][0].GetInt(), 2);
  EXPECT_EQ(output["data"].Size(), 32u);
  EXPECT_EQ(output["data"][31].GetDouble(), 31.25);

  std::string ids = "[49406";
  for (int i = 1; i < 77; ++i) ids += i == 5 ? ",49407" : i < 5 ? ",320" : ",0";
  ids += "]";
  Reply text = Post(*server_, "/v2/models/clip-text/infer",
                    R"({"inputs":[{"name":"input_ids","shape":[1,77],"datatype":"INT64","data":)" +
                        ids + R"(}],"parameters":{"priority":1,"timeout":5000000}})");
  ASSERT_EQ(text.code, 200) << text.body;
  EXPECT_EQ(Parse(text.body)["outputs"][0]["data"].Size(), 512u);
}

// A workflow is served by name like a model (as Triton serves an
// ensemble): KServe infer runs it and answers its outputs (one the run
// skipped is empty), a missing input is a 400 that names it, and its runs
// count in its statistics.
TEST_F(ServeTest, AWorkflowIsInferredByNameLikeAModel) {
  const std::uint64_t before = WorkflowRuns("multimodal-assist");
  Reply reply = Post(
      *server_, "/v2/models/multimodal-assist/infer",
      R"({"id":"w1","inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["what is this?"]}]})");
  ASSERT_EQ(reply.code, 200) << reply.body;
  auto doc = Parse(reply.body);
  EXPECT_STREQ(doc["model_name"].GetString(), "multimodal-assist");
  EXPECT_STREQ(doc["id"].GetString(), "w1");
  std::map<std::string, std::string> outputs;
  for (const auto& output : doc["outputs"].GetArray()) {
    const auto& data = output["data"];
    outputs[output["name"].GetString()] = data.Empty() ? "(empty)" : data[0].GetString();
  }
  EXPECT_EQ(outputs["text_answer"],
            "You asked: what is this? (no image or audio attached; no chat model is configured)");
  EXPECT_EQ(outputs["answer"], "(empty)");
  EXPECT_EQ(outputs["image_text"], "(empty)");
  EXPECT_EQ(outputs.size(), 5u);
  EXPECT_EQ(Curl(*server_, "/v2/models/multimodal-assist/ready").code, 200);
  EXPECT_EQ(Curl(*server_, "/v2/models/multimodal-assist/versions/2/ready").code, 404);

  Reply missing =
      Post(*server_, "/v2/models/image-text-match/infer",
           R"({"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["a cat"]}]})");
  EXPECT_EQ(missing.code, 400) << missing.body;
  EXPECT_THAT(missing.body, HasSubstr("needs input 'image'"));

  EXPECT_EQ(WorkflowRuns("multimodal-assist"), before + 1);
}

// Every front end runs a workflow through the serving core
// (InferenceService::Run): a run of the workflow API and a chat completion
// count in the workflow's statistics beside KServe's.
TEST_F(ServeTest, EveryFrontEndsRunOfAWorkflowCountsInItsStatistics) {
  const std::uint64_t before = WorkflowRuns("multimodal-assist");
  Reply run = Post(*server_, "/v1/workflows/multimodal-assist/run",
                   R"({"inputs":{"text":"what is this?"},"response_mode":"blocking"})");
  ASSERT_EQ(run.code, 200) << run.body;
  EXPECT_THAT(run.body, HasSubstr("You asked: what is this?"));
  Reply chat = Post(*server_, "/v1/chat/completions",
                    R"({"model":"multimodal-assist","messages":[{"role":"user","content":"hi"}]})");
  ASSERT_EQ(chat.code, 200) << chat.body;
  EXPECT_THAT(chat.body, HasSubstr("You asked: hi"));
  EXPECT_EQ(WorkflowRuns("multimodal-assist"), before + 2);
}

TEST_F(ServeTest, InferBinaryTensorsBothWays) {
  testing::TempDir dir;
  std::string header =
      R"({"inputs":[{"name":"input","shape":[1,16],"datatype":"FP32","parameters":{"binary_data_size":64}}],"outputs":[{"name":"output","parameters":{"binary_data":true}}]})";
  std::string body = header;
  for (int i = 0; i < 16; ++i) {
    float v = i * 0.5f;
    body.append(reinterpret_cast<const char*>(&v), sizeof(v));
  }
  auto file = dir.Write("binary.bin", body);
  Reply reply = Curl(
      *server_, "/v2/models/identity/infer",
      "-X POST -H 'Content-Type: application/octet-stream' -H 'Inference-Header-Content-Length: " +
          std::to_string(header.size()) + "' --data-binary @" + file.string());
  ASSERT_EQ(reply.code, 200) << reply.body;
  std::smatch match;
  static const std::regex kLength("Inference-Header-Content-Length: (\\d+)");
  ASSERT_TRUE(std::regex_search(reply.headers, match, kLength)) << reply.headers;
  std::size_t json_length = std::stoul(match[1]);
  ASSERT_EQ(reply.body.size(), json_length + 64);
  EXPECT_THAT(reply.body.substr(0, json_length), HasSubstr(R"("binary_data_size":64)"));
  float last;
  std::memcpy(&last, reply.body.data() + json_length + 60, sizeof(last));
  EXPECT_EQ(last, 7.5f);
}

// `bytes` as the one BYTES element of `model`'s `input` over the binary
// extension, asking for `outputs` (a JSON list of {"name"}).
Reply InferBytes(const ServerProcess& server, const std::string& model, const std::string& input,
                 const std::string& bytes, const std::string& outputs = "[]") {
  // A BYTES element on the wire: 4-byte little-endian length, then the bytes.
  std::string element(4, '\0');
  const auto length = static_cast<std::uint32_t>(bytes.size());
  std::memcpy(element.data(), &length, sizeof(length));
  element += bytes;
  const std::string header =
      R"({"inputs":[{"name":")" + input +
      R"(","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":)" +
      std::to_string(element.size()) + R"(}}],"outputs":)" + outputs + "}";
  testing::TempDir dir;
  auto file = dir.Write("request.bin", header + element);
  return Curl(server, "/v2/models/" + model + "/infer",
              "-X POST -H 'Inference-Header-Content-Length: " + std::to_string(header.size()) +
                  "' --data-binary @" + file.string());
}

std::string Fixture(const std::string& relative) {
  std::ifstream in(std::string(BRAID_TEST_FIXTURES) + "/" + relative, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

TEST_F(ServeTest, OcrOverTheBinaryExtension) {
  const std::string image = Fixture("images/text_2_DejaVu-Serif_40.jpg");
  ASSERT_FALSE(image.empty());
  Reply reply =
      InferBytes(*server_, "ocr", "image", image, R"([{"name":"text"},{"name":"words"}])");
  ASSERT_EQ(reply.code, 200) << reply.body;
  auto doc = Parse(reply.body);
  EXPECT_THAT(std::string(doc["outputs"][0]["data"][0].GetString()),
              HasSubstr("Please call customer service"));
  EXPECT_EQ(doc["outputs"].Size(), 2u) << "only the requested outputs";
}

TEST_F(ServeTest, ChunkedRequestBodyAndGzippedResponse) {
  testing::TempDir dir;
  auto file = dir.Write("request.json", IdentityRequest());
  Reply chunked = Curl(*server_, "/v2/models/identity/infer",
                       "-X POST -H 'Transfer-Encoding: chunked' --data-binary @" + file.string());
  EXPECT_EQ(chunked.code, 200) << chunked.body;

  std::string pixels = "[";
  for (int i = 0; i < 3 * 224 * 224; ++i) pixels += i ? ",0.5" : "0.5";
  pixels += "]";
  auto image = dir.Write(
      "image.json",
      R"({"inputs":[{"name":"pixel_values","shape":[1,3,224,224],"datatype":"FP32","data":)" +
          pixels + "}]}");
  Reply gzipped = Curl(*server_, "/v2/models/clip-image/infer",
                       "--compressed -X POST --data-binary @" + image.string());
  ASSERT_EQ(gzipped.code, 200) << gzipped.body;
  EXPECT_THAT(gzipped.headers, HasSubstr("Content-Encoding: gzip"));
  EXPECT_EQ(Parse(gzipped.body)["outputs"][0]["data"].Size(), 512u) << "curl decompressed it";
}

// Each bad request: the right 4xx with a JSON error, and the server serving on.
TEST_F(ServeTest, BadInputGetsTheRightError) {
  struct Case {
    std::string path, body, extra;
    int code;
    std::string message;
  };
  const std::string identity = "/v2/models/identity/infer";
  auto binary_header = [](int size) {
    return R"({"inputs":[{"name":"input","shape":[1,16],"datatype":"FP32","parameters":{"binary_data_size":)" +
           std::to_string(size) + "}}]}";
  };
  auto length_of = [](const std::string& header) {
    return "-H 'Inference-Header-Content-Length: " + std::to_string(header.size()) + "'";
  };
  std::vector<Case> cases = {
      {identity, "{\"inputs\": [", "", 400, "malformed JSON"},
      {identity, "[1,2]", "", 400, "JSON object"},
      {identity, IdentityRequest("[1,16]", "[1]"), "", 400, "needs 16"},
      {identity, IdentityRequest("[1,15]", "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]"), "", 400,
       "expected [-1,16]"},
      {identity, IdentityRequest("[1,16]", "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]", "INT64"), "",
       400, "must be FP32"},
      {identity, IdentityRequest("[1,16]", "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]", "FLOAT"), "",
       400, "unknown datatype"},
      {identity, IdentityRequest("[4611686018427387904,4]", "[]"), "", 400, "too many elements"},
      {identity, binary_header(64), length_of(binary_header(64)), 400, "past the end"},
      {identity, binary_header(60) + std::string(60, 'x'), length_of(binary_header(60)), 400,
       "needs 64 bytes"},
      {identity, binary_header(64) + std::string(64, 'x') + "extra", length_of(binary_header(64)),
       400, "not claimed"},
      {identity, IdentityRequest(), "-H 'Inference-Header-Content-Length: 999999'", 400,
       "past the end"},
      {identity, IdentityRequest(), "-H 'Inference-Header-Content-Length: twelve'", 400,
       "byte count"},
      {identity, R"({"inputs":[],"parameters":{"priority":"high"}})", "", 400, "integer"},
      {identity,
       R"({"inputs":[{"name":"input","shape":[1,16],"datatype":"FP32","data":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]}],"parameters":{"priority":9}})",
       "", 400, "priority 9"},
      {"/v2/models/nope/infer", IdentityRequest(), "", 404,
       "unknown model 'nope'; the models are: align, asr, clip-image"},
      {"/v2/models/identty/infer", IdentityRequest(), "", 404,
       "unknown model 'identty'; did you mean 'identity'? the models are: "},
      {"/v2/models/identity/versions/7/infer", IdentityRequest(), "", 404, "no version 7"},
      {"/v2/models/identity/versions/x/infer", IdentityRequest(), "", 400, "not a model version"},
      {"/v2/models/..%2F..%2Fetc/infer", IdentityRequest(), "", 404, "no endpoint"},
      {"/v2/nothing", "{}", "", 404, "no endpoint"},
      {"/v1/embedding", "{}", "", 404,
       "no endpoint POST /v1/embedding; did you mean POST /v1/embeddings?"},
  };
  for (const auto& c : cases) {
    Reply reply = Post(*server_, c.path, c.body, c.extra);
    EXPECT_EQ(reply.code, c.code) << c.path << " " << c.body.substr(0, 80) << " -> " << reply.body;
    EXPECT_THAT(reply.body, StartsWith("{\"error\":")) << c.body.substr(0, 80);
    EXPECT_THAT(reply.body, HasSubstr(c.message)) << c.body.substr(0, 80);
  }
  EXPECT_EQ(Curl(*server_, "/v2/models/identity/infer").code, 405) << "infer takes POST";
  // Deeply nested JSON is refused without exhausting the stack.
  std::string deep = R"({"inputs":[{"name":"input","shape":[1,16],"datatype":"FP32","data":)" +
                     std::string(100000, '[') + std::string(100000, ']') + "}]}";
  EXPECT_EQ(Post(*server_, identity, deep).code, 400);
  EXPECT_EQ(Post(*server_, identity, IdentityRequest()).code, 200) << "still serving";
}

// Opens a TCP connection to the server's HTTP port.
int Connect(int port) {
  const int fd = testing::ConnectLoopback(port);
  EXPECT_GE(fd, 0);
  return fd;
}

std::string ReadUntil(int fd, const std::function<bool(const std::string&)>& done) {
  std::string data;
  char buffer[65536];
  while (!done(data)) {
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    data.append(buffer, n);
  }
  return data;
}

// HEAD is answered as GET would be (its status and headers, Content-Length
// included) without the body, on a connection that goes on serving; a
// stream's HEAD (a live report's events) ends with its headers.
TEST_F(ServeTest, HeadAnswersWithGetsHeadersAndNoBody) {
  const Reply get = Curl(*server_, "/v2");
  const Reply head = Curl(*server_, "/v2", "-I");
  ASSERT_EQ(head.code, 200);
  EXPECT_THAT(head.headers, HasSubstr("Content-Length: " + std::to_string(get.body.size())));
  // Pipelined behind a HEAD, the next answer starts right after its headers.
  const int fd = Connect(server_->http_port());
  const std::string requests =
      "HEAD /v2 HTTP/1.1\r\nHost: t\r\n\r\n"
      "GET /v2/health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(send(fd, requests.data(), requests.size(), 0), static_cast<ssize_t>(requests.size()));
  const std::string answers = ReadUntil(fd, [](const std::string&) { return false; });
  close(fd);
  const auto end_of_head = answers.find("\r\n\r\n");
  ASSERT_NE(end_of_head, std::string::npos) << answers;
  EXPECT_TRUE(answers.substr(end_of_head + 4).starts_with("HTTP/1.1 200"))
      << "no body after the HEAD's headers: " << answers;
  EXPECT_EQ(Curl(*server_, "/v2/models/nope", "-I").code, 404);
  EXPECT_EQ(Curl(*server_, "/v2/models/identity/infer", "-I").code, 405);

  const Reply report = Post(*server_, "/v1/live/reports", "{}");
  ASSERT_EQ(report.code, 201) << report.body;
  const std::string id = Parse(report.body)["id"].GetString();
  const auto twice = RunCommand(
      "curl -s -I -o /dev/null -o /dev/null --max-time 10 -w '%{http_code}:%{num_connects} ' " +
      server_->url() + "/v1/live/reports/" + id + "/events " + server_->url() + "/v2");
  EXPECT_EQ(twice.out, "200:1 200:0 ") << "both answered, on one connection";
}

TEST_F(ServeTest, PipelinedRequestsAnsweredInOrder) {
  int fd = Connect(server_->http_port());
  std::string first = IdentityRequest("[1,16]", "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]");
  std::string second = IdentityRequest("[1,16]", "[2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2]");
  std::string wire;
  for (const auto& body : {first, second}) {
    wire += "POST /v2/models/identity/infer HTTP/1.1\r\nHost: x\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  wire += "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(send(fd, wire.data(), wire.size(), 0), static_cast<ssize_t>(wire.size()));
  std::string data = ReadUntil(
      fd, [](const std::string& d) { return d.find("{\"live\":true}") != std::string::npos; });
  close(fd);
  auto one = data.find("\"data\":[1,1");
  auto two = data.find("\"data\":[2,2");
  auto live = data.find("{\"live\":true}");
  ASSERT_NE(one, std::string::npos) << data;
  ASSERT_NE(two, std::string::npos) << data;
  EXPECT_LT(one, two);
  EXPECT_LT(two, live);
}

// A request pipelined behind another is parsed as soon as the first answer
// is written; one refused on its head (malformed here) gets its answer
// once, after the first, and the connection closes.
TEST_F(ServeTest, APipelinedMalformedRequestIsAnsweredOnceAfterTheOneBefore) {
  const int fd = Connect(server_->http_port());
  const std::string wire =
      "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /v2 HTTP/1.1\r\nHost x\r\n\r\n";  // a header line without its colon
  ASSERT_EQ(send(fd, wire.data(), wire.size(), 0), static_cast<ssize_t>(wire.size()));
  const std::string data = ReadUntil(fd, [](const std::string&) { return false; });
  close(fd);
  ASSERT_TRUE(data.starts_with("HTTP/1.1 200")) << data;
  const auto refusal = data.find("HTTP/1.1 400");
  ASSERT_NE(refusal, std::string::npos) << data;
  EXPECT_EQ(data.find("HTTP/1.1", refusal + 1), std::string::npos) << "one answer each: " << data;
}

// A client that ends its side of the connection (shutdown after sending)
// still reads the answer owed to it; then the connection closes.
TEST_F(ServeTest, AClientThatEndsItsSideAfterItsRequestStillGetsTheAnswer) {
  for (const std::string path : {"/v2", "/v2/health/live", "/v2/models/identity"}) {
    const int fd = Connect(server_->http_port());
    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
    ASSERT_EQ(send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
    shutdown(fd, SHUT_WR);
    const std::string data = ReadUntil(fd, [](const std::string&) { return false; });
    close(fd);
    EXPECT_TRUE(data.starts_with("HTTP/1.1 200")) << path << ": " << data;
  }
}

TEST_F(ServeTest, AbandonedAndOversizedConnectionsDoNotHurtOthers) {
  // A client that sends half a header and leaves.
  int half = Connect(server_->http_port());
  std::string partial = "POST /v2/models/identity/infer HTTP/1.1\r\nContent-Le";
  send(half, partial.data(), partial.size(), 0);
  close(half);
  // A client that promises a body and never sends it, kept open meanwhile.
  int stalled = Connect(server_->http_port());
  std::string promise =
      "POST /v2/models/identity/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{";
  send(stalled, promise.data(), promise.size(), 0);
  // A header section past the limit.
  int huge = Connect(server_->http_port());
  std::string headers =
      "GET /v2 HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n";
  send(huge, headers.data(), headers.size(), 0);
  std::string answer =
      ReadUntil(huge, [](const std::string& d) { return d.find("}") != std::string::npos; });
  EXPECT_THAT(answer, StartsWith("HTTP/1.1 431"));
  close(huge);
  EXPECT_EQ(Post(*server_, "/v2/models/identity/infer", IdentityRequest()).code, 200);
  close(stalled);
}

TEST(ServeCancelTest, ClientThatLeavesHasItsQueuedWorkDropped) {
  ServerProcess server;
  ASSERT_TRUE(server.ready());
  testing::TempDir dir;
  auto body = [](int images) {
    const std::size_t bytes = std::size_t(images) * 3 * 224 * 224 * sizeof(float);
    std::string header = R"({"inputs":[{"name":"pixel_values","shape":[)" + std::to_string(images) +
                         R"(,3,224,224],"datatype":"FP32","parameters":{"binary_data_size":)" +
                         std::to_string(bytes) +
                         R"(}}],"parameters":{"cache":false,"timeout":60000000}})";
    return std::make_pair(header, header + std::string(bytes, '\0'));
  };
  // Keep clip-image busy with six large batches (every request may queue
  // as long as a loaded machine needs: the model's own queue timeout, 2 s,
  // could refuse the small one on arrival, and then it is never queued)...
  auto [big_header, big] = body(16);
  auto file = dir.Write("big.bin", big);
  std::string busy =
      "for i in 1 2 3 4 5 6; do curl -s -o /dev/null -X POST -H "
      "'Inference-Header-Content-Length: " +
      std::to_string(big_header.size()) + "' --data-binary @" + file.string() + " " + server.url() +
      "/v2/models/clip-image/infer & done; wait";
  std::thread load([&] { RunCommand(busy); });
  // Wait until at least three of them are in flight (one running, the rest queued).
  auto busy_until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < busy_until) {
    auto metrics = RunCommand("curl -s http://127.0.0.1:" + std::to_string(server.metrics_port()) +
                              "/metrics | sed -n 's/^braid_inflight_requests //p'");
    if (std::atoi(metrics.out.c_str()) >= 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // ...then queue one more request and hang up before it is answered.
  auto [small_header, small] = body(1);
  int fd = Connect(server.http_port());
  std::string request =
      "POST /v2/models/clip-image/infer HTTP/1.1\r\nHost: x\r\nInference-Header-Content-Length: " +
      std::to_string(small_header.size()) + "\r\nContent-Length: " + std::to_string(small.size()) +
      "\r\n\r\n" + small;
  ASSERT_EQ(send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  close(fd);
  load.join();
  // The abandoned request is dropped from the queue, never computed. Wait
  // until each of the six large requests is accounted for (computed, or
  // refused by the queue's timeout on a slow machine: the counters move
  // after the answers leave), then no 1-image batch may have run.
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::uint64_t cancelled = 0, inferences = 0, refused = 0;
  while (std::chrono::steady_clock::now() < until) {
    auto stats = Parse(Curl(server, "/v2/models/clip-image/stats").body);
    const auto& model = stats["model_stats"][0];
    cancelled = model["cancelled"].GetUint64();
    inferences = model["inference_count"].GetUint64();
    refused = model["rejected"].GetUint64() + model["timed_out"].GetUint64();
    if (cancelled > 0 && inferences + 16 * refused >= 96) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(cancelled, 1u);
  EXPECT_EQ(inferences + 16 * refused, 96u) << "the six batches of 16, computed or refused";
  EXPECT_EQ(inferences % 16, 0u) << "the abandoned 1-image request never ran";
  EXPECT_GE(inferences, 16u);
}

TEST(ServeCacheTest, RepeatedInputsAreAnsweredFromTheCache) {
  ServerProcess server;
  ASSERT_TRUE(server.ready());
  std::string ids = "[49406";
  for (int i = 1; i < 77; ++i) ids += i == 3 ? ",49407" : i < 3 ? ",320" : ",0";
  ids += "]";
  const std::string request =
      R"({"inputs":[{"name":"input_ids","shape":[1,77],"datatype":"INT64","data":)" + ids + "}]";
  Reply first = Post(server, "/v2/models/clip-text/infer", request + "}");
  Reply second = Post(server, "/v2/models/clip-text/infer", request + "}");
  Reply bypass =
      Post(server, "/v2/models/clip-text/infer", request + R"(,"parameters":{"cache":false}})");
  ASSERT_EQ(first.code, 200) << first.body;
  EXPECT_EQ(second.body, first.body) << "a hit returns the same embedding";
  EXPECT_EQ(bypass.body, first.body);
  auto stats = Parse(Curl(server, "/v2/models/clip-text/stats").body);
  EXPECT_EQ(stats["model_stats"][0]["inference_count"].GetUint64(), 2u)
      << "the hit did not run the model";
  auto metrics =
      RunCommand("curl -s http://127.0.0.1:" + std::to_string(server.metrics_port()) + "/metrics");
  EXPECT_THAT(metrics.out, HasSubstr("braid_cache_hits_total{tier=\"memory\"} 1"));
  EXPECT_THAT(metrics.out, HasSubstr("braid_cache_misses_total{tier=\"memory\"} 1"));
}

// A clip-text request for a short prompt; `token` varies the prompt.
std::string ClipTextRequest(int token) {
  std::string ids = "[49406," + std::to_string(token) + ",49407";
  for (int i = 3; i < 77; ++i) ids += ",0";
  return R"({"inputs":[{"name":"input_ids","shape":[1,77],"datatype":"INT64","data":)" + ids +
         "]}]}";
}

std::string MetricsOf(const ServerProcess& server) {
  return RunCommand("curl -s http://127.0.0.1:" + std::to_string(server.metrics_port()) +
                    "/metrics")
      .out;
}

TEST(ServeSemanticCacheTest, ASimilarQuestionIsAnsweredFromTheSemanticCacheUnlessRefused) {
  testing::TempDir dir;
  dir.Write("ask.yaml", R"(
inputs: {question: {type: text, cache_key: casefold}}
nodes:
  - {id: tokens, kind: preprocess.text, tokenizer: text-embed, from: {text: inputs.question}}
  - {id: embed, kind: model, model: text-embed, from: {input_ids: tokens.input_ids}}
  - {id: answer, kind: template, template: "you asked: {{inputs.question}}"}
outputs: {answer: answer.text}
semantic_cache: {embedding: embed.text_embeds, threshold: 0.9}
)");
  ServerProcess server({"--workflows", dir.path().string()});
  ASSERT_TRUE(server.ready()) << server.ready_line();
  auto ask = [&](const std::string& question, const std::string& extra = "") {
    return Post(
        server, "/v1/workflows/ask/run",
        R"({"inputs":{"question":")" + question + R"("},"response_mode":"blocking")" + extra + "}");
  };
  Reply first = ask("How do I reset my password");
  ASSERT_EQ(first.code, 200) << first.body;
  EXPECT_THAT(first.body, Not(HasSubstr("semantic")));
  // Another spelling: the same embedding (similarity 1), so the first
  // run's answer, marked as such.
  Reply again = ask("how do i  RESET my password");
  ASSERT_EQ(again.code, 200) << again.body;
  auto data = Parse(again.body);
  EXPECT_STREQ(data["data"]["cached"].GetString(), "semantic");
  EXPECT_GE(data["data"]["similarity"].GetDouble(), 0.99);
  EXPECT_STREQ(data["data"]["outputs"]["answer"].GetString(),
               "you asked: how do i reset my password");
  EXPECT_EQ(data["data"]["nodes"].Size(), 2u) << "only the tokens and the embedding ran";
  Reply refused = ask("how do i RESET my password", R"(,"semantic_cache":false)");
  ASSERT_EQ(refused.code, 200) << refused.body;
  EXPECT_THAT(refused.body, Not(HasSubstr("semantic")));
  EXPECT_EQ(Parse(refused.body)["data"]["nodes"].Size(), 3u);
  Reply unrelated = ask("what is the weather tomorrow");
  EXPECT_THAT(unrelated.body, Not(HasSubstr("semantic")));
  Reply bad = ask("x", R"(,"semantic_cache":"no")");
  EXPECT_EQ(bad.code, 400);
  EXPECT_THAT(bad.body, HasSubstr("'semantic_cache' must be true or false"));
  const std::string metrics = MetricsOf(server);
  EXPECT_THAT(metrics, HasSubstr("braid_cache_semantic_total{result=\"hit\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("braid_cache_semantic_total{result=\"miss\"} 2"));
  EXPECT_THAT(metrics, HasSubstr("braid_cache_semantic_total{result=\"refused\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("braid_cache_text_keys_total{how=\"normalized\"} 3"));
}

TEST(ServeMediaKeyTest, OcrAndAsrKeyEncodedMediaByWhatItHoldsNotItsBytes) {
  ServerProcess server;
  ASSERT_TRUE(server.ready()) << server.ready_line();
  testing::TempDir dir;
  const std::string original = (dir.path() / "original.jpg").string();
  const std::string copy = (dir.path() / "copy.jpg").string();
  // A picture, then what a chat app does to it: scaled down, recompressed,
  // its metadata stripped.
  ASSERT_EQ(RunCommand("convert -size 640x480 gradient:navy-orange -fill yellow -draw 'circle "
                       "220,200 300,260' -fill teal -draw 'rectangle 380,80 560,300' '" +
                       original + "'")
                .exit_code,
            0);
  ASSERT_EQ(RunCommand("convert '" + original + "' -resize 90% -strip -quality 70 '" + copy + "'")
                .exit_code,
            0);
  auto read = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  Reply first = InferBytes(server, "ocr", "image", read(original));
  Reply second = InferBytes(server, "ocr", "image", read(copy));
  ASSERT_EQ(first.code, 200) << first.body;
  ASSERT_EQ(second.code, 200) << second.body;
  EXPECT_EQ(Parse(second.body)["outputs"][0]["data"][0].GetString(),
            std::string(Parse(first.body)["outputs"][0]["data"][0].GetString()));
  EXPECT_EQ(Parse(Curl(server, "/v2/models/ocr/stats").body)["model_stats"][0]["inference_count"]
                .GetUint64(),
            1u)
      << "the near copy was answered from the cache";

  const std::string wav = Fixture("speech/say_0.wav");
  ASSERT_EQ(InferBytes(server, "asr", "audio", wav).code, 200);
  ASSERT_EQ(InferBytes(server, "asr", "audio", testing::WithInfoChunk(wav)).code, 200);
  EXPECT_EQ(Parse(Curl(server, "/v2/models/asr/stats").body)["model_stats"][0]["inference_count"]
                .GetUint64(),
            1u)
      << "the same samples with other metadata";
  const std::string metrics = MetricsOf(server);
  EXPECT_THAT(metrics, HasSubstr("braid_cache_image_keys_total{how=\"perceptual\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("braid_cache_audio_keys_total{how=\"pcm\"} 2"));
}

// Polls `condition` for up to 20 s.
bool Eventually(const std::function<bool()>& condition) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

TEST(ServeRedisTest, TwoServersShareResultsThroughRedis) {
  testing::RedisProcess redis;
  // Redis calls may take what a loaded machine needs (the default of 5 ms
  // turns one slow answer into a miss): these tests count hits.
  ServerProcess first({"--redis", redis.url(), "--redis-timeout-ms", "2000"}),
      second({"--redis", redis.url(), "--redis-timeout-ms", "2000"});
  ASSERT_TRUE(first.ready() && second.ready());
  Reply computed = Post(first, "/v2/models/clip-text/infer", ClipTextRequest(1000));
  ASSERT_EQ(computed.code, 200) << computed.body;
  // The fill is written in the background: wait until Redis holds it.
  const std::string dbsize = "redis-cli -p " + std::to_string(redis.port()) + " dbsize";
  ASSERT_TRUE(Eventually([&] { return std::atoi(RunCommand(dbsize).out.c_str()) >= 1; }));
  Reply shared = Post(second, "/v2/models/clip-text/infer", ClipTextRequest(1000));
  ASSERT_EQ(shared.code, 200);
  EXPECT_EQ(shared.body, computed.body);
  auto stats = Parse(Curl(second, "/v2/models/clip-text/stats").body);
  EXPECT_EQ(stats["model_stats"][0]["inference_count"].GetUint64(), 0u)
      << "the second server answered from Redis without running the model";
  const std::string metrics = MetricsOf(second);
  EXPECT_THAT(metrics, HasSubstr("braid_cache_hits_total{tier=\"redis\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("\nbraid_cache_redis_up 1"));
  // The redis hit filled the second server's memory tier.
  Post(second, "/v2/models/clip-text/infer", ClipTextRequest(1000));
  EXPECT_THAT(MetricsOf(second), HasSubstr("braid_cache_hits_total{tier=\"memory\"} 1"));
}

TEST(ServeRedisTest, ARedisOutageDuringLoadFailsNoRequestAndTheTierComesBack) {
  testing::RedisProcess redis;
  ServerProcess server({"--redis", redis.url(), "--redis-timeout-ms", "2000"});
  ASSERT_TRUE(server.ready());
  ASSERT_TRUE(Eventually(
      [&] { return MetricsOf(server).find("\nbraid_cache_redis_up 1") != std::string::npos; }));
  testing::TempDir dir;
  // 4 clients × 60 requests over 30 prompts: misses, fills and hits mixed.
  std::string script;
  for (int client = 0; client < 4; ++client) {
    script +=
        "( for i in $(seq 0 59); do curl -s -o /dev/null -w '%{http_code}\\n' -X POST "
        "-H 'Content-Type: application/json' --data-binary @" +
        (dir.path() / "r").string() + "$(( (i * 7 + " + std::to_string(client) + ") % 30 )).json " +
        server.url() + "/v2/models/clip-text/infer >> " + (dir.path() / "codes").string() +
        "; done ) & ";
  }
  script += "wait";
  for (int r = 0; r < 30; ++r)
    dir.Write("r" + std::to_string(r) + ".json", ClipTextRequest(2000 + r));
  std::thread clients([&] { RunCommand(script); });
  // Kill Redis once the load is under way.
  ASSERT_TRUE(Eventually([&] {
    std::ifstream codes(dir.path() / "codes");
    return std::count(std::istreambuf_iterator<char>(codes), {}, '\n') >= 40;
  }));
  redis.Kill();
  clients.join();
  std::ifstream codes(dir.path() / "codes");
  std::string code;
  int answered = 0;
  while (codes >> code) {
    EXPECT_EQ(code, "200");
    ++answered;
  }
  EXPECT_EQ(answered, 240) << "zero failed requests";
  std::string metrics = MetricsOf(server);
  EXPECT_THAT(metrics, HasSubstr("\nbraid_cache_redis_up 0"));

  ASSERT_TRUE(redis.Start());
  EXPECT_TRUE(Eventually([&] {
    return MetricsOf(server).find("\nbraid_cache_redis_up 1") != std::string::npos;
  })) << "the tier reconnects by itself";
  EXPECT_THAT(MetricsOf(server), HasSubstr("braid_cache_redis_reconnects_total 1"));
  Reply after = Post(server, "/v2/models/clip-text/infer", ClipTextRequest(3000));
  EXPECT_EQ(after.code, 200);
  const std::string dbsize = "redis-cli -p " + std::to_string(redis.port()) + " dbsize";
  EXPECT_TRUE(Eventually([&] { return std::atoi(RunCommand(dbsize).out.c_str()) >= 1; }))
      << "fills reach the restarted Redis";
}

// The value of a metric line `name` (with its labels), 0 when absent.
double MetricValue(const std::string& metrics, const std::string& name) {
  auto at = metrics.find("\n" + name + " ");
  return at == std::string::npos ? 0 : std::atof(metrics.c_str() + at + name.size() + 2);
}

TEST(ServeBenchTest, BraidBenchCountsAddUpOverHttpAndGrpc) {
  ServerProcess server;
  ASSERT_TRUE(server.ready());
  testing::TempDir dir;
  const std::string out = dir.path().string();
  const std::string common = std::string(BRAID_BINARY) + " bench --url " + server.url() +
                             " --grpc 127.0.0.1:" + std::to_string(server.grpc_port()) +
                             " -m identity --warmup 0.3 --window 0.4 --max-windows 3";
  auto http = RunCommand(common + " -c 1,4 --csv " + out + "/http.csv --json " + out +
                         "/http.json --plot " + out + "/http.png");
  ASSERT_EQ(http.exit_code, 0) << http.err;
  EXPECT_THAT(http.out, HasSubstr("| concurrency | req/s | p50 ms |"));
  auto grpc = RunCommand(common + " --endpoint grpc -r 200 --csv " + out + "/grpc.csv");
  ASSERT_EQ(grpc.exit_code, 0) << grpc.err;

  // Every request the bench saw answered, the server counted: no more, no fewer.
  auto completed = [](const std::string& csv_path) {
    std::ifstream csv(csv_path);
    std::string line;
    std::getline(csv, line);
    EXPECT_NE(line.find(",completed,"), std::string::npos) << line;
    std::uint64_t total = 0, measured = 0;
    while (std::getline(csv, line)) {
      std::vector<std::string> fields;
      std::stringstream row(line);
      for (std::string field; std::getline(row, field, ',');) fields.push_back(field);
      EXPECT_EQ(fields.size(), 14u) << line;
      EXPECT_EQ(fields[3], "0") << "no errors: " << line;
      measured += std::stoull(fields[2]);
      total += std::stoull(fields[12]);
    }
    EXPECT_GT(measured, 0u);
    EXPECT_GE(total, measured) << "the warm-up comes on top of the measured windows";
    return total;
  };
  const std::string metrics = MetricsOf(server);
  EXPECT_EQ(
      completed(out + "/http.csv"),
      MetricValue(metrics, R"(braid_requests_total{protocol="http",model="identity",code="200"})"));
  EXPECT_EQ(
      completed(out + "/grpc.csv"),
      MetricValue(metrics, R"(braid_requests_total{protocol="grpc",model="identity",code="200"})"));

  auto json = Parse(RunCommand("cat " + out + "/http.json").out);
  ASSERT_TRUE(json.HasMember("points"));
  EXPECT_EQ(json["points"].Size(), 2u);
  EXPECT_EQ(json["points"][1]["load"].GetDouble(), 4);
  std::ifstream png(out + "/http.png", std::ios::binary);
  char magic[4] = {};
  png.read(magic, 4);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG") << "gnuplot drew the plot";

  auto bad = RunCommand(std::string(BRAID_BINARY) + " bench --url " + server.url() + " -m nope");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("braid bench:"));

  // A run whose every request fails is a failed run, and says why.
  auto refused = RunCommand(std::string(BRAID_BINARY) + " bench --url " + server.url() +
                            " --endpoint workflow --workflow speech-report --inputs '{}'"
                            " --warmup 0.1 --window 0.2 --max-windows 3 --json " +
                            out + "/refused.json");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.out, HasSubstr("| failed |"));
  EXPECT_THAT(refused.err,
              HasSubstr(R"(HTTP 400: {"error":"workflow 'speech-report' needs input)"));
  EXPECT_THAT(refused.err, HasSubstr("every request failed at concurrency 1"));
  auto report = Parse(RunCommand("cat " + out + "/refused.json").out);
  ASSERT_TRUE(report.HasMember("points"));
  const auto& messages = report["points"][0]["error_messages"];
  ASSERT_EQ(messages.Size(), 1u);
  EXPECT_GT(messages[0]["count"].GetUint64(), 0u);
}

TEST(ServeAutoscaleTest, InstancesFollowTheLoad) {
  testing::TempDir dir;
  const auto models = dir.path() / "models";
  ASSERT_EQ(RunCommand("cp -r " + std::string(BRAID_TEST_MODELS) + " " + models.string()).exit_code,
            0);
  {
    std::ofstream config(models / "clip-text" / "config.yaml", std::ios::app);
    config << "autoscale: {min_instances: 1, max_instances: 2, scale_up_utilization: 0.7,\n"
              "            scale_down_utilization: 0.2, window_s: 3, cooldown_s: 2}\n";
  }
  ServerProcess server({"--model-repository", models.string()});
  ASSERT_TRUE(server.ready()) << server.ready_line();
  auto instances = [&] {
    return MetricValue(MetricsOf(server),
                       R"(braid_model_instances{model="clip-text",version="1"})");
  };
  EXPECT_EQ(instances(), 1);
  // Saturate the one instance with braid bench until a second one is taken on.
  std::thread load([&] {
    RunCommand(std::string(BRAID_BINARY) + " bench --url " + server.url() +
               " -m clip-text -c 8 --warmup 0 --window 3 --max-windows 3");
  });
  EXPECT_TRUE(Eventually([&] { return instances() == 2; })) << "scaled up under load";
  load.join();
  EXPECT_TRUE(Eventually([&] { return instances() == 1; })) << "scaled down when idle";
  const std::string metrics = MetricsOf(server);
  EXPECT_GE(
      MetricValue(metrics,
                  R"(braid_autoscale_events_total{model="clip-text",version="1",direction="up"})"),
      1);
  EXPECT_GE(MetricValue(
                metrics,
                R"(braid_autoscale_events_total{model="clip-text",version="1",direction="down"})"),
            1);
}

TEST(ServeLimitsTest, BodyLimitGives413) {
  ServerProcess server({"--max-body-bytes", "2000"});
  ASSERT_TRUE(server.ready());
  std::string big = IdentityRequest(
      "[1,16]", "[" + std::string(3000, ' ') + "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]");
  Reply reply = Post(server, "/v2/models/identity/infer", big);
  EXPECT_EQ(reply.code, 413);
  EXPECT_THAT(reply.body, HasSubstr("limit"));
  EXPECT_EQ(Post(server, "/v2/models/identity/infer", IdentityRequest()).code, 200);
}

TEST(ServeLimitsTest, CapsAreConfigurable) {
  ServerProcess server({"--max-json-depth", "4", "--max-header-count", "12", "--max-upload-bytes",
                        "100000", "--max-image-pixels", "10000", "--max-audio-seconds", "0.5"});
  ASSERT_TRUE(server.ready());
  const std::string fixtures = BRAID_TEST_FIXTURES;
  Reply deep = Post(server, "/v1/workflows/image-text-match/run",
                    R"({"inputs":{"text":"x"},"user":[[[[["deep"]]]]]})");
  EXPECT_EQ(deep.code, 400);
  EXPECT_THAT(deep.body, HasSubstr("4 levels"));
  EXPECT_EQ(
      Post(server, "/v2/models/identity/infer",
           R"({"inputs":[{"name":"input","shape":[1,16],"datatype":"FP32","data":[[[[[0]]]]]}]})")
          .code,
      400);
  EXPECT_EQ(Post(server, "/v2/models/identity/infer", IdentityRequest()).code, 200);

  std::string headers;
  for (int i = 0; i < 12; ++i) headers += " -H 'X-Extra-" + std::to_string(i) + ": 1'";
  EXPECT_EQ(Curl(server, "/v2/health/ready", headers).code, 431);

  testing::TempDir dir;
  auto big = dir.Write("big.bin", std::string(150000, 'x'));
  Reply upload = Curl(server, "/v1/files/upload", "-F file=@" + big.string());
  EXPECT_EQ(upload.code, 413);
  EXPECT_THAT(upload.body, HasSubstr("100000"));

  Reply picture = Curl(server, "/v1/workflows/image-text-match/run",
                       "-F 'inputs={\"text\":\"a cat\"}' -F image=@" + fixtures +
                           "/images/text_1_DejaVu-Sans_40.png");
  EXPECT_EQ(picture.code, 413) << picture.body;
  Reply speech = Curl(server, "/v1/workflows/speech-report/run",
                      "-F audio=@" + fixtures + "/speech/say_0.wav");
  EXPECT_EQ(speech.code, 413) << speech.body;
  EXPECT_EQ(Post(server, "/v2/models/identity/infer", IdentityRequest()).code, 200);
}

TEST(ServeAuthTest, ApiKeyAndAdminKey) {
  ServerProcess server({"--api-key", "s3cret", "--admin-key", "root"});
  ASSERT_TRUE(server.ready());
  EXPECT_EQ(Curl(server, "/v2/health/live").code, 200) << "health stays open";
  EXPECT_EQ(Curl(server, "/v2/health/ready").code, 200);
  Reply missing = Curl(server, "/v2/models/identity");
  EXPECT_EQ(missing.code, 401);
  EXPECT_THAT(missing.body, HasSubstr("Bearer"));
  EXPECT_EQ(Curl(server, "/v2/models/identity", "-H 'Authorization: Bearer wrong'").code, 401);
  EXPECT_EQ(Curl(server, "/v2/models/identity", "-H 'Authorization: Bearer s3cret'").code, 200);
  EXPECT_EQ(Post(server, "/v2/models/identity/infer", IdentityRequest(),
                 "-H 'Authorization: Bearer s3cret'")
                .code,
            200);
  EXPECT_EQ(
      Post(server, "/v2/repository/models/identity/load", "{}", "-H 'Authorization: Bearer s3cret'")
          .code,
      401)
      << "load needs the admin key";
  EXPECT_EQ(
      Post(server, "/v2/repository/models/identity/load", "{}", "-H 'Authorization: Bearer root'")
          .code,
      200);
  auto metrics = RunCommand("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:" +
                            std::to_string(server.metrics_port()) + "/metrics");
  EXPECT_EQ(metrics.out, "200") << "metrics stay open";
  EXPECT_EQ(Curl(server, "/dashboard/stats").code, 200) << "so do the dashboard's figures";
  EXPECT_EQ(Curl(server, "/").code, 200) << "the pages hold no data";
  EXPECT_EQ(Curl(server, "/v1/workflows").code, 401) << "what they show needs the key";
}

TEST(ServeAuthTest, HealthAndMetricsCanBeProtected) {
  ServerProcess server({"--api-key", "s3cret", "--protect-health", "--protect-metrics"});
  ASSERT_TRUE(server.ready());
  const std::string key = "-H 'Authorization: Bearer s3cret'";
  for (const char* path : {"/v2/health/live", "/v2/health/ready", "/dashboard/stats"}) {
    EXPECT_EQ(Curl(server, path).code, 401) << path;
    EXPECT_EQ(Curl(server, path, key).code, 200) << path;
  }
  const std::string metrics = "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:" +
                              std::to_string(server.metrics_port()) + "/metrics ";
  EXPECT_EQ(RunCommand(metrics).out, "401");
  EXPECT_EQ(RunCommand(metrics + key).out, "200");
  EXPECT_EQ(Curl(server, "/dashboard").code, 200);
  // gRPC health too.
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server.grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = inference::GRPCInferenceService::NewStub(channel);
  for (const bool keyed : {false, true}) {
    grpc::ClientContext live_context, ready_context;
    if (keyed) {
      live_context.AddMetadata("authorization", "Bearer s3cret");
      ready_context.AddMetadata("authorization", "Bearer s3cret");
    }
    inference::ServerLiveResponse live;
    inference::ServerReadyResponse ready;
    const auto expected = keyed ? grpc::StatusCode::OK : grpc::StatusCode::UNAUTHENTICATED;
    EXPECT_EQ(stub->ServerLive(&live_context, {}, &live).error_code(), expected);
    EXPECT_EQ(stub->ServerReady(&ready_context, {}, &ready).error_code(), expected);
  }
}

TEST(ServeWebTest, PagesAndDashboardFigures) {
  ServerProcess server;
  ASSERT_TRUE(server.ready());
  Reply page = Curl(server, "/");
  ASSERT_EQ(page.code, 200);
  EXPECT_THAT(page.body, HasSubstr("/web/playground.js"));
  EXPECT_THAT(Curl(server, "/dashboard").body, HasSubstr("/web/dashboard.js"));
  EXPECT_EQ(Curl(server, "/web/missing.js").code, 404);
  EXPECT_EQ(Curl(server, "/web/../README.md", "--path-as-is").code, 404);
  EXPECT_EQ(Post(server, "/", "{}").code, 405);
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(Post(server, "/v2/models/identity/infer", IdentityRequest()).code, 200);
  Reply stats = Curl(server, "/dashboard/stats");
  ASSERT_EQ(stats.code, 200);
  auto doc = Parse(stats.body);
  ASSERT_TRUE(doc.IsObject()) << stats.body;
  EXPECT_EQ(doc["latency"]["count"].GetUint64(), 3u);
  const auto& bounds = doc["latency"]["bounds_s"];
  const auto& cumulative = doc["latency"]["cumulative"];
  ASSERT_EQ(bounds.Size(), cumulative.Size());
  EXPECT_EQ(cumulative[cumulative.Size() - 1].GetUint64(), 3u);
  bool found = false;
  for (const auto& model : doc["models"].GetArray()) {
    if (std::string_view(model["name"].GetString()) != "identity") continue;
    found = true;
    EXPECT_EQ(model["success"].GetUint64(), 3u);
    EXPECT_GE(model["instances"].GetUint64(), 1u);
    EXPECT_TRUE(model["queue_depth"].IsArray());
    EXPECT_TRUE(model["batch_sizes"].IsArray());
  }
  EXPECT_TRUE(found);
  EXPECT_TRUE(doc["cache"].IsObject()) << "the memory tier is on by default";

  // multimodal-assist keys its image perceptually: the same picture twice
  // is a new image, then one known by its bytes; its text is normalized.
  const std::string run = R"({"inputs":{"image":")" + testing::FixtureImageDataUrl() +
                          R"(","text":"what  does it say?"},"response_mode":"blocking"})";
  for (int i = 0; i < 2; ++i)
    ASSERT_EQ(Post(server, "/v1/workflows/multimodal-assist/run", run).code, 200);
  stats = Curl(server, "/dashboard/stats");
  doc = Parse(stats.body);
  ASSERT_TRUE(doc["cache"]["images"].IsObject()) << stats.body;
  EXPECT_EQ(doc["cache"]["images"]["new"].GetUint64(), 1u) << stats.body;
  EXPECT_EQ(doc["cache"]["images"]["exact"].GetUint64(), 1u) << stats.body;
  EXPECT_EQ(doc["cache"]["images"]["perceptual"].GetUint64(), 0u) << stats.body;
  EXPECT_EQ(doc["cache"]["texts"]["normalized"].GetUint64(), 2u) << stats.body;
  EXPECT_EQ(doc["cache"]["texts"]["as_sent"].GetUint64(), 0u) << stats.body;
  EXPECT_EQ(doc["cache"]["semantic"]["hits"].GetUint64(), 0u) << "no workflow declares one";
}

TEST(ServeRepositoryTest, IndexUnloadAndLoad) {
  ServerProcess server;
  ASSERT_TRUE(server.ready());
  Reply index = Post(server, "/v2/repository/index", "{}");
  ASSERT_EQ(index.code, 200);
  auto doc = Parse(index.body);
  ASSERT_TRUE(doc.IsArray());
  EXPECT_EQ(doc.Size(), 9u)
      << "clip-image, clip-text, align, identity, ocr, asr, tts, text-embed, vad";
  EXPECT_EQ(Post(server, "/v2/repository/models/identity/unload", "{}").code, 200);
  EXPECT_EQ(Curl(server, "/v2/models/identity/ready").code, 503);
  EXPECT_EQ(Post(server, "/v2/models/identity/infer", IdentityRequest()).code, 503);
  EXPECT_THAT(Post(server, "/v2/repository/index", "{}").body,
              HasSubstr("\"reason\":\"unloaded\""));
  EXPECT_EQ(Post(server, "/v2/repository/models/identity/load", "{}").code, 200);
  EXPECT_EQ(Post(server, "/v2/models/identity/infer", IdentityRequest()).code, 200);
  EXPECT_EQ(Post(server, "/v2/repository/models/ghost/load", "{}").code, 404);
  EXPECT_EQ(server.Stop(), 0);
}

TEST(ServeMetricsTest, PrometheusFormatCheckedByPromtool) {
  ServerProcess server;
  ASSERT_TRUE(server.ready());
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(Post(server, "/v2/models/identity/infer", IdentityRequest()).code, 200);
  testing::TempDir dir;
  auto file = dir.path() / "metrics.txt";
  auto fetch = RunCommand("curl -s -o " + file.string() + " http://127.0.0.1:" +
                          std::to_string(server.metrics_port()) + "/metrics");
  ASSERT_EQ(fetch.exit_code, 0);
  std::ifstream in(file);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  for (const char* name :
       {"braid_requests_total", "braid_request_duration_seconds_bucket",
        "braid_queue_duration_seconds", "braid_compute_duration_seconds", "braid_batch_size_bucket",
        "braid_queue_depth", "braid_model_instances", "braid_process_resident_memory_bytes",
        "braid_process_cpu_seconds_total"}) {
    EXPECT_THAT(text, HasSubstr(name));
  }
  EXPECT_THAT(
      text, HasSubstr("braid_requests_total{protocol=\"http\",model=\"identity\",code=\"200\"} 3"));
  auto check = RunCommand("promtool check metrics < " + file.string());
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
}

TEST(ServeDrainTest, SigtermDuringLoadFailsNoInFlightRequest) {
  ServerProcess server;
  ASSERT_TRUE(server.ready());
  // Binary requests of 8 images each keep the server busy for a while.
  testing::TempDir dir;
  const std::size_t bytes = 8ull * 3 * 224 * 224 * sizeof(float);
  std::string header =
      R"({"inputs":[{"name":"pixel_values","shape":[8,3,224,224],"datatype":"FP32","parameters":{"binary_data_size":)" +
      std::to_string(bytes) + R"(}}],"parameters":{"cache":false,"timeout":60000000}})";
  // The timeout overrides clip-image's 2 s queue policy: on a loaded
  // machine 12 such requests may wait longer than that, which is not what
  // this test is about.
  auto file = dir.Write("batch.bin", header + std::string(bytes, '\0'));
  const int kClients = 12;
  std::string script = "for i in $(seq " + std::to_string(kClients) +
                       "); do curl -s -o /dev/null -w '%{http_code}\\n' -X POST " +
                       "-H 'Inference-Header-Content-Length: " + std::to_string(header.size()) +
                       "' --data-binary @" + file.string() + " " + server.url() +
                       "/v2/models/clip-image/infer >> " + (dir.path() / "codes").string() +
                       " & done; wait";
  std::thread clients([&] { RunCommand(script); });
  // Wait until the requests are in flight, then ask the server to stop.
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < until) {
    auto metrics = RunCommand("curl -s http://127.0.0.1:" + std::to_string(server.metrics_port()) +
                              "/metrics | sed -n 's/^braid_inflight_requests //p'");
    if (std::atoi(metrics.out.c_str()) >= kClients / 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(server.Stop(), 0);
  clients.join();
  std::ifstream codes(dir.path() / "codes");
  std::string code;
  int ok = 0, refused = 0, unavailable = 0;
  while (codes >> code) {
    // A request in flight is answered 200; one read after the drain began
    // gets 503; one that arrived after the listener closed gets no
    // connection (curl's code 000).
    EXPECT_TRUE(code == "200" || code == "503" || code == "000") << code;
    ok += code == "200";
    unavailable += code == "503";
    refused += code == "000";
  }
  EXPECT_GE(ok, kClients / 2) << "every in-flight request finished";
  EXPECT_EQ(ok + unavailable + refused, kClients);
}

// Sends SIGTERM and returns once the listener is closed: the drain has begun.
void BeginDrain(const ServerProcess& server) {
  ASSERT_EQ(kill(server.pid(), SIGTERM), 0);
  for (int attempt = 0; attempt < 6000; ++attempt) {
    const int fd = testing::ConnectLoopback(server.http_port());
    if (fd < 0) return;
    close(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  FAIL() << "the listener stayed open after SIGTERM";
}

TEST(ServeDrainTest, ARequestArrivingAtSigtermIsReadToTheEndAndAnswered) {
  ServerProcess server;
  ASSERT_TRUE(server.ready());
  // A keep-alive connection that has been answered and is idle.
  int idle = Connect(server.http_port());
  const std::string live = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(send(idle, live.data(), live.size(), 0), static_cast<ssize_t>(live.size()));
  EXPECT_THAT(ReadUntil(idle, [](const std::string& d) { return d.ends_with("}"); }),
              HasSubstr("Connection: keep-alive"));
  // A request whose header has been read (the server asked for the body)
  // and whose body is still coming when the drain begins.
  int arriving = Connect(server.http_port());
  const std::string body = IdentityRequest();
  const std::string head =
      "POST /v2/models/identity/infer HTTP/1.1\r\nHost: x\r\n"
      "Content-Type: application/json\r\nExpect: 100-continue\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n";
  ASSERT_EQ(send(arriving, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
  EXPECT_THAT(ReadUntil(arriving, [](const std::string& d) { return d.ends_with("\r\n\r\n"); }),
              StartsWith("HTTP/1.1 100"));
  ASSERT_EQ(send(arriving, body.data(), 10, 0), 10);

  BeginDrain(server);
  char byte;
  EXPECT_EQ(recv(idle, &byte, 1, 0), 0) << "the idle connection is closed at once";
  close(idle);
  ASSERT_EQ(send(arriving, body.data() + 10, body.size() - 10, MSG_NOSIGNAL),
            static_cast<ssize_t>(body.size() - 10));
  const std::string answer =
      ReadUntil(arriving, [](const std::string& d) { return d.ends_with("}"); });
  close(arriving);
  EXPECT_THAT(answer, StartsWith("HTTP/1.1 200")) << answer;
  EXPECT_THAT(answer, HasSubstr("Connection: close"));
  EXPECT_THAT(answer, HasSubstr("\"outputs\""));
  EXPECT_EQ(server.Stop(), 0);
}

TEST(ServeDrainTest, WorkflowRunsInFlightAtSigtermFinish) {
  ServerProcess server;
  ASSERT_TRUE(server.ready());
  // read-aloud: OCR, then speech synthesis of what it read. Different
  // images, so that no run is answered from another's cache.
  std::ifstream manifest(std::string(BRAID_TEST_FIXTURES) + "/images.tsv");
  std::vector<std::string> images;
  for (std::string line; images.size() < 6 && std::getline(manifest, line);)
    images.push_back(line.substr(0, line.find('\t')));
  ASSERT_EQ(images.size(), 6u);
  testing::TempDir dir;
  std::string script;
  for (std::size_t i = 0; i < images.size(); ++i) {
    std::ifstream file(std::string(BRAID_TEST_FIXTURES) + "/" + images[i], std::ios::binary);
    const std::string bytes(std::istreambuf_iterator<char>(file), {});
    const auto request = dir.Write("request" + std::to_string(i) + ".json",
                                   R"({"inputs":{"image":"data:image/png;base64,)" +
                                       Base64Encode(bytes) + R"("},"response_mode":"streaming"})");
    script += "curl -s -N -X POST -H 'Content-Type: application/json' --data-binary @" +
              request.string() + " " + server.url() + "/v1/workflows/read-aloud/run > " +
              (dir.path() / ("events" + std::to_string(i))).string() + " & ";
  }
  std::thread clients([&] { RunCommand(script + "wait"); });
  auto read = [&](std::size_t i) {
    std::ifstream events(dir.path() / ("events" + std::to_string(i)));
    return std::string(std::istreambuf_iterator<char>(events), {});
  };
  // Every run has started when the drain begins.
  for (std::size_t i = 0; i < images.size(); ++i) {
    for (int attempt = 0; attempt < 3000 && read(i).find("workflow_started") == std::string::npos;
         ++attempt) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  BeginDrain(server);
  EXPECT_EQ(server.Stop(), 0);
  clients.join();
  for (std::size_t i = 0; i < images.size(); ++i) {
    const std::string events = read(i);
    EXPECT_THAT(events, HasSubstr("\"event\":\"workflow_finished\"")) << events;
    EXPECT_THAT(events, Not(HasSubstr("\"event\":\"error\""))) << events;
  }
}

// The drain's deadline bounds a workflow run whose remote.chat upstream
// never answers: past it the run is cancelled and the call's connection
// closed, where the upstream timeout (10 minutes here) would have kept the
// server from exiting until then.
TEST(ServeDrainTest, ARemoteChatStillWaitingAtTheDrainDeadlineIsCancelled) {
  // The upstream takes the request and never answers.
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = testing::LoopbackAddress(0);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  socklen_t length = sizeof(address);
  getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  timeval wait{120, 0};
  setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait));
  std::promise<void> asked, closed;
  std::thread upstream([&] {
    const int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) return;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait));
    char chunk[4096];
    ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n > 0) asked.set_value();
    while (n > 0) n = recv(fd, chunk, sizeof(chunk), 0);
    if (n == 0) closed.set_value();
    close(fd);
  });
  ServerProcess server({"--upstream-chat",
                        "http://127.0.0.1:" + std::to_string(ntohs(address.sin_port)) + "/v1",
                        "--upstream-timeout", "600", "--drain-timeout", "1"});
  ASSERT_TRUE(server.ready());
  std::thread client([&] {
    RunCommand(
        "curl -s -N -X POST -H 'Content-Type: application/json' -d "
        "'{\"inputs\":{\"text\":\"hello\"},\"response_mode\":\"streaming\"}' " +
        server.url() + "/v1/workflows/multimodal-assist/run");
  });
  ASSERT_EQ(asked.get_future().wait_for(std::chrono::seconds(120)), std::future_status::ready)
      << "the run never called the upstream";
  BeginDrain(server);
  EXPECT_EQ(closed.get_future().wait_for(std::chrono::seconds(60)), std::future_status::ready)
      << "the upstream call outlived the drain's deadline";
  EXPECT_EQ(server.Stop(), 0);
  client.join();
  upstream.join();
  close(listener);
}

// SIGTERM while every kind of work is under way: streaming workflow runs,
// uploads whose predictive precompute runs, a gRPC stream and KServe load
// over HTTP. Under AddressSanitizer (scripts/sanitize) the exit code also
// says that nothing leaked or was used after it was freed.
TEST(ServeDrainTest, SigtermAmidEveryKindOfWorkLeavesNoErrorBehind) {
  ServerProcess server;
  ASSERT_TRUE(server.ready());
  testing::TempDir dir;
  std::ifstream manifest(std::string(BRAID_TEST_FIXTURES) + "/images.tsv");
  std::vector<std::string> images;
  for (std::string line; images.size() < 5 && std::getline(manifest, line);)
    images.push_back(std::string(BRAID_TEST_FIXTURES) + "/" + line.substr(0, line.find('\t')));
  ASSERT_EQ(images.size(), 5u);

  // A gRPC stream that keeps sending identity requests until it is ended.
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server.grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = inference::GRPCInferenceService::NewStub(channel);
  grpc::ClientContext stream_context;
  auto stream = stub->ModelStreamInfer(&stream_context);
  std::atomic<int> answered{0};
  std::vector<std::string> stream_errors;
  std::thread reader([&] {
    inference::ModelStreamInferResponse response;
    while (stream->Read(&response)) {
      if (response.error_message().empty()) {
        ++answered;
      } else {
        stream_errors.push_back(response.error_message());
      }
    }
  });
  std::thread writer([&] {
    inference::ModelInferRequest request;
    request.set_model_name("identity");
    auto* input = request.add_inputs();
    input->set_name("input");
    input->set_datatype("FP32");
    input->add_shape(1);
    input->add_shape(16);
    request.add_raw_input_contents(std::string(64, '\0'));
    while (stream->Write(request)) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  });

  // KServe load over HTTP, one request after another, until the server goes.
  const auto codes = dir.path() / "codes";
  const auto body = dir.Write("identity.json", IdentityRequest());
  std::thread kserve([&] {
    RunCommand(
        "for i in $(seq 400); do curl -s -o /dev/null -w '%{http_code}\\n' -X POST "
        "--data-binary @" +
        body.string() + " " + server.url() + "/v2/models/identity/infer >> " + codes.string() +
        " || break; done");
  });

  // Streaming workflow runs, started and seen to be under way.
  std::string script;
  for (int i = 0; i < 3; ++i) {
    std::ifstream file(images[i], std::ios::binary);
    const std::string bytes(std::istreambuf_iterator<char>(file), {});
    const auto request = dir.Write("run" + std::to_string(i) + ".json",
                                   R"({"inputs":{"image":"data:image/png;base64,)" +
                                       Base64Encode(bytes) + R"("},"response_mode":"streaming"})");
    script += "curl -s -N -X POST -H 'Content-Type: application/json' --data-binary @" +
              request.string() + " " + server.url() + "/v1/workflows/read-aloud/run > " +
              (dir.path() / ("events" + std::to_string(i))).string() + " & ";
  }
  std::thread runs([&] { RunCommand(script + "wait"); });
  auto events = [&](int i) {
    std::ifstream in(dir.path() / ("events" + std::to_string(i)));
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  for (int i = 0; i < 3; ++i) {
    for (int attempt = 0; attempt < 3000 && events(i).find("workflow_started") == std::string::npos;
         ++attempt) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  // Two uploads: each starts a precompute of every workflow taking an image.
  for (int i = 3; i < 5; ++i) {
    auto upload = RunCommand("curl -s -o /dev/null -w '%{http_code}' -F 'file=@" + images[i] +
                             ";type=image/png' -F user=drain " + server.url() + "/v1/files/upload");
    EXPECT_EQ(upload.out, "201");
  }
  while (answered.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));

  BeginDrain(server);
  EXPECT_EQ(server.Stop(), 0) << "a clean exit (under ASan: no leak, no use after free)";
  writer.join();
  reader.join();
  const grpc::Status finished = stream->Finish();
  EXPECT_TRUE(finished.ok() || finished.error_code() == grpc::StatusCode::UNAVAILABLE)
      << finished.error_code() << " " << finished.error_message();
  EXPECT_GT(answered.load(), 0);
  EXPECT_TRUE(stream_errors.empty()) << stream_errors.front();
  kserve.join();
  runs.join();
  for (int i = 0; i < 3; ++i) {
    EXPECT_THAT(events(i), HasSubstr("\"event\":\"workflow_finished\"")) << events(i);
    EXPECT_THAT(events(i), Not(HasSubstr("\"event\":\"error\""))) << events(i);
  }
  std::ifstream code_file(codes);
  int ok = 0;
  for (std::string code; code_file >> code;) {
    // Answered, or refused by a closed listener (curl's 000); never a 5xx
    // other than 503 and never a reset mid-request.
    EXPECT_TRUE(code == "200" || code == "503" || code == "000") << code;
    ok += code == "200";
  }
  EXPECT_GT(ok, 0);
}

}  // namespace
}  // namespace braid
