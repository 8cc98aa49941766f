// The strict JSON body reader (api/json_body) and the decoding of every request body (api/requests):
// each input is read as a body and, if it is an object, decoded as /v1/jwt, /v1/jws and /v1/sign for
// both test clients, through the policy to the header and claims that would be signed.
//
// Invariants: no exception escapes; parse_object accepts exactly what an independent strict reading
// accepts (valid UTF-8, one object, no duplicate names, depth <= 16); every refusal is a 400 with a
// message and a well-formed error body; an accepted request has only known members, in bounds, and the
// claims the daemon writes cannot be replaced. The admin bodies (rotate, retire, destroy) are checked
// inline in AdminApi, not decoded by a separate function; only their parse_object step is reached here.
#include <cstddef>
#include <cstdint>
#include <exception>

#include "request_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace hsmsignd;
  try {
    const auto body = fuzz::checked_parse_object(fuzz::as_text(data, size));
    if (!body) return 0;
    for (const auto& client : fuzz::test_config().clients) {
      fuzz::handle_jwt(*body, client);
      fuzz::handle_jws(*body, client);
      fuzz::handle_sign(*body, client);
    }
  } catch (const std::exception& e) {
    fuzz::fail(__FILE__, __LINE__, "no exception", std::string("exception escaped: ") + e.what());
  } catch (...) {
    fuzz::fail(__FILE__, __LINE__, "no exception", "a non-standard exception escaped");
  }
  return 0;
}
