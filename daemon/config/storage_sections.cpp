// [state] and [audit]: where the daemon keeps its own files.
#include "config/sections.h"

namespace hsmsignd::config {

StateConfig read_state(const Section& root) {
  StateConfig out;
  const std::optional<Section> state = root.table("state");
  if (!state) return out;
  state->allow_only({"dir"});
  out.dir = state->path("dir").value_or(out.dir);
  return out;
}

AuditConfig read_audit(const Section& root) {
  AuditConfig out;
  const std::optional<Section> audit = root.table("audit");
  if (!audit) return out;
  audit->allow_only({"file", "checkpoint_every", "max_size"});
  out.file = audit->path("file").value_or(out.file);
  out.checkpoint_every = audit->duration("checkpoint_every").value_or(out.checkpoint_every);
  if (out.checkpoint_every < Duration{1}) audit->fail("checkpoint_every", "must be at least 1s");
  // Bytes; 0 (the default) rotates only on SIGHUP, so an external logrotate stays in charge.
  out.max_size = static_cast<std::uint64_t>(audit->integer("max_size", 0, std::int64_t{1} << 40).value_or(0));
  return out;
}

}  // namespace hsmsignd::config
