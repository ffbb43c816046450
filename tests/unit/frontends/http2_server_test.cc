// HttpServer's HTTP/2 and TLS paths, in process (so that the sanitizer
// builds run them), driven by curl and openssl: h2c by prior knowledge and
// by Upgrade, h2 and HTTP/1.1 by ALPN, a streamed answer, a client that
// goes away, and a certificate reload.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <string>

#include "frontends/http/http_server.h"
#include "support/command.h"
#include "support/temp_dir.h"

namespace braid {
namespace {

using testing::RunCommand;

// Makes a self-signed certificate for localhost and 127.0.0.1 named `cn`.
void MakeCertificate(const std::filesystem::path& folder, const std::string& name,
                     const std::string& cn) {
  const auto made = RunCommand(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -keyout " +
      (folder / (name + ".key")).string() + " -out " + (folder / (name + ".pem")).string() +
      " -subj /CN=" + cn + " -addext subjectAltName=DNS:localhost,IP:127.0.0.1");
  ASSERT_EQ(made.exit_code, 0) << made.err;
}

class Http2ServerTest : public ::testing::Test {
 protected:
  // Answers /stream with three chunks, /hold by waiting until the client
  // goes, everything else with the size of the body it got.
  void Start(TlsFiles tls = {}) {
    HttpServerOptions options;
    options.tls = std::move(tls);
    server_ = std::make_unique<HttpServer>(
        options, [this](HttpRequest& request, HttpResponderPtr responder) {
          if (request.path == "/stream") {
            responder->StartStream(200, "text/event-stream");
            for (int i = 0; i < 3; ++i)
              responder->WriteChunk("data: " + std::to_string(i) + "\n\n");
            responder->EndStream();
            return;
          }
          if (request.path == "/hold") {
            responder->OnDisconnect([this] { gone_.set_value(); });
            held_ = responder;
            return;
          }
          responder->Send({200, "application/json",
                           "{\"method\":\"" + request.method +
                               "\",\"bytes\":" + std::to_string(request.body->size()) + "}"});
        });
    auto port = server_->Listen("127.0.0.1", 0);
    ASSERT_TRUE(port.ok()) << port.status().message();
    port_ = std::to_string(*port);
    server_->Start();
  }
  void TearDown() override {
    held_.reset();
    if (server_) server_->Stop();
  }

  // curl's body, then the HTTP version it spoke.
  std::string Curl(const std::string& flags, const std::string& path) {
    const bool tls = flags.find("--cacert") != std::string::npos;
    const std::string url =
        tls ? "https://localhost:" + port_ + path : "http://127.0.0.1:" + port_ + path;
    const auto result = RunCommand("curl -sS --max-time 20 --resolve localhost:" + port_ +
                                   ":127.0.0.1 -w ' %{http_version}' " + flags + " " + url);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return result.out;
  }

  testing::TempDir dir_;
  std::unique_ptr<HttpServer> server_;
  std::string port_;
  std::promise<void> gone_;
  HttpResponderPtr held_;
};

TEST_F(Http2ServerTest, PlaintextSpeaksHttp11AndHttp2ByPriorKnowledgeOrUpgrade) {
  Start();
  EXPECT_EQ(Curl("--http1.1 -d 12345", "/"), R"({"method":"POST","bytes":5} 1.1)");
  EXPECT_EQ(Curl("--http2-prior-knowledge -d 12345", "/"), R"({"method":"POST","bytes":5} 2)");
  EXPECT_EQ(Curl("--http2", "/"), R"({"method":"GET","bytes":0} 2)");
  // A large body over HTTP/2 arrives whole (flow control, many DATA frames).
  const auto big = dir_.path() / "big";
  ASSERT_EQ(RunCommand("head -c 3000000 /dev/zero > " + big.string()).exit_code, 0);
  EXPECT_EQ(Curl("--http2-prior-knowledge --data-binary @" + big.string(), "/"),
            R"({"method":"POST","bytes":3000000} 2)");
}

TEST_F(Http2ServerTest, AStreamedAnswerComesWholeOverHttp2) {
  Start();
  EXPECT_EQ(Curl("--http2-prior-knowledge", "/stream"), "data: 0\n\ndata: 1\n\ndata: 2\n\n 2");
}

TEST_F(Http2ServerTest, AClientThatGoesAwayCancelsItsStream) {
  Start();
  auto gone = gone_.get_future();
  // curl gives up after a second and closes the connection.
  const auto result = RunCommand(
      "curl -sS --max-time 1 --http2-prior-knowledge http://127.0.0.1:" + port_ + "/hold");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(gone.wait_for(std::chrono::seconds(30)), std::future_status::ready);
}

TEST_F(Http2ServerTest, TlsChoosesHttp2OrHttp11ByAlpnAndRefusesPlainHttp) {
  MakeCertificate(dir_.path(), "a", "braid-a");
  const std::string ca = " --cacert " + (dir_.path() / "a.pem").string();
  Start({(dir_.path() / "a.pem").string(), (dir_.path() / "a.key").string(), ""});
  EXPECT_EQ(Curl("--http2 -d 123" + ca, "/"), R"({"method":"POST","bytes":3} 2)");
  EXPECT_EQ(Curl("--http1.1" + ca, "/stream"), "data: 0\n\ndata: 1\n\ndata: 2\n\n 1.1");
  const auto plain = RunCommand("curl -s -w ' %{http_code}' http://127.0.0.1:" + port_ + "/");
  EXPECT_EQ(plain.out, R"({"error":"this port speaks TLS: use https://"} 400)");
}

TEST_F(Http2ServerTest, AReloadTakesTheNewCertificateAndABadOneChangesNothing) {
  MakeCertificate(dir_.path(), "a", "braid-a");
  MakeCertificate(dir_.path(), "b", "braid-b");
  const auto cert = dir_.path() / "live.pem";
  const auto key = dir_.path() / "live.key";
  std::filesystem::copy_file(dir_.path() / "a.pem", cert);
  std::filesystem::copy_file(dir_.path() / "a.key", key);
  Start({cert.string(), key.string(), ""});
  const auto subject = [this] {
    return RunCommand("openssl s_client -connect 127.0.0.1:" + port_ +
                      " -servername localhost </dev/null 2>/dev/null | openssl x509 -noout "
                      "-subject")
        .out;
  };
  EXPECT_NE(subject().find("braid-a"), std::string::npos);
  // A key that does not match the certificate: refused, the old pair stays.
  std::filesystem::copy_file(dir_.path() / "b.pem", cert,
                             std::filesystem::copy_options::overwrite_existing);
  EXPECT_FALSE(server_->ReloadTls().ok());
  EXPECT_NE(subject().find("braid-a"), std::string::npos);
  std::filesystem::copy_file(dir_.path() / "b.key", key,
                             std::filesystem::copy_options::overwrite_existing);
  ASSERT_TRUE(server_->ReloadTls().ok());
  EXPECT_NE(subject().find("braid-b"), std::string::npos);
}

}  // namespace
}  // namespace braid
