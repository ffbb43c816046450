// HttpServer's HTTP/2 and TLS paths, in process (so that the sanitizer
// builds run them), driven by curl and openssl: h2c by prior knowledge and
// by Upgrade, h2 and HTTP/1.1 by ALPN, a streamed answer, a client that
// goes away, a certificate reload, large bodies and pipelined requests over
// TLS, and a TLS client that stalls.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>

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
  // Answers /stream with three chunks, /handed with two (the second handed
  // over by another thread while the handler waits), /hold by waiting until
  // the client goes, /big with kBigBytes bytes, everything else with the
  // size of the body it got. `timeout` is how long an idle connection or a
  // request being received may take.
  void Start(TlsFiles tls = {}, std::chrono::seconds timeout = std::chrono::seconds(30),
             int threads = 2) {
    HttpServerOptions options;
    options.tls = std::move(tls);
    options.idle_timeout = timeout;
    options.request_timeout = timeout;
    options.threads = threads;
    server_ = std::make_unique<HttpServer>(
        options, [this](HttpRequest& request, HttpResponderPtr responder) {
          if (request.path == "/stream") {
            responder->StartStream(200, "text/event-stream");
            for (int i = 0; i < 3; ++i)
              responder->WriteChunk("data: " + std::to_string(i) + "\n\n");
            responder->EndStream();
            return;
          }
          if (request.path == "/handed") {
            responder->StartStream(200, "text/event-stream");
            responder->WriteChunk("data: 0\n\n");
            std::thread([&responder] {
              responder->WriteChunk("data: 1\n\n");
              responder->EndStream();
            }).join();
            return;
          }
          if (request.path == "/big") {
            responder->Send({200, "application/octet-stream", std::string(kBigBytes, 'x')});
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

  // A Python client over TLS (trusting `ca`) on the server's port: runs
  // `body` with `connection` open, an ssl.SSLSocket.
  testing::CommandResult Python(const std::string& ca, const std::string& body) {
    const auto script = dir_.path() / "client.py";
    std::ofstream(script) << "import socket, ssl\n"
                          << "context = ssl.create_default_context(cafile='" << ca << "')\n"
                          << "connection = context.wrap_socket(socket.create_connection(("
                          << "'127.0.0.1', " << port_ << ")), server_hostname='localhost')\n"
                          << body << "\n";
    return RunCommand("python3 " + script.string());
  }

  static constexpr std::size_t kBigBytes = 300000;
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

// The first chunk is handed over on the network thread, the second and the
// end by another thread before the handler returns: the client gets them in
// that order (a network thread's own posts wait until its handler returns,
// so only the connection's strand keeps them ahead of the other thread's).
TEST_F(Http2ServerTest, ChunksHandedOverFromAnyThreadArriveInTheOrderGiven) {
  Start({}, std::chrono::seconds(30), /*threads=*/1);
  EXPECT_EQ(Curl("--http1.1", "/handed"), "data: 0\n\ndata: 1\n\n 1.1");
  EXPECT_EQ(Curl("--http2-prior-knowledge", "/handed"), "data: 0\n\ndata: 1\n\n 2");
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

TEST_F(Http2ServerTest, TlsCarriesLargeBodiesBothWaysAndPipelinedRequests) {
  MakeCertificate(dir_.path(), "a", "braid-a");
  const std::string ca = (dir_.path() / "a.pem").string();
  Start({ca, (dir_.path() / "a.key").string(), ""});
  const auto upload = dir_.path() / "upload.bin";
  ASSERT_EQ(RunCommand("head -c 1000000 /dev/urandom > " + upload.string()).exit_code, 0);
  // Many records each way, and answers larger than one write's share.
  for (const std::string version : {"--http1.1", "--http2"}) {
    EXPECT_EQ(Curl(version + " --data-binary @" + upload.string() + " --cacert " + ca, "/"),
              std::string(R"({"method":"POST","bytes":1000000} )") +
                  (version == "--http2" ? "2" : "1.1"));
    const auto big = RunCommand("curl -sS --max-time 20 --resolve localhost:" + port_ +
                                ":127.0.0.1 -o /dev/null -w '%{size_download}' " + version +
                                " --cacert " + ca + " https://localhost:" + port_ + "/big");
    EXPECT_EQ(big.out, std::to_string(kBigBytes)) << version << big.err;
  }
  // Two requests, the second split across two records: both are answered,
  // in order, on one connection.
  const auto pipelined =
      Python(ca,
             "first = b'POST /a HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 2\\r\\n\\r\\nab'\n"
             "second = b'POST /b HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 3\\r\\n\\r\\nabc'\n"
             "connection.sendall(first + second[:20])\n"
             "connection.sendall(second[20:])\n"
             "answers = b''\n"
             "while answers.count(b'bytes') < 2:\n"
             "    chunk = connection.recv(65536)\n"
             "    if not chunk: break\n"
             "    answers += chunk\n"
             "print(answers.count(b'\"bytes\":2}'), answers.count(b'\"bytes\":3}'),\n"
             "      answers.index(b'\"bytes\":2}') < answers.index(b'\"bytes\":3}'))");
  EXPECT_EQ(pipelined.out, "1 1 True\n") << pipelined.err;
}

TEST_F(Http2ServerTest, ATlsClientThatStallsInItsRequestIsClosed) {
  MakeCertificate(dir_.path(), "a", "braid-a");
  const std::string ca = (dir_.path() / "a.pem").string();
  Start({ca, (dir_.path() / "a.key").string(), ""}, std::chrono::seconds(1));
  // Half a header, then nothing: the server closes the connection (the
  // client would wait 60 s for anything else).
  const auto stalled = Python(ca,
                              "connection.settimeout(60)\n"
                              "connection.sendall(b'GET / HTTP/1.1\\r\\nHost: x\\r\\n')\n"
                              "try:\n"
                              "    answer = connection.recv(1)\n"
                              "except (ssl.SSLEOFError, ConnectionResetError):\n"
                              "    answer = b''\n"
                              "print('closed' if answer == b'' else 'answered')");
  EXPECT_EQ(stalled.out, "closed\n") << stalled.err;
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
