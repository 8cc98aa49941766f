#!/usr/bin/env bash
# TLS handshakes per second through the OpenSSL provider (issue 16), from one command, on a throw-away
# SoftHSM token:
#
#   bench/tls_handshakes.sh [SECONDS_PER_TURN] [TURNS]        defaults 5 s, 3 turns; RESULTS=DIR, BUILD=DIR
#
# For ECDSA P-256 and RSA-2048, one `openssl s_server` signs its handshakes with a token key through the
# provider and the daemon, another with the same kind of key in a software key file; `openssl s_time`
# makes new TLS 1.3 connections to each in turns, seconds apart, so that the machine's drift cancels out
# of the ratio (the median of the turns). Writes RESULTS/tls_handshakes.md and prints it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/config.sh
source bench/config.sh
seconds=${1:-5}
turns=${2:-3}
build=${BUILD:-build-bench}
results=${RESULTS:-/tmp/hsmsignd-bench/tls-$(date +%Y%m%d-%H%M%S)}

scripts/install-deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target hsmsignd hsmsignd_provider hsmsignd-bench-startup >/dev/null

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$results" "$work/run"
eval "$(softhsm-config/make-token.sh "$work/token" bench)"
root_flag=()
[ "$(id -u)" != 0 ] || root_flag=(--allow-root)
{ bench_config_base bench run/audit.jsonl; cat <<TOML
[[keyset]]
name = "tls-ec"
algorithm = "ES256"
usage = "tls"
rotation = "manual"
[[keyset]]
name = "tls-rsa"
algorithm = "PS256"
usage = "tls"
rotation = "manual"
[[client]]
name = "bench"
uids = [$(id -u)]
keysets = ["tls-ec", "tls-rsa"]
operations = ["sign"]
TOML
} >"$work/hsmsignd.toml"
"$build/daemon/hsmsignd" --config "$work/hsmsignd.toml" "${root_flag[@]}" 2>>"$work/daemon.log" &
pids+=($!)
"$build/bench/hsmsignd-bench-startup" --socket "$work/run/sign.sock" --wait --pid "$!" --timeout 120 ||
  { tail -20 "$work/daemon.log" >&2; exit 1; }

export OPENSSL_MODULES="$PWD/$build/provider" HSMSIGND_SOCKET="$work/run/sign.sock"
provider=(-provider default -provider hsmsignd)
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# server KEY CERT [OPENSSL OPTIONS...]: an s_server on a free port; prints the port.
server() {
  local key=$1 cert=$2 port
  shift 2
  port=$(free_port)
  openssl s_server "$@" -accept "127.0.0.1:$port" -key "$key" -cert "$cert" -www -quiet </dev/null \
    >/dev/null 2>>"$work/s_server.log" &
  pids+=($!)
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { echo "$port"; return; }
    sleep 0.05
  done
  echo "s_server on $port did not start" >&2
  exit 1
}

# handshakes PORT: new TLS 1.3 connections per second (wall clock) for $seconds.
handshakes() {
  openssl s_time -connect "127.0.0.1:$1" -new -time "$seconds" 2>/dev/null |
    awk '/connections in .* real seconds/ { printf "%.1f", $1 / $4 }'
}

median() { tr ' ' '\n' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

say() { printf -- "$@" | tee -a "$results/tls_handshakes.md"; }
: >"$results/tls_handshakes.md"
say '# TLS 1.3 handshakes/s: token key through the provider vs a software key (%s s turns, %s turns)\n\n' \
  "$seconds" "$turns"
say '| key | software /s (turns) | provider /s (turns) | provider / software (median of turns) |\n|---|---|---|---|\n'
for kind in ec rsa; do
  if [ "$kind" = ec ]; then genpkey=(-algorithm EC -pkeyopt ec_paramgen_curve:P-256); else genpkey=(-algorithm RSA -pkeyopt rsa_keygen_bits:2048); fi
  openssl genpkey "${genpkey[@]}" -out "$work/soft-$kind.key" 2>/dev/null
  openssl req -new -x509 -key "$work/soft-$kind.key" -subj /CN=localhost -days 1 -out "$work/soft-$kind.pem"
  openssl req "${provider[@]}" -new -x509 -key "hsmsignd:keyset=tls-$kind" -subj /CN=localhost -days 1 \
    -out "$work/token-$kind.pem"
  soft_port=$(server "$work/soft-$kind.key" "$work/soft-$kind.pem")
  token_port=$(server "hsmsignd:keyset=tls-$kind" "$work/token-$kind.pem" "${provider[@]}")
  soft=() token=() ratios=()
  for _ in $(seq "$turns"); do
    s=$(handshakes "$soft_port")
    t=$(handshakes "$token_port")
    soft+=("$s") token+=("$t") ratios+=("$(awk "BEGIN { printf \"%.3f\", $t / $s }")")
  done
  say '| %s | %s | %s | **%s** |\n' "$([ "$kind" = ec ] && echo 'ECDSA P-256' || echo 'RSA-2048 (PSS)')" \
    "${soft[*]}" "${token[*]}" "$(echo "${ratios[*]}" | median)"
done
say '\nEach provider handshake is one POST /v1/sign over a new connection to the daemon, a signature in the\n'
say 'token (SoftHSM) checked against the public key, and one audit line on disk.\n'
echo "results: $results/tls_handshakes.md"
