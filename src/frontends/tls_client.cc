#include "frontends/tls_client.h"

namespace braid {

namespace ssl = boost::asio::ssl;

Result<std::shared_ptr<ssl::context>> MakeClientTls(const ClientTlsFiles& files,
                                                    std::string_view alpn) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
  boost::system::error_code error;
  if (files.ca.empty()) {
    context->set_default_verify_paths(error);
  } else {
    context->load_verify_file(files.ca, error);
  }
  if (error) return InvalidArgument("CA file '{}': {}", files.ca, error.message());
  context->set_verify_mode(ssl::verify_peer);
  if (!files.cert.empty()) {
    context->use_certificate_chain_file(files.cert, error);
    if (error) return InvalidArgument("certificate '{}': {}", files.cert, error.message());
    context->use_private_key_file(files.key, ssl::context::pem, error);
    if (error) return InvalidArgument("key '{}': {}", files.key, error.message());
  }
  std::string protocols(1, static_cast<char>(alpn.size()));
  protocols += alpn;
  SSL_CTX_set_alpn_protos(context->native_handle(),
                          reinterpret_cast<const unsigned char*>(protocols.data()),
                          static_cast<unsigned>(protocols.size()));
  return context;
}

}  // namespace braid
