// GET /statuslists/<keyset>/<window>: a Status List Token (draft-ietf-oauth-status-list §5), signed inside
// the token by the keyset's active key, so a verifier that trusts the JWKS trusts the list.
#include <chrono>

#include "api/if_none_match.h"
#include "api/issuer_api.h"
#include "api/token_builder.h"
#include "common/json_writer.h"
#include "common/rfc3339.h"
#include "crypto/digest.h"
#include "jose/base64url.h"
#include "jose/jws.h"
#include "status_list/encoding.h"

namespace hsmsignd::api {
namespace {

constexpr std::string_view kMediaType = "application/statuslist+jwt";

HttpResponse list_response(const HttpRequest& request, const status_list::SignedList& list, std::int64_t ttl) {
  HttpResponse r{200, list.token, std::string(kMediaType), list.etag, "public, max-age=" + std::to_string(ttl)};
  if (!request.if_none_match.empty() && none_match_fails(request.if_none_match, list.etag)) {
    r.status = 304;
    r.body.clear();
  }
  return r;
}

}  // namespace

void IssuerApi::status_list(const HttpRequest& request, std::string_view id, Reply reply) {
  const auto version = s_.status_lists->version(id);
  if (!version) return reply(error_response(ApiError::not_found("no status list " + std::string(id.substr(0, 128)))));
  // The bits are rebuilt from the revocation store: until it has been read, a list would call revoked
  // tokens valid.
  if (!s_.revocations.loaded())
    return reply(error_response(ApiError::unavailable("the revocation store has not been read yet: " +
                                                      s_.revocations.down_reason())));
  const std::int64_t ttl = s_.config.revocation.status_list_ttl.count();
  const auto steady_now = status_list::TokenCache::Clock::now();
  if (auto cached = signed_lists_.fresh(id, *version, steady_now)) return reply(list_response(request, *cached, ttl));

  auto snapshot = s_.status_lists->find(id);
  const config::KeysetConfig* keyset = snapshot ? s_.config.keyset(snapshot->keyset) : nullptr;
  if (keyset != nullptr && keyset->usage == config::Usage::tls) keyset = nullptr;  // never signs a list
  if (keyset == nullptr) return reply(error_response(ApiError::not_found("no status list " + std::string(id.substr(0, 128)))));
  const std::string list_id(id);
  if (!signed_lists_.start_signing(list_id)) {
    // Another request is signing this list: the token before it is still valid, or there is none yet.
    if (auto last = signed_lists_.last(id)) return reply(list_response(request, *last, ttl));
    return reply(error_response(ApiError::overloaded("the status list is being signed", 1)));
  }
  const std::int64_t iat = unix_now();
  std::string payload;
  {
    std::string list;
    JsonObjectWriter(list).number("bits", 1).string("lst", status_list::encode_list(snapshot->bytes)).close();
    // exp leaves a verifier a whole ttl after the cache's longest hold (ttl / 2) before the token lapses.
    JsonObjectWriter(payload)
        .string("sub", snapshot->uri)
        .number("iat", iat)
        .number("exp", iat + 2 * ttl)
        .number("ttl", ttl)
        .json("status_list", list)
        .close();
  }
  audit::Record record{"sign"};
  record.add().string("operation", "statuslist").string("uri", snapshot->uri);
  sign_with(
      *keyset, false, std::move(record),
      [this, request, list_id, version = snapshot->version, steady_now, reply](HttpResponse r) {
        // Served again only once its audit line is durable, as the first answer is.
        if (r.status == 200) signed_lists_.put(list_id, {version, r.body, r.etag, steady_now});
        signed_lists_.finished(list_id);
        if (r.status == 200 && !request.if_none_match.empty() && none_match_fails(request.if_none_match, r.etag)) {
          r.status = 304;
          r.body.clear();
        }
        reply(std::move(r));
      },
      [&](const keyring::Key& key, audit::Record& r) {
        std::string input = jose::signing_input(jwt_header(key.algorithm, key.kid, "statuslist+jwt"), as_bytes(payload));
        r.add().string("digest", jose::base64url_encode(crypto::sha256(as_bytes(input))));
        return input;
      },
      [ttl](const keyring::Key&, const std::string& input, const Bytes& signature) {
        std::string token = jose::compact(input, signature);
        std::string etag = "\"" + jose::base64url_encode(crypto::sha256(as_bytes(token))) + "\"";
        return HttpResponse{200, std::move(token), std::string(kMediaType), std::move(etag),
                            "public, max-age=" + std::to_string(ttl)};
      });
}

void IssuerApi::forget_retired_lists() {
  if (s_.status_lists)
    signed_lists_.forget_except([this](const std::string& id) { return s_.status_lists->version(id).has_value(); });
}

}  // namespace hsmsignd::api
