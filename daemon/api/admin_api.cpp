#include "api/admin_api.h"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "api/api_error.h"
#include "api/json_body.h"
#include "api/peer_record.h"
#include "custody/custody_report.h"
#include "log/log.h"

namespace hsmsignd::api {
namespace {


ApiError from_keyring(const pkcs11::Error& e) {
  switch (e.kind) {
    case pkcs11::ErrorKind::not_found: return ApiError::not_found(e.what());
    case pkcs11::ErrorKind::refused: return ApiError::bad_request(e.what());
    default: return ApiError::unavailable(e.what());
  }
}

std::string who(const policy::Peer& peer) { return std::to_string(peer.uid); }

}  // namespace

void AdminApi::handle(const policy::Peer& peer, const HttpRequest& request, Reply unmetered) {
  Reply reply = [this, reply = std::move(unmetered)](HttpResponse r) {
    metrics_.request(metrics::Route::admin, r.status);
    reply(std::move(r));
  };
  if (peer.uid != 0 && peer.uid != ::geteuid()) {
    log::warning("deny", {{"uid", who(peer)}, {"pid", std::to_string(peer.pid)}, {"reason", "admin socket"}});
    auto denied = peer_record("deny", peer, nullptr, true);
    denied.add().string("reason", "admin socket");
    audit_.append(std::move(denied));
    return reply(error_response(ApiError::forbidden("the admin socket is for root and the daemon's user only")));
  }
  const auto& t = request.target;
  if (t == "/v1/admin/rotate" || t == "/v1/admin/retire" || t == "/v1/admin/destroy") {
    if (request.method != "POST") return reply(error_response(ApiError::method_not_allowed(t + " takes POST", "POST")));
    if (t == "/v1/admin/rotate") return rotate(peer, request, std::move(reply));
    return retire_or_destroy(peer, request, t == "/v1/admin/destroy", std::move(reply));
  }
  if (t == "/v1/admin/revoke" || t == "/v1/admin/verify") {
    if (request.method != "POST") return reply(error_response(ApiError::method_not_allowed(t + " takes POST", "POST")));
    // The operator's lines name the operation, as ceremony lines do; an issuer's name its client instead.
    const auto record_for = [&peer, operation = t.substr(t.rfind('/') + 1)](std::string event) {
      auto r = peer_record(std::move(event), peer, nullptr, true);
      r.add().string("operation", operation);
      return r;
    };
    if (t == "/v1/admin/verify") return tokens_.verify(request, t, record_for, std::move(reply));
    log::info("admin_revoke", {{"uid", who(peer)}});
    return tokens_.revoke_any(request, record_for, std::move(reply));
  }
  if (t == "/v1/admin/custody") {
    if (request.method != "GET") return reply(error_response(ApiError::method_not_allowed(t + " takes GET", "GET")));
    return custody(std::move(reply));
  }
  if (t == "/v1/admin/checkpoint") {
    if (request.method != "POST") return reply(error_response(ApiError::method_not_allowed(t + " takes POST", "POST")));
    return checkpoint(peer, std::move(reply));
  }
  reply(error_response(ApiError::not_found("no route " + t)));
}

void AdminApi::rotate(const policy::Peer& peer, const HttpRequest& request, Reply reply) {
  auto body = parse_object(request.body);
  if (!body) return reply(error_response(body.error()));
  for (const auto& [key, value] : body->items())
    if (key != "keyset" && key != "immediate") return reply(error_response(ApiError::bad_request("unknown member \"" + key + "\"")));
  if (!body->contains("keyset") || !(*body)["keyset"].is_string())
    return reply(error_response(ApiError::bad_request("\"keyset\" (a string) is required")));
  if (body->contains("immediate") && !(*body)["immediate"].is_boolean())
    return reply(error_response(ApiError::bad_request("\"immediate\" must be true or false")));
  const std::string keyset = (*body)["keyset"];
  const bool immediate = body->value("immediate", false);
  log::info("admin_rotate", {{"uid", who(peer)}, {"keyset", keyset}, {"immediate", immediate ? "true" : "false"}});
  auto step = ceremony_record(peer, "rotate");
  step.add().string("keyset", keyset).boolean("immediate", immediate);
  audit_.append(std::move(step));
  keyring_.rotate(keyset, immediate, [reply, keyset](pkcs11::Result<std::string> kid) {
    if (!kid) return reply(error_response(from_keyring(kid.error())));
    reply({200, nlohmann::json{{"keyset", keyset}, {"kid", *kid}}.dump(), "application/json", {}, {}});
  });
}

void AdminApi::retire_or_destroy(const policy::Peer& peer, const HttpRequest& request, bool destroy, Reply reply) {
  auto body = parse_object(request.body);
  if (!body) return reply(error_response(body.error()));
  for (const auto& [key, value] : body->items())
    if (key != "kid") return reply(error_response(ApiError::bad_request("unknown member \"" + key + "\"")));
  if (!body->contains("kid") || !(*body)["kid"].is_string())
    return reply(error_response(ApiError::bad_request("\"kid\" (a string) is required")));
  const std::string kid = (*body)["kid"];
  const char* operation = destroy ? "destroy" : "retire";
  log::info(std::string("admin_") + operation, {{"uid", who(peer)}, {"kid", kid}});
  auto step = ceremony_record(peer, operation);
  step.add().string("kid", kid);
  audit_.append(std::move(step));
  auto done = [reply, kid, answer = destroy ? "destroyed" : "retired"](pkcs11::Status ok) {
    if (!ok) return reply(error_response(from_keyring(ok.error())));
    reply({200, nlohmann::json{{answer, kid}}.dump(), "application/json", {}, {}});
  };
  destroy ? keyring_.destroy(kid, std::move(done)) : keyring_.retire(kid, std::move(done));
}

}  // namespace hsmsignd::api

namespace hsmsignd::api {

audit::Record AdminApi::ceremony_record(const policy::Peer& peer, std::string_view operation) {
  auto r = peer_record("config", peer, nullptr, true);
  r.add().string("operation", operation);
  return r;
}

void AdminApi::custody(Reply reply) {
  // Token calls, and a read of the whole log: off the I/O thread.
  keyring_.post([this, reply] {
    const auto counts = custody::count_signatures(config_.audit.file);
    const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    auto r = custody::report(signers_.token_ops(), signers_.token(), config_, counts, now);
    if (!r) return reply(error_response(from_keyring(r.error())));
    reply({200, r->dump(), "application/json", {}, {}});
  });
}

void AdminApi::checkpoint(const policy::Peer& peer, Reply reply) {
  audit_.append(ceremony_record(peer, "checkpoint"));
  audit_.checkpoint([reply](std::uint64_t seq) {
    if (seq == 0) return reply(error_response(ApiError::unavailable("the checkpoint could not be written")));
    reply({200, nlohmann::json{{"seq", seq}}.dump(), "application/json", {}, {}});
  });
}

}  // namespace hsmsignd::api
