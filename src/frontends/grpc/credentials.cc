#include "frontends/grpc/credentials.h"

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <unistd.h>

#include "core/file_util.h"

namespace braid {
namespace {

// The files must be readable now: the watcher would only log it.
Status Readable(const std::string& path, std::string_view flag) {
  if (access(path.c_str(), R_OK) != 0) return InvalidArgument("{} {}: cannot be read", flag, path);
  return Status::Ok();
}

}  // namespace

Result<std::shared_ptr<grpc::ServerCredentials>> GrpcServerCredentials(const TlsFiles& files) {
  if (!files.enabled()) return grpc::InsecureServerCredentials();
  BRAID_RETURN_IF_ERROR(Readable(files.cert, "--tls-cert"));
  BRAID_RETURN_IF_ERROR(Readable(files.key, "--tls-key"));
  if (!files.client_ca.empty()) BRAID_RETURN_IF_ERROR(Readable(files.client_ca, "--tls-client-ca"));
  constexpr unsigned kRefreshSeconds = 1;
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      files.key, files.cert, files.client_ca, kRefreshSeconds);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (files.client_ca.empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

Result<std::shared_ptr<grpc::ChannelCredentials>> MakeGrpcClientTls(const ClientTlsFiles& files) {
  grpc::SslCredentialsOptions options;
  if (!files.ca.empty()) {
    BRAID_ASSIGN_OR_RETURN(options.pem_root_certs, ReadFile(files.ca));
  }
  if (!files.cert.empty()) {
    BRAID_ASSIGN_OR_RETURN(options.pem_cert_chain, ReadFile(files.cert));
    BRAID_ASSIGN_OR_RETURN(options.pem_private_key, ReadFile(files.key));
  }
  return grpc::SslCredentials(options);
}

}  // namespace braid
