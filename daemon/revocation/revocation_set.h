// The revocations in force, in memory: every verification asks this set, never the store.
#pragma once

#include <cstddef>
#include <cstdint>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "revocation/entry.h"

namespace hsmsignd::revocation {

// What a verification knows of a token.
struct TokenFacts {
  std::string_view iss, sub, jti, keyset;
  std::int64_t iat = 0;
};

class RevocationSet {
 public:
  // A later not-before replaces an earlier one, never the reverse.
  void add(const Entry& entry);
  bool revoked(const TokenFacts& token) const;
  // Drops the entries that expired before `now`; returns how many.
  std::size_t purge(std::int64_t now);
  std::size_t size() const;

 private:
  struct Held {
    std::int64_t at, expires;
  };
  using Map = std::unordered_map<std::string, Held>;
  Map& map_of(Kind kind);

  mutable std::shared_mutex mutex_;  // written by the store's threads, read by the I/O thread
  Map jtis_, subjects_, keysets_;    // keyed by key_of(iss, name)
};

}  // namespace hsmsignd::revocation
