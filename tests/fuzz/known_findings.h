// Findings the targets have made that are reported but not fixed yet (tests/fuzz/findings/). While a
// flag is true, the targets accept that one behaviour, narrowly, so a CI run still catches everything
// else; whoever fixes the daemon sets the flag to false (and then deletes it), and the target holds the
// fixed code to the strict rule from then on.
#pragma once

namespace hsmsignd::fuzz {

// Build with -DHSMSIGND_FUZZ_STRICT to tolerate none of them (to check a fix against its reproducer:
// tests/fuzz/findings/README.md).
// 001 to 004 are fixed (json_body.cpp, http_session.h): no finding is tolerated any more, and every
// run replays their reproducers. A new, unfixed finding would set this back to true behind its flag.
inline constexpr bool kTolerateKnownFindings = false;

// findings/001-json-body-nul: nlohmann's lexer takes a NUL byte for the end of the input, so
// api::parse_object accepts `{"sub":"a"}\0<anything>` and never looks at what follows the NUL.
inline constexpr bool kKnownNulEndsJsonBody = kTolerateKnownFindings;

// findings/002-stale-head-refusal: HttpSession::on_read leaves head_only_ as the previous request set it
// when it refuses the next one, so after a HEAD request the refusal (400/413) goes out with
// Content-Length: N and no body: the client waits for N bytes that never come, and never reads why.
inline constexpr bool kKnownStaleHeadOnRefusal = kTolerateKnownFindings;

// findings/003-json-number-overflow: api::parse_object catches nlohmann's parse_error only, but a number
// too large for a double ({"ttl":1e999}) makes the parser throw out_of_range (406). It escapes the
// handler, HttpSession and io_context::run(), and main() exits: one request from any client stops the
// daemon.
inline constexpr bool kKnownNumberOverflowEscapes = kTolerateKnownFindings;

// findings/004-json-empty-name-duplicate: parse_object keeps the first duplicate name in a string and
// tests it with empty(), so a duplicate of the empty name ({"":1,"":2}, also inside "claims") is
// never refused.
inline constexpr bool kKnownEmptyNameDuplicates = kTolerateKnownFindings;

}  // namespace hsmsignd::fuzz
