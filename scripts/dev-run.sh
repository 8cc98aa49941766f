#!/usr/bin/env bash
# Sets up and runs hsmsignd on a SoftHSM development token, on a fresh Debian 12 machine:
#   scripts/dev-run.sh
# Installs what it needs, builds into build/, makes a token under dev/token (kept across runs, so the
# same key comes back), writes dev/hsmsignd.toml, starts the daemon, shows a token being issued and the
# JWKS, then keeps the daemon in the foreground until Ctrl-C.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
dev=$root/dev

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target hsmsignd hsmsignctl

eval "$(softhsm-config/make-token.sh "$dev/token" hsmsignd)"
mkdir -p "$dev/run" "$dev/state" "$dev/log"
chmod 0700 "$dev/run"
cat > "$dev/hsmsignd.toml" <<TOML
# Development configuration written by scripts/dev-run.sh. Relative paths are relative to this file.
[token]
module = "/usr/lib/softhsm/libsofthsm2.so"
label = "hsmsignd"
pin_file = "token/pin"

[server]
socket = "run/sign.sock"
admin_socket = "run/admin.sock"

[jwks]
listen = "127.0.0.1:8080"
file = "run/jwks.json"

[state]
dir = "state"

[audit]
file = "log/audit.jsonl"

[[keyset]]
name = "default"
algorithm = "ES256"

[[client]]
name = "developer"
uids = [$(id -u)]
keysets = ["default"]
operations = ["jwt", "jws", "sign"]
issuer = "https://auth.example.com"
audiences = ["api-gateway"]
TOML

# hsmsignd refuses root unless told; this throw-away token is the one case to allow it.
root_flag=$([ "$(id -u)" = 0 ] && echo --allow-root || true)
build/daemon/hsmsignd --config "$dev/hsmsignd.toml" $root_flag &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null; wait $daemon 2>/dev/null' EXIT INT TERM
for _ in $(seq 100); do
  curl -sf --unix-socket "$dev/run/sign.sock" http://localhost/healthz >/dev/null 2>&1 && break
  kill -0 $daemon 2>/dev/null || { echo "hsmsignd did not start" >&2; exit 1; }
  sleep 0.1
done

ctl=(build/tools/hsmsignctl --config "$dev/hsmsignd.toml")
cat <<TXT

== hsmsignd is running (pid $daemon) on the SoftHSM token in dev/token ==

\$ ${ctl[*]} jwt --sub alice
$("${ctl[@]}" jwt --sub alice)

\$ curl -s --unix-socket dev/run/sign.sock -d '{"sub":"bob","ttl":120}' http://localhost/v1/jwt
$(curl -s --unix-socket "$dev/run/sign.sock" -d '{"sub":"bob","ttl":120}' http://localhost/v1/jwt)

\$ curl -s http://127.0.0.1:8080/.well-known/jwks.json
$(curl -s http://127.0.0.1:8080/.well-known/jwks.json)

The JWKS is also in dev/run/jwks.json. Keys: ${ctl[*]} keys

In a second terminal, the custody report and the audit check read the token itself, so they need
its SoftHSM configuration:
  cd $root && export SOFTHSM2_CONF=$SOFTHSM2_CONF
  ${ctl[*]} custody
  ${ctl[*]} audit verify dev/log/audit.jsonl
Revoking and checking a token (the admin socket; no token access needed):
  ${ctl[*]} jwt --sub carol | tee /tmp/carol.jwt | ${ctl[*]} verify -
  ${ctl[*]} revoke - < /tmp/carol.jwt && ${ctl[*]} verify - < /tmp/carol.jwt
Stop with Ctrl-C.
TXT
wait $daemon
