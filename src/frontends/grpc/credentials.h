// gRPC's TLS credentials from braid's TLS files: the server's (`braid serve`
// and `braid router` ports) and a client's (`braid bench`, the router's
// channels to its replicas).
#pragma once

#include <memory>

#include "core/status.h"
#include "frontends/tls_client.h"
#include "frontends/tls_files.h"

namespace grpc {
class ChannelCredentials;
class ServerCredentials;
}  // namespace grpc

namespace braid {

// TLS from `files`, watched (a renewed pair is used within a second) and
// requiring a client certificate with client_ca; plaintext without a
// certificate. The files must be readable now.
Result<std::shared_ptr<grpc::ServerCredentials>> GrpcServerCredentials(const TlsFiles& files);

Result<std::shared_ptr<grpc::ChannelCredentials>> MakeGrpcClientTls(const ClientTlsFiles& files);

}  // namespace braid
