#include "api/peer_record.h"

namespace hsmsignd::api {

audit::Record peer_record(std::string event, const policy::Peer& peer, const config::ClientConfig* client,
                          bool retry_until_written) {
  audit::Record r{std::move(event), retry_until_written};
  auto members = r.add();
  members.number("uid", peer.uid).number("gid", peer.gid).number("pid", peer.pid);
  if (client) members.string("client", client->name);
  return r;
}

}  // namespace hsmsignd::api
