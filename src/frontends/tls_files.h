// TlsFiles: the PEM files a front end's TLS is made of (HTTP and gRPC).
#pragma once

#include <string>

namespace braid {

// No certificate: plaintext.
struct TlsFiles {
  std::string cert;       // the server's certificate chain
  std::string key;        // its private key
  std::string client_ca;  // set: clients must show a certificate it signed (mTLS)

  bool enabled() const { return !cert.empty(); }
};

}  // namespace braid
