#include "keys.h"

#include <algorithm>
#include <array>
#include <iterator>

#include "cryptoki.h"
#include "token_rules.h"

namespace hsmsignd::pkcs11 {
namespace {

constexpr std::array<CK_BYTE, 10> kOidP256{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
constexpr std::array<CK_BYTE, 7> kOidP384{0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
constexpr std::array<CK_BYTE, 5> kOidEd25519{0x06, 0x03, 0x2b, 0x65, 0x70};
// PKCS#11 3.0 also names the curve by a PrintableString; OpenSC's pkcs11-tool writes that form.
constexpr std::array<CK_BYTE, 14> kNameEd25519{0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's', '2', '5', '5', '1', '9'};

CK_BBOOL kTrue = CK_TRUE;
CK_BBOOL kFalse = CK_FALSE;

template <class T>
CK_ATTRIBUTE attr(CK_ATTRIBUTE_TYPE type, T& value) {
  return {type, &value, sizeof(value)};
}
CK_ATTRIBUTE attr_bytes(CK_ATTRIBUTE_TYPE type, const void* data, std::size_t size) {
  return {type, const_cast<void*>(data), size};
}

// Ends a C_FindObjectsInit on every path out of the search.
class FindGuard {
 public:
  explicit FindGuard(SessionRef s) : s_(s) {}
  ~FindGuard() { (void)P11_CALL(*s_.module, C_FindObjectsFinal, s_.handle); }
  FindGuard(const FindGuard&) = delete;
  FindGuard& operator=(const FindGuard&) = delete;

 private:
  SessionRef s_;
};

Result<std::vector<CK_OBJECT_HANDLE>> find_objects(SessionRef s, std::vector<CK_ATTRIBUTE> templ) {
  if (auto ok = P11_CALL(*s.module, C_FindObjectsInit, s.handle, templ.data(), templ.size()); !ok)
    return ok.error();
  FindGuard guard(s);
  std::vector<CK_OBJECT_HANDLE> found;
  std::array<CK_OBJECT_HANDLE, 32> batch{};
  for (;;) {
    CK_ULONG n = 0;
    if (auto ok = P11_CALL(*s.module, C_FindObjects, s.handle, batch.data(), batch.size(), &n); !ok)
      return ok.error();
    if (n == 0) break;
    found.insert(found.end(), batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(n));
  }
  return found;
}

Result<std::vector<CK_OBJECT_HANDLE>> find_by_class(SessionRef s, CK_OBJECT_CLASS cls, ByteView id) {
  std::vector<CK_ATTRIBUTE> templ{attr(CKA_CLASS, cls)};
  if (!id.empty()) templ.push_back(attr_bytes(CKA_ID, id.data(), id.size()));
  return find_objects(s, std::move(templ));
}

Result<Custody> read_custody(SessionRef s, CK_OBJECT_HANDLE key) {
  CK_BBOOL local = CK_FALSE, never_extractable = CK_FALSE, always_sensitive = CK_FALSE,
           extractable = CK_TRUE, sensitive = CK_FALSE;
  std::array templ{attr(CKA_LOCAL, local), attr(CKA_NEVER_EXTRACTABLE, never_extractable),
                   attr(CKA_ALWAYS_SENSITIVE, always_sensitive), attr(CKA_EXTRACTABLE, extractable),
                   attr(CKA_SENSITIVE, sensitive)};
  if (auto ok = P11_CALL(*s.module, C_GetAttributeValue, s.handle, key, templ.data(), templ.size()); !ok)
    return ok.error();
  return Custody{local == CK_TRUE, never_extractable == CK_TRUE, always_sensitive == CK_TRUE,
                 extractable == CK_TRUE, sensitive == CK_TRUE};
}

// Unwraps the DER OCTET STRING around CKA_EC_POINT (PKCS#11 2.40 §2.3.3). Some tokens return the bare
// point; that is accepted when its length is already the expected one.
std::optional<Bytes> unwrap_octet_string(const Bytes& der, std::size_t expected) {
  if (der.size() == expected) return der;
  if (der.size() < 2 || der[0] != 0x04) return std::nullopt;
  std::size_t len = der[1], header = 2;
  if (len == 0x81 && der.size() >= 3) {
    len = der[2];
    header = 3;
  } else if (len >= 0x80) {
    return std::nullopt;
  }
  if (header + len != der.size() || len != expected) return std::nullopt;
  return Bytes(der.begin() + static_cast<std::ptrdiff_t>(header), der.end());
}

Bytes strip_leading_zeros(Bytes b) {
  auto first = b.begin();
  while (first != b.end() && std::next(first) != b.end() && *first == 0) ++first;
  b.erase(b.begin(), first);
  return b;
}

Result<KeyObject> describe(SessionRef s, CK_OBJECT_HANDLE private_key) {
  KeyObject key;
  key.private_key = private_key;
  auto id = read_attribute(s, private_key, CKA_ID);
  if (!id) return id.error();
  key.id = std::move(*id);
  auto label = read_attribute(s, private_key, CKA_LABEL);
  if (!label) return label.error();
  key.label.assign(label->begin(), label->end());

  CK_KEY_TYPE type = 0;
  std::array type_templ{attr(CKA_KEY_TYPE, type)};
  if (auto ok = P11_CALL(*s.module, C_GetAttributeValue, s.handle, private_key, type_templ.data(), 1); !ok)
    return ok.error();
  if (type == CKK_RSA) {
    key.type = KeyType::RSA;
    auto modulus = read_attribute(s, private_key, CKA_MODULUS);
    if (!modulus) return modulus.error();
    key.bits = strip_leading_zeros(std::move(*modulus)).size() * 8;
  } else if (type == CKK_EC || type == CKK_EC_EDWARDS) {
    auto params = read_attribute(s, private_key, CKA_EC_PARAMS);
    if (!params) return params.error();
    auto is = [&](const auto& oid) { return std::equal(params->begin(), params->end(), oid.begin(), oid.end()); };
    key.type = type == CKK_EC ? KeyType::EC : KeyType::OKP;
    key.bits = is(kOidP256) ? 256 : is(kOidP384) ? 384 : (is(kOidEd25519) || is(kNameEd25519)) ? 255 : 0;
  } else {
    key.type = KeyType::EC;
    key.bits = 0;  // a key type hsmsignd does not sign with; fits() is false for it
  }

  auto custody = read_custody(s, private_key);
  if (!custody) return custody.error();
  key.custody = *custody;

  auto publics = find_by_class(s, CKO_PUBLIC_KEY, key.id);
  if (!publics) return publics.error();
  if (!key.id.empty() && publics->size() == 1) key.public_key = publics->front();
  return key;
}

void append_key_attributes(const KeySpec& spec, std::vector<CK_ATTRIBUTE>& pub, CK_ULONG& bits,
                           CK_MECHANISM_TYPE& mechanism) {
  static constexpr std::array<CK_BYTE, 3> kExponent65537{0x01, 0x00, 0x01};
  switch (spec.algorithm) {
    case Algorithm::ES256:
      mechanism = CKM_EC_KEY_PAIR_GEN;
      pub.push_back(attr_bytes(CKA_EC_PARAMS, kOidP256.data(), kOidP256.size()));
      break;
    case Algorithm::ES384:
      mechanism = CKM_EC_KEY_PAIR_GEN;
      pub.push_back(attr_bytes(CKA_EC_PARAMS, kOidP384.data(), kOidP384.size()));
      break;
    case Algorithm::EdDSA:
      mechanism = CKM_EC_EDWARDS_KEY_PAIR_GEN;
      pub.push_back(attr_bytes(CKA_EC_PARAMS, kOidEd25519.data(), kOidEd25519.size()));
      break;
    case Algorithm::RS256:
    case Algorithm::PS256:
      mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
      bits = spec.rsa_bits;
      pub.push_back(attr(CKA_MODULUS_BITS, bits));
      pub.push_back(attr_bytes(CKA_PUBLIC_EXPONENT, kExponent65537.data(), kExponent65537.size()));
      break;
  }
}

}  // namespace

bool fits(const KeyObject& key, Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::ES256: return key.type == KeyType::EC && key.bits == 256;
    case Algorithm::ES384: return key.type == KeyType::EC && key.bits == 384;
    case Algorithm::RS256:
    case Algorithm::PS256: return key.type == KeyType::RSA && key.bits >= 2048;
    case Algorithm::EdDSA: return key.type == KeyType::OKP && key.bits == 255;
  }
  return false;
}

Result<Bytes> read_attribute(SessionRef s, ObjectHandle object, unsigned long attribute) {
  CK_ATTRIBUTE a{attribute, nullptr, 0};
  if (auto ok = P11_CALL(*s.module, C_GetAttributeValue, s.handle, object, &a, 1); !ok) return ok.error();
  if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION)
    return Error::token("C_GetAttributeValue", CKR_ATTRIBUTE_TYPE_INVALID);
  Bytes value(a.ulValueLen);
  a.pValue = value.data();
  if (auto ok = P11_CALL(*s.module, C_GetAttributeValue, s.handle, object, &a, 1); !ok) return ok.error();
  value.resize(a.ulValueLen);
  return value;
}

Result<KeyObject> generate_key_pair(SessionRef s, const KeySpec& spec) {
  if (spec.id.empty() || spec.label.empty()) return Error::refused("a new key needs a CKA_ID and a CKA_LABEL");
  if (key_type(spec.algorithm) == KeyType::RSA && spec.rsa_bits != 2048 && spec.rsa_bits != 3072 &&
      spec.rsa_bits != 4096)
    return Error::refused("RSA keys are 2048, 3072 or 4096 bits");

  CK_ULONG bits = 0;
  CK_MECHANISM_TYPE mechanism_type = 0;
  std::vector<CK_ATTRIBUTE> pub{attr(CKA_TOKEN, kTrue), attr(CKA_PRIVATE, kFalse),
                                attr_bytes(CKA_ID, spec.id.data(), spec.id.size()),
                                attr_bytes(CKA_LABEL, spec.label.data(), spec.label.size())};
  append_key_attributes(spec, pub, bits, mechanism_type);
  std::vector<CK_ATTRIBUTE> priv{attr(CKA_TOKEN, kTrue), attr(CKA_PRIVATE, kTrue),
                                 attr_bytes(CKA_ID, spec.id.data(), spec.id.size()),
                                 attr_bytes(CKA_LABEL, spec.label.data(), spec.label.size())};
  // Which uses each half has is a token rule (token_rules.cpp says why).
  const KeyUsage usage = key_usage(spec.algorithm);
  auto add_usage = [](std::vector<CK_ATTRIBUTE>& templ, const std::vector<UsageAttribute>& attributes) {
    for (const auto& [type, value] : attributes) templ.push_back(attr(type, value ? kTrue : kFalse));
  };
  add_usage(pub, usage.public_half);
  add_usage(priv, usage.private_half);

  CK_MECHANISM mechanism{mechanism_type, nullptr, 0};
  CK_OBJECT_HANDLE pub_handle = CK_INVALID_HANDLE, priv_handle = CK_INVALID_HANDLE;
  if (auto ok = P11_CALL(*s.module, C_GenerateKeyPair, s.handle, &mechanism, pub.data(), pub.size(), priv.data(),
                         priv.size(), &pub_handle, &priv_handle);
      !ok) {
    Error e = ok.error();
    e.detail = std::string("generating a ") + std::string(name(spec.algorithm)) + " key";
    return e;
  }
  return describe(s, priv_handle);
}

Result<std::vector<KeyObject>> list_keys(SessionRef s) {
  auto handles = find_by_class(s, CKO_PRIVATE_KEY, {});
  if (!handles) return handles.error();
  std::vector<KeyObject> keys;
  for (CK_OBJECT_HANDLE h : *handles) {
    auto key = describe(s, h);
    if (!key && key.error().handle_stale()) continue;  // destroyed meanwhile (another process on the token)
    if (!key) return key.error();
    keys.push_back(std::move(*key));
  }
  return keys;
}

Result<std::optional<KeyObject>> find_key(SessionRef s, ByteView id) {
  if (id.empty()) return Error::refused("a key is found by a non-empty CKA_ID");
  auto handles = find_by_class(s, CKO_PRIVATE_KEY, id);
  if (!handles) return handles.error();
  if (handles->empty()) return std::optional<KeyObject>{};
  if (handles->size() > 1) return Error::refused("more than one private key with the same CKA_ID");
  auto key = describe(s, handles->front());
  if (!key) return key.error();
  return std::optional<KeyObject>{std::move(*key)};
}

Result<PublicKey> export_public_key(SessionRef s, const KeyObject& key, Algorithm algorithm) {
  if (!fits(key, algorithm)) return Error::refused(std::string("key does not fit ") + std::string(name(algorithm)));
  PublicKey out{algorithm, {}, {}, {}};
  if (key.type == KeyType::RSA) {
    // RSA private key objects carry n and e as public attributes; no public object is needed.
    auto n = read_attribute(s, key.private_key, CKA_MODULUS);
    if (!n) return n.error();
    auto e = read_attribute(s, key.private_key, CKA_PUBLIC_EXPONENT);
    if (!e) return e.error();
    out.modulus = strip_leading_zeros(std::move(*n));
    out.exponent = strip_leading_zeros(std::move(*e));
    return out;
  }
  if (key.public_key == 0) return Error::not_found("no public key object beside the private key");
  auto der = read_attribute(s, key.public_key, CKA_EC_POINT);
  if (!der) return der.error();
  const std::size_t expected = key.type == KeyType::OKP ? 32 : 1 + 2 * ec_field_size(algorithm);
  auto point = unwrap_octet_string(*der, expected);
  if (!point || (key.type == KeyType::EC && (*point)[0] != 0x04))
    return Error::refused("the token returned a malformed CKA_EC_POINT");
  out.point = std::move(*point);
  return out;
}

Result<std::vector<PublicObject>> list_public_keys(SessionRef s) {
  auto handles = find_by_class(s, CKO_PUBLIC_KEY, {});
  if (!handles) return handles.error();
  std::vector<PublicObject> out;
  for (CK_OBJECT_HANDLE h : *handles) {
    auto id = read_attribute(s, h, CKA_ID);
    auto label = id ? read_attribute(s, h, CKA_LABEL) : Result<Bytes>(id.error());
    if (!label && label.error().handle_stale()) continue;  // destroyed meanwhile
    if (!id) return id.error();
    if (!label) return label.error();
    out.push_back({std::move(*id), std::string(label->begin(), label->end())});
  }
  return out;
}

Status set_label(SessionRef s, ByteView id, const std::string& label) {
  if (id.empty()) return Error::refused("a key is relabelled by a non-empty CKA_ID");
  for (CK_OBJECT_CLASS cls : {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY}) {
    auto handles = find_by_class(s, cls, id);
    if (!handles) return handles.error();
    for (CK_OBJECT_HANDLE h : *handles) {
      CK_ATTRIBUTE a = attr_bytes(CKA_LABEL, label.data(), label.size());
      if (auto ok = P11_CALL(*s.module, C_SetAttributeValue, s.handle, h, &a, 1); !ok) return ok.error();
    }
  }
  return {};
}

Status relabel(SessionRef s, ByteView id, const std::string& from, const std::string& to) {
  if (id.empty()) return Error::refused("a key is relabelled by a non-empty CKA_ID");
  std::size_t changed = 0;
  for (CK_OBJECT_CLASS cls : {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY}) {
    std::vector<CK_ATTRIBUTE> templ{attr(CKA_CLASS, cls), attr_bytes(CKA_ID, id.data(), id.size()),
                                    attr_bytes(CKA_LABEL, from.data(), from.size())};
    auto handles = find_objects(s, std::move(templ));
    if (!handles) return handles.error();
    for (CK_OBJECT_HANDLE h : *handles) {
      CK_ATTRIBUTE a = attr_bytes(CKA_LABEL, to.data(), to.size());
      if (auto ok = P11_CALL(*s.module, C_SetAttributeValue, s.handle, h, &a, 1); !ok) return ok.error();
      ++changed;
    }
  }
  if (changed == 0) return Error::not_found("no key with that CKA_ID and label");
  return {};
}

Status destroy_key(SessionRef s, ByteView id) {
  if (id.empty()) return Error::refused("a key is destroyed by a non-empty CKA_ID");
  // The private half first: once it is gone the key can no longer sign, whatever happens next.
  for (CK_OBJECT_CLASS cls : {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY}) {
    auto handles = find_by_class(s, cls, id);
    if (!handles) return handles.error();
    for (CK_OBJECT_HANDLE h : *handles) {
      auto ok = P11_CALL(*s.module, C_DestroyObject, s.handle, h);
      if (!ok && !ok.error().handle_stale()) return ok.error();  // gone already: that is the goal
    }
  }
  return {};
}

}  // namespace hsmsignd::pkcs11
