#include <spdlog/spdlog.h>

#include "cli/commands.h"

namespace braid::cli {

CLI::Option* AddTlsFlags(CLI::App& command, TlsFiles& tls, const std::string& ports) {
  auto* cert = command
                   .add_option("--tls-cert", tls.cert,
                               "PEM certificate chain: the " + ports +
                                   " ports then speak TLS only (1.2 or later; HTTP/2 or HTTP/1.1 "
                                   "by ALPN). SIGHUP reads it again")
                   ->check(CLI::ExistingFile);
  auto* key = command.add_option("--tls-key", tls.key, "PEM private key of --tls-cert")
                  ->check(CLI::ExistingFile);
  cert->needs(key);
  key->needs(cert);
  command
      .add_option("--tls-client-ca", tls.client_ca,
                  "PEM CA: clients must show a certificate it signed (mutual TLS)")
      ->check(CLI::ExistingFile)
      ->needs(cert);
  return cert;
}

sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

int WaitForStop(const sigset_t& signals, const TlsFiles& tls,
                const std::function<Status()>& reload) {
  int signal = 0;
  while (sigwait(&signals, &signal) == 0 && signal == SIGHUP) {
    if (!tls.enabled()) {
      spdlog::info("SIGHUP: nothing to reload (no --tls-cert)");
    } else if (Status reloaded = reload(); reloaded.ok()) {
      spdlog::info("SIGHUP: TLS files read again");
    } else {
      spdlog::error("SIGHUP: TLS files not reloaded, the old ones stay: {}", reloaded.message());
    }
  }
  return signal;
}

}  // namespace braid::cli
