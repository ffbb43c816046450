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

}  // namespace braid
