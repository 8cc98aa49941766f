#!/usr/bin/env bash
# The revocation benchmark (issue 14), from one command, on a throw-away SoftHSM token:
#
#   bench/revocation.sh [SECONDS_PER_ROW]             default 3 s; RESULTS=DIR, BUILD=DIR as for bench/run.sh
#
# Measures, in one run so that the machine's speed cancels out of the ratios:
#   raw            C_Sign on the token, 1 thread (ES256): the yardstick of every ratio
#   jwt            POST /v1/jwt, 8 connections: tokens/s
#   verify         POST /v1/verify of a valid token, 8 connections, with no revocation in force, then with
#                  every revocation the "revoke" row stored in force: verify/s, and their ratio (the cost
#                  of the in-memory revocation check as the set grows)
#   revoke         POST /v1/revoke by jti, 8 connections, each answered once durable: revocations/s
#   redis          the same verify and revoke rows with [revocation] redis (a redis-server this script
#                  starts on a Unix socket, appendfsync always), and the revocation on one daemon to the
#                  refusal by another daemon on the same Redis (bench/revocation_latency.py, 30 rounds)
#   status list    the size of one list of 1,000,000 tokens with 0.1 % revoked (the daemon's encoder)
# Writes RESULTS/revocation.md and prints it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/config.sh
source bench/config.sh
seconds=${1:-3}
build=${BUILD:-build-bench}
results=${RESULTS:-/tmp/hsmsignd-bench/revocation-$(date +%Y%m%d-%H%M%S)}

scripts/install-deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target hsmsignd hsmsignd-bench-raw hsmsignd-bench-load hsmsignd-bench-startup \
  hsmsignd-bench-status-list-size >/dev/null
load="$build/bench/hsmsignd-bench-load"
startup="$build/bench/hsmsignd-bench-startup"
hsmsignd="$build/daemon/hsmsignd"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$results"
: >"$results/revocation.md"
eval "$(softhsm-config/make-token.sh "$work/token" bench)"
root_flag=()
[ "$(id -u)" != 0 ] || root_flag=(--allow-root)

# shellcheck disable=SC2059  # say takes a printf format, always a literal
say() { printf -- "$@" | tee -a "$results/revocation.md"; }
calc() { awk "BEGIN { printf \"$1\", ($2) }"; }

# daemon NAME [TOML TABLES...]: a daemon of its own folder (sockets, state, audit) on the shared token.
daemon() {
  local name=$1 dir="$work/$1"
  shift
  mkdir -p "$dir/run"
  ln -sfn "$work/token" "$dir/token"
  { bench_config bench "run/audit.jsonl" ES256; printf '%s\n' "$@"; } >"$dir/hsmsignd.toml"
  "$hsmsignd" --config "$dir/hsmsignd.toml" "${root_flag[@]}" 2>>"$dir/daemon.log" &
  pids+=($!)
  "$startup" --socket "$dir/run/sign.sock" --wait --pid "$!" --timeout 120 || { tail -20 "$dir/daemon.log" >&2; exit 1; }
}

# rate SOCKET LOAD-ARGS...: requests/s of one closed-loop run at 8 connections; any non-200 is a failure.
rate() {
  local sock=$1 line
  shift
  line=$("$load" --socket "$sock" --connections 8 --seconds "$seconds" "$@")
  read -r _ r _ _ _ errors <<<"$line"
  [ "$errors" = 0 ] || { echo "$errors requests failed: $line" >&2; exit 1; }
  echo "$r"
}

post() {  # post SOCKET PATH JSON: the answer's body
  curl -sf --unix-socket "$1" -H 'Content-Type: application/json' -d "$3" "http://localhost$2"
}
jwt_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["jwt"])'; }
entries() { curl -sf --unix-socket "$1" http://localhost/metrics | awk '$1 == "hsmsignd_revocation_entries" { print $2 }'; }

say '# hsmsignd revocation benchmark, %s\n\n%s s per row, 8 connections; %s cores; load average at start: %s.\n\n' \
  "$(date -Is)" "$seconds" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
raw=$("$build/bench/hsmsignd-bench-raw" --token bench --pin-file "$work/token/pin" --seconds "$seconds" --threads 1 \
  --algorithms ES256 | grep -v '^#' | tail -1 | awk '{ print $3 }')

# measure NAME SOCKET: the verify and revoke rows against one daemon; sets jwt_rate verify_before revoke_rate
# verify_after verify_revoked stored.
measure() {
  local sock=$2 token revoked exp
  token=$(post "$sock" /v1/jwt '{"sub":"bench-user"}' | jwt_of)
  revoked=$(post "$sock" /v1/jwt '{"sub":"bench-revoked"}' | jwt_of)
  post "$sock" /v1/revoke "{\"jwt\":\"$revoked\"}" >/dev/null
  exp=$(($(date +%s) + 600))
  jwt_rate=$(rate "$sock" --keyset es256)
  verify_before=$(rate "$sock" --path /v1/verify --body "{\"jwt\":\"$token\"}")
  revoke_rate=$(rate "$sock" --path /v1/revoke --body "{\"jti\":\"$1-%N%\",\"exp\":$exp}")
  stored=$(entries "$sock")
  verify_after=$(rate "$sock" --path /v1/verify --body "{\"jwt\":\"$token\"}")
  verify_revoked=$(rate "$sock" --path /v1/verify --body "{\"jwt\":\"$revoked\"}")
}

row() {  # row STORE
  say '| %s | %s | %s | %s (%s of raw) | %s | %s | %s (%s) | %s |\n' "$1" "$raw" "$jwt_rate" "$verify_before" \
    "$(calc '%.2f' "$verify_before / $raw")" "$revoke_rate" "$stored" "$verify_after" \
    "$(calc '%.3f' "$verify_after / $verify_before")" "$verify_revoked"
}

say '| store | raw C_Sign/s | /v1/jwt/s | /v1/verify/s, none in force | /v1/revoke/s (jti) | in force after | /v1/verify/s then (ratio) | verify of a revoked token/s |\n'
say '|---|---:|---:|---:|---:|---:|---:|---:|\n'
daemon sqlite
measure sqlite "$work/sqlite/run/sign.sock"
row "embedded (SQLite)"
kill -TERM "${pids[-1]}" && wait "${pids[-1]}" || true

mkdir -p "$work/redis"
redis-server --port 0 --unixsocket "$work/redis/redis.sock" --unixsocketperm 700 --dir "$work/redis" \
  --appendonly yes --appendfsync always --save '' --daemonize no >"$work/redis/log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -s "$work/redis/redis.sock" ping >/dev/null 2>&1 && break; sleep 0.1; done
shared=("[revocation]" "redis = \"unix:$work/redis/redis.sock\"")
daemon a "${shared[@]}"
daemon b "${shared[@]}"
measure redis "$work/a/run/sign.sock"
row "Redis (unix socket, appendfsync always)"
read -r rounds median p90 max < <(python3 bench/revocation_latency.py "$work/a/run/sign.sock" "$work/b/run/sign.sock" 30)
say '\nRevoked on one daemon, refused by the other (same Redis): %s rounds, median %s ms, p90 %s ms, max %s ms (from sending the revocation to the other daemon'"'"'s first "revoked").\n' \
  "$rounds" "$median" "$p90" "$max"

read -r tokens revoked raw_bytes lst < <("$build/bench/hsmsignd-bench-status-list-size" 1000000 0.001)
say '\nStatus List of %s tokens, %s revoked (0.1 %%): %s bytes of bits, lst %s characters (base64url of zlib), %s of the bits.\n' \
  "$tokens" "$revoked" "$raw_bytes" "$lst" "$(calc '%.1f%%' "100 * $lst * 3 / 4 / $raw_bytes")"
say '\nWritten to %s\n' "$results/revocation.md"
