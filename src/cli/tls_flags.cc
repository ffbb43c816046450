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

}  // namespace braid::cli
