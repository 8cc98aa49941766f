#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) in BUILD_DIR and runs each for
# SECONDS_PER_TARGET seconds, one after the other, on a scratch copy of its seed corpus (the
# repository's tests/fuzz/corpus is never written). Exits non-zero when a target finds a crash, a
# broken invariant, a leak, a timeout or an out-of-memory; the input is kept under
# BUILD_DIR/fuzz-artifacts/<target>/ and the target's output under BUILD_DIR/fuzz-logs/.
#
#   tests/fuzz/run.sh build-fuzz 20                        # CI: all five targets, 20 s each
#   tests/fuzz/run.sh build-fuzz 600 fuzz_config           # one target, longer
#   FUZZ_ARGS="-only_ascii=1" tests/fuzz/run.sh build-fuzz 60   # extra libFuzzer flags
#   FUZZ_STRICT=1 tests/fuzz/run.sh build-fuzz 0 ...      # 0 s: only replay tests/fuzz/findings/ and
#                                                          # the corpus, tolerating no known finding
#
# Needs clang and libclang-rt-14-dev (libFuzzer and the sanitizer runtimes) besides the project's
# own build dependencies.
set -euo pipefail

usage="usage: tests/fuzz/run.sh BUILD_DIR SECONDS_PER_TARGET [TARGET...]"
[[ $# -ge 2 ]] || { echo "$usage" >&2; exit 2; }
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
mkdir -p "$1"
build="$(cd "$1" && pwd)"
seconds="$2"
shift 2
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "$usage" >&2; exit 2; }
all_targets=(fuzz_http_request fuzz_json_request fuzz_config fuzz_audit_verify fuzz_frames)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")

# Largest input per target: a request with a full 64 KiB body and its header; a config file; a log.
declare -A max_len=([fuzz_http_request]=70000 [fuzz_json_request]=66000 [fuzz_config]=16384 [fuzz_audit_verify]=65536 [fuzz_frames]=65536)

for t in "${targets[@]}"; do
  [[ -n "${max_len[$t]:-}" ]] || { echo "run.sh: unknown target $t (known: ${all_targets[*]})" >&2; exit 2; }
done
command -v clang++ >/dev/null || { echo "run.sh: clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }

start=$(date +%s)
mkdir -p "$build/fuzz-logs"
echo "== configuring $build (clang, HSMSIGND_FUZZ=ON)"
strict=OFF
[[ "${FUZZ_STRICT:-0}" == 1 ]] && strict=ON
if ! CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DHSMSIGND_FUZZ=ON -DHSMSIGND_FUZZ_STRICT="$strict" \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      >"$build/fuzz-logs/configure.log" 2>&1; then
  cat "$build/fuzz-logs/configure.log" >&2
  exit 1
fi
echo "== building ${targets[*]}"
cmake --build "$build" --target "${targets[@]}" -j"$(nproc)"
built=$(date +%s)
echo "== configured and built in $((built - start)) s; fuzzing each target for $seconds s"

failed=()
summary=()
for t in "${targets[@]}"; do
  corpus="$build/fuzz-corpus/$t"
  artifacts="$build/fuzz-artifacts/$t"
  log="$build/fuzz-logs/$t.log"
  mkdir -p "$corpus" "$artifacts"
  # Seeds are added to what earlier runs in this folder found; nothing is written back to the repo.
  cp -n "$here/corpus/$t/"* "$corpus/" 2>/dev/null || true
  seeds=$(find "$corpus" -type f | wc -l)
  artifacts_before=$(find "$artifacts" -type f | wc -l)
  dict=()
  [[ -f "$here/dict/$t.dict" ]] && dict=(-dict="$here/dict/$t.dict")
  bin="$build/tests/fuzz/$t"
  set +e
  # First the reproducers of reported findings (tests/fuzz/findings/*/<target>.input*): tolerated while
  # known_findings.h says so, refused by a FUZZ_STRICT build until the daemon is fixed.
  replay=("$here"/findings/*/"$t".input*)
  rc=0
  if [[ -e "${replay[0]}" ]]; then
    "$bin" -artifact_prefix="$artifacts/" "${replay[@]}" >"$log.replay" 2>&1
    rc=$?
    [[ $rc -eq 0 ]] || { echo "$t: a finding's reproducer fails (see $log.replay)" >&2; cp "$log.replay" "$log"; }
  fi
  if [[ $rc -eq 0 ]]; then
    # One process per target (libFuzzer is single-threaded): at most one core at a time. 0 s: run the
    # corpus once and stop.
    time_flag=(-max_total_time="$seconds")
    [[ "$seconds" -gt 0 ]] || time_flag=(-runs=0)
    # shellcheck disable=SC2086  # FUZZ_ARGS is a list of flags
    "$bin" "$corpus" "${dict[@]}" "${time_flag[@]}" -max_len="${max_len[$t]}" \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} \
      >"$log" 2>&1
    rc=$?
  fi
  set -e
  found=$(( $(find "$artifacts" -type f | wc -l) - artifacts_before ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  size=$(find "$corpus" -type f | wc -l)
  line=$(printf '%-18s execs %-9s (%s/s)  cov %-5s ft %-6s corpus %s -> %s' \
    "$t" "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "$seeds" "$size")
  if [[ $rc -ne 0 || $found -ne 0 ]]; then
    line+="  FAILED (exit $rc; see $log, inputs in $artifacts/)"
    failed+=("$t")
    # The finding's first lines: what broke, and where.
    grep -m1 -A12 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|FUZZ INVARIANT BROKEN|deadly signal' "$log" >&2 || tail -30 "$log" >&2
  fi
  summary+=("$line")
  echo "$line"
done

echo "== summary ($(( $(date +%s) - start )) s in all)"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "FUZZING FOUND PROBLEMS in: ${failed[*]}" >&2
  exit 1
fi
