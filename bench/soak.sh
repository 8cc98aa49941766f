#!/usr/bin/env bash
# The soak test: the daemon under full load for a long time on a throw-away SoftHSM token, watching for
# what a short benchmark cannot see (memory, descriptors or threads that grow) and for any failed request.
#
#   bench/soak.sh [SECONDS] [CONNECTIONS]        # default 600 s, 16 keep-alive connections
#
# The load is bench/load.cpp (hsmsignd-bench-load: POST /v1/jwt as fast as the daemon answers). Every few
# seconds the daemon is sampled: VmRSS and VmHWM (/proc/PID/status), open descriptors (/proc/PID/fd),
# threads, and tokens/s (the 200s of route jwt in GET /metrics). The verdict compares the first and the
# last quarter of the samples: flat means the last quarter's mean RSS is within 5% or 2 MiB (whichever is
# larger) of the first quarter's, the descriptor count is the same (its usual value and its lowest: SoftHSM
# and the audit log's rotation hold an extra file for a moment, which a sample sometimes catches), and the
# threads do not grow. Exits 1 when it is not flat, when any request failed, or when the daemon died; 2 on a
# usage error.
#
# Environment: BUILD_DIR (default build-bench, configured Release like bench/run.sh when it does not exist
# yet; CI can pass its own build: BUILD_DIR=build bench/soak.sh 20 8), ALG (ES256), VERIFY (all),
# INTERVAL (seconds between samples; default from SECONDS), AUDIT_MAX_SIZE (the audit log rotates at this
# size and rotated files are deleted as a log shipper would; default 64 MiB).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/config.sh
source bench/config.sh
seconds=${1:-600}
connections=${2:-16}
[[ "$seconds" =~ ^[0-9]+$ && "$connections" =~ ^[0-9]+$ && "$seconds" -ge 4 && "$connections" -ge 1 ]] || {
  echo "usage: bench/soak.sh [SECONDS >= 4] [CONNECTIONS >= 1]" >&2
  exit 2
}
build=${BUILD_DIR:-build-bench}
alg=${ALG:-ES256}
interval=${INTERVAL:-$(( seconds >= 200 ? 5 : (seconds >= 60 ? 2 : 1) ))}

scripts/install-deps.sh
[ -f "$build/CMakeCache.txt" ] || cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target hsmsignd hsmsignd-bench-load >/dev/null

work=$(mktemp -d)
daemon='' load=''
cleanup() {
  [ -n "$load" ] && kill "$load" 2>/dev/null && wait "$load" 2>/dev/null
  [ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
eval "$(softhsm-config/make-token.sh "$work/token" soak)"

mkdir -p "$work/run"
AUDIT_MAX_SIZE=${AUDIT_MAX_SIZE:-67108864} bench_config soak run/audit.jsonl "$alg" >"$work/hsmsignd.toml"
# hsmsignd refuses root unless told; this throw-away token is the one case to allow it.
root_flag=$([ "$(id -u)" = 0 ] && echo --allow-root || true)
"$build/daemon/hsmsignd" --config "$work/hsmsignd.toml" $root_flag 2>"$work/daemon.log" &
daemon=$!
sock="$work/run/sign.sock"
metrics() { curl -sf --max-time 5 --unix-socket "$sock" http://localhost/metrics; }
for _ in $(seq 200); do metrics >/dev/null 2>&1 && break; sleep 0.05; done
metrics >/dev/null || { echo "soak: the daemon did not start:" >&2; cat "$work/daemon.log" >&2; exit 1; }

# jwt answers by status from /metrics: "ok failed"
jwt_counts() {
  metrics | awk '/^hsmsignd_requests_total\{route="jwt",/ { if ($0 ~ /status="200"/) ok += $NF; else failed += $NF }
                 END { printf "%d %d\n", ok, failed }'
}

# The generator runs a little longer than the sampling, so that every sample is taken under full load.
"$build/bench/hsmsignd-bench-load" --socket "$sock" --connections "$connections" --seconds "$((seconds + 2))" \
  --keyset "${alg,,}" \
  >"$work/load.txt" 2>"$work/load.err" &
load=$!

echo "== soak: $alg, $connections connections, ${seconds}s, a sample every ${interval}s; daemon pid $daemon =="
printf '%8s %10s %10s %6s %8s %10s\n' time rss_kib hwm_kib fds threads tokens/s | tee "$work/table.txt"
start=$EPOCHREALTIME
read -r prev_ok _ < <(jwt_counts)
prev_t=$start
k=0
while [ $(( (k + 1) * interval )) -le "$seconds" ]; do
  k=$((k + 1))
  wake=$(awk -v s="$start" -v k="$k" -v i="$interval" -v n="$EPOCHREALTIME" 'BEGIN { d = s + k * i - n; print (d > 0 ? d : 0) }')
  sleep "$wake"
  kill -0 "$load" 2>/dev/null || break   # the generator gave up (it says why below)
  kill -0 "$daemon" 2>/dev/null || break
  fds=$(ls "/proc/$daemon/fd" | wc -l)    # before /metrics adds a connection of its own
  read -r rss hwm threads < <(awk '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 } /^Threads/ { t = $2 } END { print r, h, t }' "/proc/$daemon/status")
  read -r ok _ < <(jwt_counts)
  now=$EPOCHREALTIME
  rate=$(awk -v a="$ok" -v b="$prev_ok" -v t="$now" -v u="$prev_t" 'BEGIN { printf "%.0f", (a - b) / (t - u) }')
  prev_ok=$ok prev_t=$now
  elapsed=$(awk -v n="$now" -v s="$start" 'BEGIN { printf "%.0f", n - s }')
  printf '%8s %10s %10s %6s %8s %10s\n' "$elapsed" "$rss" "$hwm" "$fds" "$threads" "$rate" | tee -a "$work/table.txt"
  find "$work/run" -maxdepth 1 -name 'audit.jsonl.[0-9]*' -delete  # rotated: shipped elsewhere in real life
done
load_status=0
wait "$load" || load_status=$?
load=

status=0
if ! kill -0 "$daemon" 2>/dev/null; then
  echo "soak: FAIL: the daemon died" >&2
  tail -20 "$work/daemon.log" >&2
  daemon=
  exit 1
fi
read -r ok failed < <(jwt_counts)
echo
if [ -s "$work/load.txt" ]; then
  read -r _ rate p50 p99 p999 errors <"$work/load.txt"
  echo "load: $ok tokens, $rate tokens/s, latency p50 ${p50} us, p99 ${p99} us, p99.9 ${p999} us; non-200 answers: $errors (daemon metrics: $failed)"
else
  errors=unknown
  echo "load: the generator printed nothing (exit $load_status): $(cat "$work/load.err")"
fi
if [ "$load_status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$errors" != 0 ]; then
  echo "soak: FAIL: requests failed (generator exit $load_status, $failed non-200 jwt answers in /metrics) $(cat "$work/load.err")"
  status=1
fi

# The verdict: first quarter against last quarter of the samples
awk -v slack_pct=5 -v slack_kib=2048 '
  NR > 1 { n++; rss[n] = $2; fds[n] = $4; thr[n] = $5; rate[n] = $6 }
  END {
    if (n < 4) { print "soak: FAIL: only " n " samples; run longer"; exit 1 }
    q = int(n / 4)
    for (i = 1; i <= q; i++) {
      f_rss += rss[i]; f_rate += rate[i]; j = n - q + i; l_rss += rss[j]; l_rate += rate[j]
      if (i == 1 || fds[i] > f_fds_max) f_fds_max = fds[i]; if (i == 1 || fds[i] < f_fds_min) f_fds_min = fds[i]
      if (i == 1 || fds[j] > l_fds_max) l_fds_max = fds[j]; if (i == 1 || fds[j] < l_fds_min) l_fds_min = fds[j]
      if (i == 1 || thr[i] > f_thr) f_thr = thr[i]; if (i == 1 || thr[j] > l_thr) l_thr = thr[j]
      f_seen[fds[i]]++; l_seen[fds[j]]++
    }
    for (v in f_seen) if (f_seen[v] > f_seen[f_mode] || f_mode == "") f_mode = v
    for (v in l_seen) if (l_seen[v] > l_seen[l_mode] || l_mode == "") l_mode = v
    f_rss /= q; l_rss /= q; f_rate /= q; l_rate /= q
    allowed = f_rss * slack_pct / 100; if (allowed < slack_kib) allowed = slack_kib
    rss_flat = (l_rss - f_rss) <= allowed
    fds_flat = (f_fds_min == l_fds_min && f_mode == l_mode)
    thr_flat = (l_thr <= f_thr)
    printf "first quarter (%d samples): rss %.0f KiB, fds %d (%d..%d), threads %d, %.0f tokens/s\n", q, f_rss, f_mode, f_fds_min, f_fds_max, f_thr, f_rate
    printf "last quarter  (%d samples): rss %.0f KiB (%+.0f KiB, allowed +%.0f), fds %d (%d..%d), threads %d, %.0f tokens/s\n", q, l_rss, l_rss - f_rss, allowed, l_mode, l_fds_min, l_fds_max, l_thr, l_rate
    printf "peak VmHWM: %s KiB\n", "'"$(awk 'NR > 1 { h = $3 } END { print h }' "$work/table.txt")"'"
    verdict = rss_flat && fds_flat && thr_flat
    printf "soak: %s: rss %s, fds %s, threads %s\n", verdict ? "FLAT" : "FAIL", rss_flat ? "flat" : "GREW", fds_flat ? "equal" : "CHANGED", thr_flat ? "equal" : "GREW"
    exit verdict ? 0 : 1
  }' "$work/table.txt" || status=1
exit $status
