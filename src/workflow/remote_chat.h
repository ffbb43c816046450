// The client side of the remote.chat node: an OpenAI-compatible
// /v1/chat/completions upstream, called with stream: true; each content delta
// is handed to `on_token` as it arrives. Plain HTTP (the upstream is a local
// or cluster-internal service); blocking, so it runs on its own threads.
#pragma once

#include <functional>
#include <string>

#include "core/status.h"

namespace braid {

struct UpstreamChat {
  std::string base_url;  // e.g. http://127.0.0.1:9000/v1
  std::string api_key;   // sent as "Authorization: Bearer KEY" when set
  std::string model;     // the upstream model name
  int timeout_s = 60;    // until the answer starts, then between two of its pieces
};

// Sends one user message (and an optional system message); returns the whole
// reply. `on_token` is called with every streamed piece. Once `stopped()`
// says so (asked with each piece, and every 100 ms while the upstream is
// silent) the call ends there (Cancelled) and the connection is closed.
Result<std::string> StreamChat(const UpstreamChat& upstream, const std::string& system,
                               const std::string& prompt,
                               const std::function<void(const std::string&)>& on_token,
                               const std::function<bool()>& stopped);

}  // namespace braid
