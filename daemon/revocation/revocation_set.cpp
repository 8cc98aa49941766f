#include "revocation/revocation_set.h"

#include <algorithm>
#include <mutex>

namespace hsmsignd::revocation {
namespace {

// The issuer's length first, so that no (iss, name) pair can be written as another: both may hold ':'.
std::string key_of(std::string_view iss, std::string_view name) {
  std::string key = std::to_string(iss.size());
  key.reserve(key.size() + 1 + iss.size() + name.size());
  key += ':';
  key += iss;
  key += name;
  return key;
}

}  // namespace

RevocationSet::Map& RevocationSet::map_of(Kind kind) {
  switch (kind) {
    case Kind::jti: return jtis_;
    case Kind::subject: return subjects_;
    case Kind::keyset: return keysets_;
  }
  return jtis_;
}

void RevocationSet::add(const Entry& e) {
  std::unique_lock lock(mutex_);
  auto [it, added] = map_of(e.kind).try_emplace(key_of(e.iss, e.name), Held{e.at, e.expires});
  if (!added) it->second = {std::max(it->second.at, e.at), std::max(it->second.expires, e.expires)};
}

bool RevocationSet::revoked(const TokenFacts& t) const {
  std::shared_lock lock(mutex_);
  if (!jtis_.empty() && jtis_.contains(key_of(t.iss, t.jti))) return true;
  if (!subjects_.empty()) {
    if (auto it = subjects_.find(key_of(t.iss, t.sub)); it != subjects_.end() && t.iat < it->second.at) return true;
  }
  if (!keysets_.empty()) {
    if (auto it = keysets_.find(key_of("", t.keyset)); it != keysets_.end() && t.iat < it->second.at) return true;
  }
  return false;
}

std::size_t RevocationSet::purge(std::int64_t now) {
  std::unique_lock lock(mutex_);
  std::size_t removed = 0;
  for (Map* map : {&jtis_, &subjects_, &keysets_})
    removed += std::erase_if(*map, [now](const auto& item) { return item.second.expires < now; });
  return removed;
}

std::size_t RevocationSet::size() const {
  std::shared_lock lock(mutex_);
  return jtis_.size() + subjects_.size() + keysets_.size();
}

}  // namespace hsmsignd::revocation
