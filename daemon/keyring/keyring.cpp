#include "keyring/keyring.h"

#include <openssl/rand.h>

#include <algorithm>

#include "jose/jwk.h"
#include "jwks/jwks_document.h"
#include "keys.h"
#include "log/log.h"
#include "sign.h"

namespace hsmsignd::keyring {
namespace {

std::string unix_seconds(TimePoint t) { return std::to_string(t.time_since_epoch().count()); }

signing::VerifyPolicy verify_policy(const config::Config& c) {
  return c.token.verify_signatures == config::VerifyPolicy::all ? signing::VerifyPolicy::all
                                                                 : signing::VerifyPolicy::sampled;
}

}  // namespace

const Key* View::active_key(std::string_view keyset) const {
  auto it = active.find(keyset);
  return it == active.end() ? nullptr : &keys[it->second];
}

Keyring::Keyring(pkcs11::SessionPool& pool, const config::Config& config) : pool_(pool), config_(config) {}

pkcs11::Result<Key> Keyring::open_key(pkcs11::SessionRef session, const config::KeysetConfig& keyset,
                                      const pkcs11::KeyObject& object, const KeyLabel& label) {
  auto& signer = signers_[object.id];
  if (!signer) {
    auto opened = pkcs11::Signer::open(pool_, session, object, keyset.algorithm);
    if (!opened) return opened.error();
    auto checked = signing::CheckedSigner::make(std::move(*opened), verify_policy(config_));
    if (!checked) return checked.error();
    signer = std::move(*checked);
  }
  Key key;
  key.public_key = signer->public_key();
  key.kid = jose::thumbprint(key.public_key);
  key.keyset = keyset.name;
  key.algorithm = keyset.algorithm;
  key.id = object.id;
  key.label = object.label;
  key.created = label.created;
  key.signer = signer;
  return key;
}

pkcs11::Result<std::vector<Key>> Keyring::read_keyset(pkcs11::SessionRef session, const config::KeysetConfig& keyset,
                                                      const std::vector<pkcs11::KeyObject>& objects, TimePoint now) {
  struct Found {
    const pkcs11::KeyObject* object;
    KeyLabel label;
  };
  std::vector<Found> found;
  for (const auto& object : objects) {
    auto label = KeyLabel::parse(object.label);
    if (!label || label->keyset != keyset.name) continue;
    if (!pkcs11::fits(object, keyset.algorithm) || !object.custody.trustworthy()) {
      // Not a key this keyset may sign with, whatever its label says: never publish or use it.
      log::error("key_refused", {{"keyset", keyset.name}, {"label", object.label},
                                 {"reason", object.custody.trustworthy() ? "wrong type or size" : "custody"}});
      continue;
    }
    found.push_back({&object, *label});
  }
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    return std::tie(a.label.activates, a.object->id) < std::tie(b.label.activates, b.object->id);
  });
  std::vector<TimePoint> activations;
  for (const auto& f : found) activations.push_back(f.label.activates);
  const auto schedules = schedule(activations, keyset.rotation_period, keyset.retire_after, now);

  std::vector<Key> keys;
  for (std::size_t i = 0; i < found.size(); ++i) {
    if (schedules[i].state == KeyState::retired) continue;
    auto key = open_key(session, keyset, *found[i].object, found[i].label);
    if (!key) return key.error();
    key->schedule = schedules[i];
    keys.push_back(std::move(*key));
  }
  return keys;
}

pkcs11::Status Keyring::generate(pkcs11::SessionRef s, const config::KeysetConfig& keyset, TimePoint activates,
                                 TimePoint now) {
  Bytes id(16);
  if (RAND_bytes(id.data(), static_cast<int>(id.size())) != 1) return pkcs11::Error::refused("no randomness for a key id");
  const std::string label = KeyLabel{keyset.name, activates, now}.str();
  auto key = pkcs11::generate_key_pair(s, {keyset.algorithm, keyset.rsa_bits, id, label});
  if (!key) return key.error();
  if (!key->custody.trustworthy()) {
    (void)pkcs11::destroy_key(s, id);
    return pkcs11::Error::refused("the token generated a key without the custody attributes asked for");
  }
  log::info("keygen", {{"keyset", keyset.name}, {"algorithm", std::string(name(keyset.algorithm))},
                       {"label", label}, {"activates", unix_seconds(activates)}});
  return {};
}

pkcs11::Status Keyring::load(TimePoint now) {
  auto view = std::make_shared<View>();
  auto status = pool_.run([&](pkcs11::SessionRef s) -> pkcs11::Status {
    auto objects = pkcs11::list_keys(s);
    if (!objects) return objects.error();
    view->keys.clear();
    for (const auto& keyset : config_.keysets) {
      auto keys = read_keyset(s, keyset, *objects, now);
      if (!keys) return keys.error();
      const bool has_active = std::any_of(keys->begin(), keys->end(),
                                          [](const Key& k) { return k.schedule.state == KeyState::active; });
      if (!has_active) {
        if (auto made = generate(s, keyset, now, now); !made) return made;
        auto all = pkcs11::list_keys(s);
        if (!all) return all.error();
        keys = read_keyset(s, keyset, *all, now);
        if (!keys) return keys.error();
      }
      for (auto& k : *keys) view->keys.push_back(std::move(k));
    }
    return {};
  });
  if (!status) return status;

  std::vector<jwks::PublishedKey> published;
  for (std::size_t i = 0; i < view->keys.size(); ++i) {
    const Key& k = view->keys[i];
    if (k.schedule.state == KeyState::active) view->active[k.keyset] = i;
    published.push_back({k.kid, k.public_key});
  }
  auto doc = jwks::make_document(published);
  view->jwks = std::move(doc.json);
  view->etag = std::move(doc.etag);
  view_.store(std::move(view));
  return {};
}

}  // namespace hsmsignd::keyring
