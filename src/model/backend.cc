#include "model/backend.h"

namespace braid {

void BackendRegistry::Register(std::string name, BackendFactory factory) {
  factories_[std::move(name)] = std::move(factory);
}

const BackendFactory* BackendRegistry::Find(std::string_view name) const {
  auto it = factories_.find(name);
  return it == factories_.end() ? nullptr : &it->second;
}

std::vector<std::string> BackendRegistry::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, factory] : factories_) names.push_back(name);
  return names;
}

void BackendRegistry::RegisterStreamingRecognisers(std::string name,
                                                   StreamingRecogniserFactory factory) {
  streaming_recognisers_[std::move(name)] = std::move(factory);
}

const StreamingRecogniserFactory* BackendRegistry::FindStreamingRecognisers(
    std::string_view name) const {
  auto it = streaming_recognisers_.find(name);
  return it == streaming_recognisers_.end() ? nullptr : &it->second;
}

}  // namespace braid
