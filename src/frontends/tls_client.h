// TLS as a client: `braid bench` and the router's connections to its
// replicas. Servers check a client's certificate when it shows one
// (--tls-client-ca on `braid serve`), so a client may carry a pair.
#pragma once

#include <boost/asio/ssl.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace braid {

struct ClientTlsFiles {
  std::string ca;    // the CAs that sign the server's certificate (empty: the system's)
  std::string cert;  // with key: this client's certificate chain, shown to the server (mTLS)
  std::string key;
};

// TLS 1.2 or later that checks the server's certificate and offers `alpn`
// (one protocol, such as "h2" or "http/1.1").
Result<std::shared_ptr<boost::asio::ssl::context>> MakeClientTls(const ClientTlsFiles& files,
                                                                 std::string_view alpn);

// Before a client stream's handshake: asks the server for `host` (SNI) and
// accepts only a certificate that names it.
template <typename Stream>
void ExpectServerName(Stream& stream, const std::string& host) {
  SSL_set_tlsext_host_name(stream.native_handle(), host.c_str());
  stream.set_verify_callback(boost::asio::ssl::host_name_verification(host));
}

}  // namespace braid
