#!/usr/bin/env bash
# The benchmark, from one command, on a throw-away SoftHSM token:
#   bench/run.sh [SECONDS_PER_ROW] [CONNECTIONS...]
# Builds in Release mode, measures the raw token (C_Sign straight on the module), then the daemon under
# the load generator on the same token in the same run, and prints both with the daemon's rate as a
# ratio of the best raw rate for that algorithm. Noise on a shared machine hits both alike.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-3}
shift || true
connections=("${@:-1 8 64}")
[ $# -gt 0 ] && connections=("$@") || connections=(1 8 64)
build=build-bench

scripts/install-deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target hsmsignd hsmsignd-bench-raw hsmsignd-bench-load >/dev/null

work=$(mktemp -d)
daemon=
cleanup() {
  [ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
eval "$(softhsm-config/make-token.sh "$work/token" bench)"
algorithms=(ES256 RS256 PS256 EdDSA)

echo "== raw token: C_SignInit + C_Sign, one session per thread =="
"$build/bench/hsmsignd-bench-raw" --token bench --pin-file "$work/token/pin" --seconds "$seconds" \
  --threads 1,2,4 --algorithms "$(IFS=,; echo "${algorithms[*]}")" | tee "$work/raw.txt"

mkdir -p "$work/run" ${AUDIT_DIR:+"$AUDIT_DIR"}
{
  cat <<TOML
[token]
module = "/usr/lib/softhsm/libsofthsm2.so"
label = "bench"
pin_file = "token/pin"
sessions = 4
verify_signatures = "${VERIFY:-all}"
[server]
socket = "run/sign.sock"
admin_socket = "run/admin.sock"
[jwks]
listen = ""
[state]
dir = "run"
[audit]
file = "${AUDIT_DIR:-run}/audit.jsonl"
TOML
  for alg in "${algorithms[@]}"; do printf '[[keyset]]\nname = "%s"\nalgorithm = "%s"\n' "${alg,,}" "$alg"; done
  printf '[[client]]\nname = "bench"\nuids = [%s]\nkeysets = [%s]\nissuer = "https://bench.example"\naudiences = ["bench"]\n' \
    "$(id -u)" "$(printf '"%s",' "${algorithms[@],,}" | sed 's/,$//')"
} > "$work/hsmsignd.toml"
# hsmsignd refuses root unless told; this throw-away token is the one case to allow it.
root_flag=$([ "$(id -u)" = 0 ] && echo --allow-root || true)
"$build/daemon/hsmsignd" --config "$work/hsmsignd.toml" $root_flag 2>"$work/daemon.log" &
daemon=$!
for _ in $(seq 100); do [ -S "$work/run/sign.sock" ] && break; sleep 0.05; done

echo
echo "== daemon: POST /v1/jwt over the Unix socket, keep-alive, verify_signatures = \"${VERIFY:-all}\", audit log in ${AUDIT_DIR:-$work/run} =="
printf '%-8s %11s %12s %9s %9s %9s %9s\n' alg connections tokens/s "raw best" ratio "p50 us" "p99 us"
for alg in "${algorithms[@]}"; do
  raw=$(awk -v a="$alg" '$1 == a && $3 > best { best = $3 } END { print best + 0 }' "$work/raw.txt")
  for c in "${connections[@]}"; do
    read -r _ rate p50 p99 _ errors < <("$build/bench/hsmsignd-bench-load" --socket "$work/run/sign.sock" \
      --connections "$c" --seconds "$seconds" --keyset "${alg,,}")
    ratio=$(awk -v r="$rate" -v b="$raw" 'BEGIN { printf "%.0f%%", 100 * r / b }')
    printf '%-8s %11s %12s %9s %9s %9s %9s\n' "$alg" "$c" "$rate" "$raw" "$ratio" "$p50" "$p99"
  done
done
