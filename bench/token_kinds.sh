#!/usr/bin/env bash
# The raw token and hsmsignd on each PKCS#11 implementation, in one run (issue 17: "the ratios show what the
# daemon costs on a slow token: it should be close to nothing"):
#
#   bench/token_kinds.sh [SECONDS_PER_ROW]        default 3 s; RESULTS=DIR, BUILD=DIR as for bench/run.sh;
#                                                 VERIFY as for bench/run.sh (verify_signatures, default all)
#   KINDS="softhsm nss tpm p11kit"                the rows (this is the default); KIND:N sets [token]
#                                                 signers = N for that row, a plain KIND leaves the default
#
# For each row, a throw-away token made by tests/e2e/tokens.py's factory (through bench/token_kinds.py):
# SoftHSM2; NSS softoken (init_args, require_local = false); a TPM 2.0 (swtpm behind tpm2-abrmd on a
# private dbus-daemon, tpm2-pkcs11); p11-kit remote (`p11-kit server` in front of SoftHSM, the daemon and
# the raw baseline on p11-kit-client.so). Then, on that token, one after the other:
#   raw            C_SignInit + C_Sign ES256 straight on the module (hsmsignd-bench-raw, with the token's
#                  init_args as pReserved), one session per thread, 1 and 2 threads: signatures/s, p50 of
#                  one call (µs)
#   hsmsignd       the daemon with the factory's [token] table, one ES256 keyset, signers and sessions the
#                  daemon's defaults (one signer process per core) unless KIND:N, POST /v1/jwt under
#                  hsmsignd-bench-load (keep-alive, closed loop) at 1 and 8 connections: tokens/s, p50 (µs)
#   ratio          best hsmsignd rate / best raw rate; "p50 added": hsmsignd p50 at 1 connection minus raw
#                  p50 at 1 thread
# A daemon that does not start, or
# answers any request with an error, is reported in its row (with the daemon's first logged error
# below the table) instead of a rate, and the script then exits 1, keeping the logs in RESULTS/logs.
# Every helper process (the daemon; swtpm, dbus-daemon, tpm2-abrmd; p11-kit server) is stopped by its pid
# once its row is done, and by the trap on any failure or interruption. Writes RESULTS/token_kinds.md
# and prints it. About 6 s + 4 x SECONDS_PER_ROW per row after the build (about 90 s at 3 s).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/config.sh
source bench/config.sh
seconds=${1:-3}
build=${BUILD:-build-bench}
results=${RESULTS:-/tmp/hsmsignd-bench/token-kinds-$(date +%Y%m%d-%H%M%S)}
read -r -a kinds <<<"${KINDS:-softhsm nss tpm p11kit}"
label="hsmsignd-bench"

scripts/install-deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target hsmsignd hsmsignd-bench-raw hsmsignd-bench-load hsmsignd-bench-startup >/dev/null
raw="$build/bench/hsmsignd-bench-raw"
load="$build/bench/hsmsignd-bench-load"
startup="$build/bench/hsmsignd-bench-startup"
hsmsignd="$build/daemon/hsmsignd"

work=$(mktemp -d)
daemon=
# stop_pid PID: SIGTERM, SIGKILL after 5 s. The token's helpers are not this shell's children (token_kinds.py
# started them and ended), so there is no wait: gone, or a zombie, is stopped.
stop_pid() {
  local state
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 50); do
    state=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 0
    [ "$state" != Z ] || return 0
    sleep 0.1
  done
  echo "pid $1 did not stop on SIGTERM: SIGKILL" >&2
  kill -KILL "$1" 2>/dev/null || true
}
stop_daemon() {  # the daemon is this shell's child: stopped as above, then reaped
  [ -n "$daemon" ] || return 0
  stop_pid "$daemon"
  wait "$daemon" 2>/dev/null || true
  daemon=
}
stop_token() {  # stop_token DIR: the helpers listed in DIR/pids, last started first
  local pids=()
  [ -f "$1/pids" ] || return 0
  mapfile -t pids <"$1/pids"
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_pid "${pids[i]}"; done
  rm -f "$1/pids"
}
cleanup() {
  local status=$?
  stop_daemon
  for pids in "$work"/*/pids; do [ -e "$pids" ] && stop_token "$(dirname "$pids")"; done
  if [ "$status" != 0 ]; then  # the logs, for the why
    for log in "$work"/*/*.log "$work"/*/token/*.log; do
      [ -e "$log" ] && mkdir -p "$results/logs" && cp "$log" "$results/logs/$(realpath --relative-to="$work" "$log" | tr / _)"
    done
    echo "failed; logs in $results/logs" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
mkdir -p "$results"
: >"$results/token_kinds.md"
root_flag=()
[ "$(id -u)" != 0 ] || root_flag=(--allow-root)

# shellcheck disable=SC2059  # say takes a printf format, always a literal
say() { printf -- "$@" | tee -a "$results/token_kinds.md"; }
calc() { awk "BEGIN { printf \"$1\", ($2) }"; }
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'; }

rows=()
notes=()
failed=0
for entry in "${kinds[@]}"; do
  kind=${entry%%:*} signers=
  [ "$entry" = "$kind" ] || signers=${entry#*:}
  dir="$work/$kind${signers:+-signers$signers}"
  name="$kind${signers:+, signers = $signers}"
  mkdir -p "$dir/run"
  echo "== $name: making the token" >&2
  eval "$(python3 bench/token_kinds.py "$kind" "$dir" "$label")"

  # ---- raw: the module on its own, in the kind's environment ---------------------------------------------
  echo "== $name: raw C_Sign ES256, 1 and 2 threads" >&2
  raw_args=(--module "$token_module" --token "$label" --pin-file "$token_pin_file" --seconds "$seconds"
    --threads "1,2" --algorithms ES256)
  [ -z "$token_init_args" ] || raw_args+=(--init-args "$token_init_args")
  env "${token_env[@]}" "$raw" "${raw_args[@]}" >"$dir/raw.txt"
  model=$(sed -n 's/^# token: //p' "$dir/raw.txt")
  read -r raw1 raw1_p50 < <(awk '$1 == "ES256" && $2 == 1 { print $3, $5 }' "$dir/raw.txt")
  read -r raw2 raw2_p50 < <(awk '$1 == "ES256" && $2 == 2 { print $3, $5 }' "$dir/raw.txt")
  raw_cells="$raw1 ($raw1_p50) | $raw2 ($raw2_p50)"
  best_raw=$(max "$raw1" "$raw2")

  # ---- hsmsignd: the factory's [token] table, one ES256 keyset --------------------------------------------
  { cat "$dir/token.toml"
    echo "verify_signatures = \"${VERIFY:-all}\""
    [ -z "$signers" ] || echo "signers = $signers"
    bench_config "$label" run/audit.jsonl ES256 | awk '/^\[/ { table = $0 } table != "[token]"'
  } >"$dir/hsmsignd.toml"
  echo "== $name: hsmsignd, 1 and 8 connections" >&2
  env "${token_env[@]}" "$hsmsignd" --config "$dir/hsmsignd.toml" "${root_flag[@]}" 2>>"$dir/daemon.log" &
  daemon=$!
  if ! "$startup" --socket "$dir/run/sign.sock" --wait --pid "$daemon" --timeout 120 >/dev/null; then
    stop_daemon
    stop_token "$dir"
    rows+=("| $name | $model | $raw_cells | did not start | | | |")
    notes+=("$name: hsmsignd did not start: $(tail -1 "$dir/daemon.log")")
    failed=1
    continue
  fi
  cells=() rates=() p50_1=
  for c in 1 8; do
    read -r _ rate p50 _ _ errors answers _ < <("$load" --socket "$dir/run/sign.sock" --keyset es256 \
      --connections "$c" --seconds "$seconds" --extended)
    if [ "$errors" != 0 ]; then
      cells+=("$errors of $answers failed")
      failed=1
    else
      cells+=("$rate ($p50)")
      rates+=("$rate")
      [ "$c" != 1 ] || p50_1=$p50
    fi
  done
  stop_daemon
  stop_token "$dir"
  if grep -q 'hsmsignd\[error\]' "$dir/daemon.log"; then
    notes+=("$name: the daemon logged $(grep -c 'hsmsignd\[error\]' "$dir/daemon.log") errors, the first: \`$(grep -m1 'hsmsignd\[error\]' "$dir/daemon.log")\`")
  fi
  ratio=— added=—
  if [ ${#rates[@]} = 2 ]; then ratio="**$(calc '%.2f' "$(max "${rates[0]}" "${rates[1]}") / $best_raw")**"; fi
  [ -z "$p50_1" ] || added=$(calc '%+.0f' "$p50_1 - $raw1_p50")
  rows+=("| $name | $model | $raw_cells | ${cells[0]} | ${cells[1]} | $ratio | $added |")
done

say '# hsmsignd on each kind of token, %s\n\n' "$(date -Is)"
say '%s s per row, ES256; %s cores, %s; load average at the end: %s.\n' \
  "$seconds" "$(nproc)" "$(uname -r)" "$(cut -d' ' -f1-3 /proc/loadavg)"
say 'Raw: C_SignInit + C_Sign on the module, one session per thread. hsmsignd: POST /v1/jwt over the Unix socket,\n'
say 'keep-alive, closed loop; [token] signers and sessions the daemon'"'"'s defaults (one signer process per core, one\n'
say 'session each) unless the row says otherwise; verify_signatures "%s"; audit log on %s. Rates per second,\n' \
  "${VERIFY:-all}" "$(df --output=fstype "$work" | tail -1)"
say 'p50 in µs in brackets; hsmsignd / raw: best hsmsignd rate / best raw rate; p50 added: hsmsignd at 1\n'
say 'connection minus raw at 1 thread.\n\n'
say '| token | model (manufacturer) | raw 1 thread sig/s (p50) | raw 2 threads sig/s (p50) | hsmsignd 1 conn tok/s (p50) | hsmsignd 8 conns tok/s (p50) | hsmsignd / raw | p50 added µs |\n'
say '|---|---|---:|---:|---:|---:|---:|---:|\n'
for row in "${rows[@]}"; do say '%s\n' "$row"; done
[ ${#notes[@]} = 0 ] || say '\n'
for note in "${notes[@]}"; do say '- %s\n' "$note"; done
echo
echo "results: $results/token_kinds.md"
exit "$failed"
