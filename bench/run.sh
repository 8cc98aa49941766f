#!/usr/bin/env bash
# The benchmark, from one command, on a throw-away SoftHSM token (issue 7: "the daemon within 10 % of
# the raw token, measured side by side"):
#
#   bench/run.sh [SECONDS_PER_ROW] [CONNECTIONS...]          defaults: 3 s, connections 1 2 4 8 16 64
#
#   ALGS="ES256 RS256"   algorithms (default ES256 RS256 PS256 EdDSA)
#   PIPELINE=N           requests in flight per connection in the table (default 1)
#   VERIFY=sampled       the daemon's verify_signatures (default all)
#   AUDIT_DIR=DIR        the audit log's folder during the table (default the throw-away folder, on /tmp)
#   EXTRAS=...           the extra sections: all (default), 0, or some of: paired latency halfload mixed startup memory audit
#   TURNS=N              turns of each measure in "paired", "halfload", "mixed" and "audit" (default 3)
#   RATE_CONNECTIONS=N   connections of the paced runs (default 8)
#   AUDIT_DISK_DIR=DIR   where the on-disk audit log of the durability comparison goes (default /var/tmp)
#   RESULTS=DIR          where the files go (default /tmp/hsmsignd-bench/<timestamp>); BUILD=DIR the build
#
# Builds in Release mode, measures the raw token, then the daemon under the load generator on the same
# token in the same run; noise on a shared machine hits both alike. Writes RESULTS/table.md (everything
# printed below), raw.csv, daemon.csv, extras.csv, targets.csv and chart.png, and prints that path.
#
# What the figures mean:
#   raw token      C_SignInit + C_Sign straight on the module, one session per thread, 1, 2 and 4
#                  threads: signatures/s, p50/p99/p999 of one call (µs), CPU µs per signature.
#   daemon         POST /v1/jwt over the Unix socket, keep-alive, closed loop (each connection asks again
#                  as soon as it is answered). tokens/s; "% best raw": the rate over the best raw rate of
#                  1/2/4 threads for that algorithm in this run; "% raw 2t": over the raw 2-thread rate
#                  (the RS256 target is 8 connections >= 90 % of raw 2 threads); p50/p99/p999 latency (µs);
#                  "daemon µs/tok": the daemon's utime+stime (/proc/PID/stat) over the row / tokens,
#                  token calls included; "daemon-raw µs": that minus the raw 1-thread CPU per signature,
#                  i.e. what the daemon adds; "load µs/tok": the load generator's own CPU / tokens;
#                  "cores": CPU seconds / wall seconds of each, so daemon + load near the core count
#                  means the CPU was the limit (SoftHSM signs on the same cores as the daemon).
#   paired         the rate targets again, raw and daemon in turns seconds apart, because this machine's
#                  speed drifts over minutes: ES256 with verify_signatures "sampled" and "all" at the
#                  table's best ES256 connection count against raw at the best thread count, RS256 at 8
#                  connections against raw 2 threads; the ratio is the median of the turns.
#   latency        added latency at 1 connection: daemon p50 minus the raw 1-thread p50 of one call.
#   halfload       open loop (--rate) at half the best ES256 rate: requests on a fixed schedule, latency
#                  counted from when each was due (no coordinated omission); p99 / p50, median of the turns.
#   mixed          ES256 paced at 25 % of its peak alone, then again while a second generator saturates
#                  RS256 with 8 connections on the same daemon, in turns; p99 mixed / p99 alone, median.
#   startup        exec to the first 200 on /healthz, keys already in the token; median of 5 starts.
#   memory         the daemon's VmRSS, freshly started, then holding 1,000 idle keep-alive connections
#                  (each answered once).
#   audit          ES256, 8 connections, audit log on disk (AUDIT_DISK_DIR) vs on tmpfs (/dev/shm), in
#                  turns of disk then tmpfs; the ratio is the median of the turns.
#   targets        each measure against the issue's target: met yes/no.
# A full run (defaults, 3 s a row) takes about 4 minutes; `bench/run.sh 1 1 8` with ALGS="ES256 RS256" about 30 s.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/config.sh
source bench/config.sh
seconds=${1:-3}
shift || true
connections=(1 2 4 8 16 64)
[ $# -gt 0 ] && connections=("$@")
read -r -a algorithms <<<"${ALGS:-ES256 RS256 PS256 EdDSA}"
build=${BUILD:-build-bench}
pipeline=${PIPELINE:-1}
extras=${EXTRAS:-all}
rate_connections=${RATE_CONNECTIONS:-8}
turns=${TURNS:-3}
results=${RESULTS:-/tmp/hsmsignd-bench/$(date +%Y%m%d-%H%M%S)}
# The config's relative paths resolve against its own folder, not this one.
[ -z "${AUDIT_DIR:-}" ] || AUDIT_DIR=$(realpath -m "$AUDIT_DIR")

want() {  # want SECTION: is this extra section asked for?
  case " $extras " in
    *" 0 "* | *" none "*) return 1 ;;
    *" all "* | *" $1 "*) return 0 ;;
    *) return 1 ;;
  esac
}

install_gnuplot() {
  command -v gnuplot >/dev/null && return
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "installing: gnuplot-nox (for the chart)"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null
}

scripts/install-deps.sh
install_gnuplot
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target hsmsignd hsmsignd-bench-raw hsmsignd-bench-load hsmsignd-bench-startup >/dev/null
load="$build/bench/hsmsignd-bench-load"
startup="$build/bench/hsmsignd-bench-startup"
hsmsignd="$build/daemon/hsmsignd"

work=$(mktemp -d)
audit_disk=
audit_shm=
daemon=
background=()  # load generators started in the background, by pid
cleanup() {
  for pid in "${background[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  [ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$work" ${audit_disk:+"$audit_disk"} ${audit_shm:+"$audit_shm"}
}
trap cleanup EXIT
mkdir -p "$results"
: >"$results/table.md"
eval "$(softhsm-config/make-token.sh "$work/token" bench)"
sock="$work/run/sign.sock"
clock_ticks=$(getconf CLK_TCK)
# hsmsignd refuses root unless told; this throw-away token is the one case to allow it.
root_flag=()
[ "$(id -u)" != 0 ] || root_flag=(--allow-root)

# The daemon's keysets: the table's algorithms, plus ES256 and RS256 when the extras may need them.
config_algorithms=("${algorithms[@]}")
if want halfload || want mixed || want memory || want audit || want paired; then
  for alg in ES256 RS256; do
    [[ " ${config_algorithms[*]} " == *" $alg "* ]] || config_algorithms+=("$alg")
  done
fi

# ---- small helpers ------------------------------------------------------------------------------------

# shellcheck disable=SC2059  # say takes a printf format, always a literal
say() { printf -- "$@" | tee -a "$results/table.md"; }  # printed, and kept in table.md
calc() { awk "BEGIN { printf \"$1\", ($2) }"; }      # calc FORMAT EXPRESSION (in parentheses: a bare > would redirect)
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }  # utime + stime, past "pid (comm) "
fs_type() { df --output=fstype "$1" | tail -1; }
vm_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }        # vm_kib PID VmRSS
met() { awk "BEGIN { exit !($1) }" && echo yes || echo no; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

write_config() {  # write_config FILE AUDIT_FILE
  bench_config bench "$2" "${config_algorithms[@]}" >"$1"
}

start_daemon() {  # start_daemon CONFIG: returns once /healthz answers 200
  "$hsmsignd" --config "$1" "${root_flag[@]}" 2>>"$work/daemon.log" &
  daemon=$!
  "$startup" --socket "$sock" --wait --pid "$daemon" --timeout 120 || { tail -20 "$work/daemon.log" >&2; exit 1; }
}

stop_daemon() {
  kill -TERM "$daemon"
  wait "$daemon" || true
  daemon=
}

# measure LOAD-ARGS...: one load-generator run against the daemon. Sets rate p50 p99 p999 errors answers
# elapsed load_cpu (s) daemon_cpu (s).
measure() {
  local before line
  before=$(cpu_ticks "$daemon")
  line=$("$load" --socket "$sock" --extended "$@") || true
  [ -n "$line" ] || { echo "the load generator failed" >&2; exit 1; }
  daemon_cpu=$(calc '%.3f' "($(cpu_ticks "$daemon") - $before) / $clock_ticks")
  read -r _ rate p50 p99 p999 errors answers elapsed load_cpu <<<"$line"
}

# The daemon's own account of where requests' time went (GET /metrics, hsmsignd_request_stage_seconds):
# "STAGE COUNT SUM_SECONDS UNDER_1MS" for queue (waiting for a signer), sign (the token's signature and
# its check) and audit (waiting for the audit line to be durable).
stage_totals() {
  curl -sf --unix-socket "$sock" http://hsmsignd/metrics | awk '
    /^hsmsignd_request_stage_seconds/ { match($0, /stage="[a-z]+"/); s = substr($0, RSTART + 7, RLENGTH - 8) }
    /^hsmsignd_request_stage_seconds_count/ { c[s] = $2 }
    /^hsmsignd_request_stage_seconds_sum/ { t[s] = $2 }
    /^hsmsignd_request_stage_seconds_bucket.*le="0.001000"/ { u[s] = $2 }
    END { for (s in c) print s, c[s], t[s], u[s] }'
}
stage_mark() { stage_before=$(stage_totals); }
stage_header() {
  say '| %-40s | queue µs | > 1 ms | sign µs | > 1 ms | audit µs | > 1 ms |\n' requests
  say '|------------------------------------------|---------:|-------:|--------:|-------:|---------:|-------:|\n'
}
stage_row() {  # stage_row LABEL: mean µs of each stage since stage_mark, and the share of requests over 1 ms
  say '%s\n' "$(awk -v label="$1" '
    NR == FNR { c[$1] = $2; t[$1] = $3; u[$1] = $4; next }
    { n = $2 - c[$1]; mean[$1] = n > 0 ? 1e6 * ($3 - t[$1]) / n : 0; over[$1] = n > 0 ? 100 * (1 - ($4 - u[$1]) / n) : 0 }
    END { printf "| %-40s | %8.0f | %5.1f%% | %7.0f | %5.1f%% | %8.0f | %5.1f%% |", label,
          mean["queue"], over["queue"], mean["sign"], over["sign"], mean["audit"], over["audit"] }' \
    <(echo "$stage_before") <(stage_totals))"
}

# ---- raw token ----------------------------------------------------------------------------------------

say '# hsmsignd benchmark, %s\n\n' "$(date -Is)"
say '%s s per row; %s; load average at start: %s. On a shared machine these figures are noisy.\n\n' \
  "$seconds" "$(nproc) cores, $(uname -r)" "$(cut -d' ' -f1-3 /proc/loadavg)"
"$build/bench/hsmsignd-bench-raw" --token bench --pin-file "$work/token/pin" --seconds "$seconds" \
  --threads 1,2,4 --algorithms "$(IFS=,; echo "${algorithms[*]}")" >"$work/raw.txt"
say '## Raw token: C_SignInit + C_Sign, one session per thread\n\n%s\n\n' "$(grep '^# token' "$work/raw.txt" | sed 's/^# //')"
say '"CPU µs/sig": the CPU time the raw process used per signature, the host'"'"'s cost of the token.\n\n'
say '| %-6s | %7s | %12s | %14s | %8s | %8s | %9s | %12s |\n' alg threads signatures/s "µs/sig/thread" "p50 µs" "p99 µs" "p999 µs" "CPU µs/sig"
say '|--------|--------:|-------------:|--------------:|--------:|--------:|---------:|------------:|\n'
echo "alg,threads,rate,mean_us,p50_us,p99_us,p999_us,cpu_us_per_signature" >"$results/raw.csv"
declare -A raw_best raw_best_threads raw_2t raw_p50_1t raw_cpu_1t
while read -r alg threads r mean q50 q99 q999 cpu; do
  say '| %-6s | %7s | %12s | %13s | %7s | %7s | %8s | %11s |\n' "$alg" "$threads" "$r" "$mean" "$q50" "$q99" "$q999" "$cpu"
  echo "$alg,$threads,$r,$mean,$q50,$q99,$q999,$cpu" >>"$results/raw.csv"
  if [ "$r" -gt "${raw_best[$alg]:-0}" ]; then raw_best[$alg]=$r raw_best_threads[$alg]=$threads; fi
  [ "$threads" != 2 ] || raw_2t[$alg]=$r
  [ "$threads" != 1 ] || raw_p50_1t[$alg]=$q50 raw_cpu_1t[$alg]=$cpu
done < <(grep -v '^#' "$work/raw.txt" | tail -n +2)

# ---- daemon -------------------------------------------------------------------------------------------

mkdir -p "$work/run" ${AUDIT_DIR:+"$AUDIT_DIR"}
write_config "$work/hsmsignd.toml" "${AUDIT_DIR:-run}/audit.jsonl"
start_daemon "$work/hsmsignd.toml"

say '\n## Daemon: POST /v1/jwt over the Unix socket, keep-alive, closed loop, pipeline %s\n\n' "$pipeline"
say 'verify_signatures = "%s", audit log in %s. "%% best raw": the rate over the best raw rate of 1, 2 or 4 threads for that algorithm in this run; "%% raw 2t": over the raw 2-thread rate. CPU: µs per token of the daemon (utime+stime from /proc, token calls included), "daemon-raw µs": that minus the raw 1-thread CPU µs per signature (what the daemon adds), and of the load generator; "cores": CPU s / wall s of each (%s cores here).\n\n' \
  "${VERIFY:-all}" "${AUDIT_DIR:-$work/run (on $(fs_type "$work"))}" "$(nproc)"
for alg in "${algorithms[@]}"; do
  say '- %s: best raw %s/s (at %s of 1/2/4 threads), raw at 2 threads %s/s\n' "$alg" "${raw_best[$alg]:-0}" "${raw_best_threads[$alg]:-?}" "${raw_2t[$alg]:-n/a}"
done
say '\n| %-6s | %5s | %9s | %10s | %8s | %8s | %8s | %9s | %6s | %14s | %16s | %12s | %12s | %10s |\n' alg conns tokens/s "% best raw" "% raw 2t" \
  "p50 µs" "p99 µs" "p999 µs" errors "daemon µs/tok" "daemon-raw µs" "load µs/tok" "daemon cores" "load cores"
say '|--------|------:|----------:|-----------:|---------:|--------:|--------:|---------:|-------:|--------------:|---------------:|------------:|-------------:|-----------:|\n'
echo "alg,connections,pipeline,rate,raw_best,raw_best_threads,ratio_best_pct,raw_2t,ratio_2t_pct,p50_us,p99_us,p999_us,errors,daemon_cpu_us_per_token,daemon_minus_raw_cpu_us,load_cpu_us_per_token,daemon_cores,load_cores" >"$results/daemon.csv"
declare -A daemon_rate daemon_p50 best_rate best_connections
for alg in "${algorithms[@]}"; do
  for c in "${connections[@]}"; do
    measure --connections "$c" --seconds "$seconds" --keyset "${alg,,}" --pipeline "$pipeline"
    best=${raw_best[$alg]:-0} two=${raw_2t[$alg]:-0}
    pct_best=$(calc '%.0f' "$best > 0 ? 100 * $rate / $best : 0")
    pct_2t=$(calc '%.0f' "$two > 0 ? 100 * $rate / $two : 0")
    d_us=$(calc '%.0f' "$answers > 0 ? 1e6 * $daemon_cpu / $answers : 0")
    l_us=$(calc '%.1f' "$answers > 0 ? 1e6 * $load_cpu / $answers : 0")
    added_us=$(calc '%.0f' "$d_us - ${raw_cpu_1t[$alg]:-0}")
    d_cores=$(calc '%.2f' "$daemon_cpu / $elapsed") l_cores=$(calc '%.2f' "$load_cpu / $elapsed")
    say '| %-6s | %5s | %9s | %9s%% | %7s%% | %7s | %7s | %8s | %6s | %13s | %14s | %11s | %12s | %10s |\n' "$alg" "$c" "$rate" "$pct_best" "$pct_2t" \
      "$p50" "$p99" "$p999" "$errors" "$d_us" "$added_us" "$l_us" "$d_cores" "$l_cores"
    echo "$alg,$c,$pipeline,$rate,$best,${raw_best_threads[$alg]:-},$pct_best,$two,$pct_2t,$p50,$p99,$p999,$errors,$d_us,$added_us,$l_us,$d_cores,$l_cores" >>"$results/daemon.csv"
    daemon_rate[$alg:$c]=$rate daemon_p50[$alg:$c]=$p50
    if [ "$rate" -gt "${best_rate[$alg]:-0}" ]; then best_rate[$alg]=$rate best_connections[$alg]=$c; fi
  done
done
say '\ndaemon VmRSS after the table: %s KiB (VmHWM %s KiB)\n' "$(vm_kib "$daemon" VmRSS)" "$(vm_kib "$daemon" VmHWM)"

# ---- chart --------------------------------------------------------------------------------------------

# Three panels against connections (log2): rate (log y) with each algorithm's best raw rate dashed,
# the rate as % of that best raw rate with the 90 % target, and p99 (log y).
chart() {
  local gp="$results/chart.gp" i alg plots_rate=() plots_pct=() plots_p99=()
  {
    echo 'set terminal pngcairo size 1100,1300 font ",11" noenhanced'
    echo "set output '$results/chart.png'"
    for alg in "${algorithms[@]}"; do
      echo "\$$alg << EOD"
      awk -F, -v a="$alg" '$1 == a { print $2, $4, $7, $11 }' "$results/daemon.csv" | sort -n
      echo 'EOD'
    done
    i=0
    for alg in "${algorithms[@]}"; do
      i=$((i + 1))
      plots_rate+=("\$$alg using 1:2 with linespoints lw 2 pt 7 lc $i title '$alg daemon'"
        "${raw_best[$alg]:-0} with lines dt 2 lw 2 lc $i title '$alg raw best (${raw_best_threads[$alg]:-?} thr.)'")
      plots_pct+=("\$$alg using 1:3 with linespoints lw 2 pt 7 lc $i title '$alg'")
      plots_p99+=("\$$alg using 1:4 with linespoints lw 2 pt 7 lc $i title '$alg'")
    done
    local lo hi
    lo=$(printf '%s\n' "${connections[@]}" | sort -n | head -1) hi=$(printf '%s\n' "${connections[@]}" | sort -n | tail -1)
    cat <<GP
set lmargin at screen 0.09
set rmargin at screen 0.70
set multiplot layout 3,1 title "hsmsignd vs the raw token ($(date -I), ${seconds} s per row, pipeline $pipeline, verify ${VERIFY:-all})"
set logscale x 2
set xrange [$(calc '%g' "$lo / 1.3"):$(calc '%g' "$hi * 1.3")]
set xtics ($(IFS=,; echo "${connections[*]}"))
set xlabel "connections"
set grid
set key outside right top
set logscale y
set ylabel "tokens/s (log)"
set title "rate; dashed: best raw C_Sign rate of 1/2/4 threads"
plot $(IFS=,; echo "${plots_rate[*]}")
unset logscale y
set ylabel "% of best raw"
set title "rate as % of the best raw rate (target: at least 90 %)"
set yrange [0:110<*]
plot $(IFS=,; echo "${plots_pct[*]}"), 90 with lines dt 3 lc rgb "black" title "90 %"
set logscale y
set yrange [*:*]
set ylabel "µs (log)"
set title "p99 latency"
plot $(IFS=,; echo "${plots_p99[*]}")
unset multiplot
GP
  } >"$gp"
  # gnuplot warns about flat ranges (one connection count, say); its messages stay in chart.log unless it fails.
  gnuplot "$gp" 2>"$results/chart.log" || { cat "$results/chart.log" >&2; exit 1; }
}
chart

# ---- extras -------------------------------------------------------------------------------------------

echo "section,measure,value,unit" >"$results/extras.csv"
echo "measure,target,measured,met" >"$results/targets.csv"
targets=()
extra() { echo "$1,\"$2\",$3,$4" >>"$results/extras.csv"; }           # extra SECTION MEASURE VALUE UNIT
target() { targets+=("$1|$2|$3|$4"); echo "\"$1\",\"$2\",\"$3\",$4" >>"$results/targets.csv"; }  # MEASURE TARGET MEASURED MET

for alg in "${algorithms[@]}"; do
  [ "${raw_best[$alg]:-0}" -gt 0 ] || continue
  pct=$(calc '%.0f' "100 * ${best_rate[$alg]} / ${raw_best[$alg]}")
  target "$alg best daemon rate / best raw rate" ">= 90 %" "$pct % (${best_rate[$alg]}/s at ${best_connections[$alg]} conns)" "$(met "$pct >= 90")"
done
if [ -n "${daemon_rate[RS256:8]:-}" ] && [ "${raw_2t[RS256]:-0}" -gt 0 ]; then
  pct=$(calc '%.0f' "100 * ${daemon_rate[RS256:8]} / ${raw_2t[RS256]}")
  target "RS256 at 8 connections / raw 2 threads" ">= 90 %" "$pct % (${daemon_rate[RS256:8]}/s vs ${raw_2t[RS256]}/s)" "$(met "$pct >= 90")"
fi

# ---- paired: the rate targets, raw and daemon in turns ---------------------------------------------------

# raw_rate ALG THREADS: "signatures/s CPU-µs/signature" of one raw run on the token the daemon holds (it
# is idle meanwhile).
raw_rate() {
  "$build/bench/hsmsignd-bench-raw" --token bench --pin-file "$work/token/pin" --seconds "$seconds" \
    --threads "$2" --algorithms "$1" | awk -v a="$1" '$1 == a { print $3, $8 }'
}

# This machine's speed drifts by tens of percent over minutes, so a ratio of two figures taken minutes
# apart says little. Each rate target is measured again here in TURNS (default 3) turns of raw then
# daemon, seconds apart; the ratio is the median of the turns' ratios.
if want paired; then
  es_conns=${best_connections[ES256]:-16}
  es_threads=${raw_best_threads[ES256]:-2}
  say '\n## Paired: raw and daemon in %s turns (ratio = median of the turns'"'"' daemon/raw)\n\n' "$turns"
  say 'CPU µs per signature (raw) and per token (daemon, token calls included), medians of the turns: what\n'
  say 'the daemon spends beyond the token, measured beside it.\n\n'
  say '| %-44s | %-22s | %-22s | %6s | %8s | %8s |\n' measure "raw /s, each turn" "daemon /s, each turn" ratio "raw µs" "daemon µs"
  say '|----------------------------------------------|------------------------|------------------------|-------:|---------:|----------:|\n'
  # NAME|VERIFY|ALG|CONNECTIONS|RAW THREADS|TARGET %
  for case in "ES256 verify sampled|sampled|ES256|$es_conns|$es_threads|90" \
              "ES256 verify all|all|ES256|$es_conns|$es_threads|75" \
              "RS256|all|RS256|8|2|90"; do
    IFS='|' read -r name mode alg c threads goal <<<"$case"
    [[ " ${config_algorithms[*]} " == *" $alg "* ]] || continue
    stop_daemon
    VERIFY=$mode write_config "$work/paired.toml" "${AUDIT_DIR:-run}/audit.jsonl"
    start_daemon "$work/paired.toml"
    raws=() daemons=() ratios=() raw_cpus=() daemon_cpus=()
    for _ in $(seq "$turns"); do
      read -r r r_cpu < <(raw_rate "$alg" "$threads")
      measure --connections "$c" --seconds "$seconds" --keyset "${alg,,}"
      raws+=("$r") daemons+=("$rate") ratios+=("$(calc '%.1f' "$r > 0 ? 100 * $rate / $r : 0")")
      raw_cpus+=("$r_cpu") daemon_cpus+=("$(calc '%.0f' "$answers > 0 ? 1e6 * $daemon_cpu / $answers : 0")")
    done
    pct=$(median "${ratios[@]}")
    say '| %-44s | %-22s | %-22s | %5s%% | %8s | %9s |\n' "$name, $c conns vs raw $threads thr." "${raws[*]}" "${daemons[*]}" "$pct" \
      "$(median "${raw_cpus[@]}")" "$(median "${daemon_cpus[@]}")"
    extra paired "$name: daemon / raw, median of $turns" "$pct" "%"
    target "$name, $c conns / raw $threads thr. (paired)" ">= $goal %" "$pct % (median of $turns turns)" "$(met "$pct >= $goal")"
  done
  stop_daemon
  start_daemon "$work/hsmsignd.toml"
fi

# The best ES256 rate of the table, or of one run at 8 connections when the table has no ES256.
es256_peak() {
  if [ -n "${best_rate[ES256]:-}" ]; then echo "${best_rate[ES256]}"; return; fi
  measure --connections 8 --seconds "$seconds" --keyset es256
  echo "$rate"
}

if want latency; then
  say '\n## Added latency at 1 connection (daemon p50 minus raw 1-thread p50 of one C_SignInit + C_Sign)\n\n'
  say '| %-6s | %15s | %12s | %12s |\n' alg "daemon p50 µs" "raw p50 µs" "added µs"
  say '|--------|---------------:|------------:|------------:|\n'
  for alg in "${algorithms[@]}"; do
    d=${daemon_p50[$alg:1]:-}
    if [ -z "$d" ] || [ "$pipeline" != 1 ]; then
      measure --connections 1 --seconds "$seconds" --keyset "${alg,,}"
      d=$p50
    fi
    added=$(calc '%.0f' "$d - ${raw_p50_1t[$alg]}")
    say '| %-6s | %14s | %11s | %11s |\n' "$alg" "$d" "${raw_p50_1t[$alg]}" "$added"
    extra latency "$alg added p50 at 1 connection" "$added" us
    target "$alg added latency at 1 connection (p50)" "<= 50 µs" "$added µs" "$(met "$added <= 50")"
  done
  if [[ " ${algorithms[*]} " == *" ES256 "* ]]; then
    say '\nWhere an ES256 request spends its time at 1 connection (the daemon'"'"'s /metrics, means):\n\n'
    stage_header
    stage_mark
    measure --connections 1 --seconds "$seconds" --keyset es256
    stage_row "ES256, 1 connection: p50 $p50 µs"
  fi
fi

if want halfload; then
  peak=$(es256_peak)
  half=$(calc '%.0f' "$peak / 2")
  say '\n## ES256 at 50 %% of peak: open loop, %s/s (peak %s/s) on %s connections, latency from the scheduled send\n\n' "$half" "$peak" "$rate_connections"
  say '| turn | achieved/s | p50 µs | p99 µs | p999 µs | p99 / p50 | errors |\n|-----:|-----------:|-------:|-------:|--------:|----------:|-------:|\n'
  ratios=()
  stage_mark
  for turn in $(seq "$turns"); do
    measure --connections "$rate_connections" --seconds "$seconds" --keyset es256 --rate "$half"
    ratios+=("$(calc '%.1f' "$p50 > 0 ? $p99 / $p50 : 0")")
    say '| %4s | %10s | %6s | %6s | %7s | %9s | %6s |\n' "$turn" "$rate" "$p50" "$p99" "$p999" "${ratios[-1]}" "$errors"
    extra halfload "ES256 p99 / p50 at 50% of peak, turn $turn" "${ratios[-1]}" x
  done
  say '\nWhere these requests spent their time (the daemon'"'"'s /metrics, means):\n\n'
  stage_header
  stage_row "ES256 at 50 % of peak, $turns turns"
  ratio=$(median "${ratios[@]}")
  target "ES256 p99 at 50 % of peak" "<= 3 x p50" "$ratio x (median of $turns turns: ${ratios[*]})" "$(met "$ratio <= 3")"
fi

if want mixed; then
  peak=$(es256_peak)
  quarter=$(calc '%.0f' "$peak / 4")
  say '\n## Mixed load: ES256 paced at %s/s (25 %% of peak) alone, then beside RS256 saturated by 8 connections\n\n' "$quarter"
  say '| turn | %-28s | %10s | %8s | %8s | %7s |\n' run "achieved/s" "p50 µs" "p99 µs" errors
  say '|-----:|------------------------------|-----------:|--------:|--------:|--------:|\n'
  ratios=()
  for turn in $(seq "$turns"); do
    measure --connections "$rate_connections" --seconds "$seconds" --keyset es256 --rate "$quarter"
    say '| %4s | %-28s | %10s | %7s | %7s | %7s |\n' "$turn" "ES256 alone" "$rate" "$p50" "$p99" "$errors"
    alone_p99=$p99
    # RS256 starts first and ends last, so the ES256 run is inside it throughout.
    "$load" --socket "$sock" --connections 8 --seconds "$(calc '%g' "$seconds + 1")" --keyset rs256 >"$work/rs256.txt" &
    background+=($!)
    sleep 0.5
    measure --connections "$rate_connections" --seconds "$seconds" --keyset es256 --rate "$quarter"
    wait "${background[-1]}" || true
    unset 'background[-1]'
    read -r _ rs_rate _ rs_p99 _ rs_errors <"$work/rs256.txt"
    say '| %4s | %-28s | %10s | %7s | %7s | %7s |\n' "$turn" "ES256 beside RS256" "$rate" "$p50" "$p99" "$errors"
    say '| %4s | %-28s | %10s | %7s | %7s | %7s |\n' "$turn" "RS256, 8 conns, closed loop" "$rs_rate" "" "$rs_p99" "$rs_errors"
    ratios+=("$(calc '%.1f' "$alone_p99 > 0 ? $p99 / $alone_p99 : 0")")
    extra mixed "ES256 p99 beside RS256 / alone, turn $turn" "${ratios[-1]}" x
  done
  ratio=$(median "${ratios[@]}")
  target "ES256 p99 beside RS256 / alone" "<= 2 x" "$ratio x (median of $turns turns: ${ratios[*]})" "$(met "$ratio <= 2")"
fi

if want startup; then
  stop_daemon
  read -r median fastest slowest all < <("$startup" --socket "$sock" --runs 5 -- "$hsmsignd" --config "$work/hsmsignd.toml" "${root_flag[@]}" 2>>"$work/daemon.log")
  say '\n## Start to ready: exec to the first 200 on /healthz, keys already in the token (%s keysets)\n\n' "${#config_algorithms[@]}"
  say 'median %s ms, fastest %s ms, slowest %s ms (runs: %s)\n' "$median" "$fastest" "$slowest" "$all"
  extra startup "start to ready, median of 5" "$median" ms
  target "start to ready, median of 5" "<= 200 ms" "$median ms" "$(met "$median <= 200")"
  start_daemon "$work/hsmsignd.toml"
fi

if want memory; then
  stop_daemon
  start_daemon "$work/hsmsignd.toml"
  fresh=$(vm_kib "$daemon" VmRSS)
  "$load" --socket "$sock" --idle 1000 --seconds 3 --keyset es256 >"$work/idle.txt" &
  background+=($!)
  for _ in $(seq 600); do grep -q ready "$work/idle.txt" && break; sleep 0.05; done
  held=$(vm_kib "$daemon" VmRSS) hwm=$(vm_kib "$daemon" VmHWM)
  read -r _ _ _ idle_errors <"$work/idle.txt" || idle_errors='?'
  wait "${background[-1]}" || true
  unset 'background[-1]'
  mib=$(calc '%.1f' "$held / 1024")
  say '\n## Memory: VmRSS of a freshly started daemon, then holding 1,000 idle keep-alive connections\n\n'
  say 'fresh %s KiB; with 1,000 idle connections %s KiB = %s MiB (VmHWM %s KiB, %s KiB per connection, %s failed)\n' \
    "$fresh" "$held" "$mib" "$hwm" "$(calc '%.1f' "($held - $fresh) / 1000")" "$idle_errors"
  extra memory "VmRSS fresh" "$fresh" KiB
  extra memory "VmRSS with 1000 idle connections" "$held" KiB
  target "VmRSS with 1,000 idle connections" "<= 30 MiB" "$mib MiB" "$(met "$mib <= 30")"
fi

if want audit; then
  audit_disk=$(mktemp -d "${AUDIT_DISK_DIR:-/var/tmp}/hsmsignd-bench-audit.XXXXXX")
  audit_shm=$(mktemp -d /dev/shm/hsmsignd-bench-audit.XXXXXX)
  write_config "$work/audit-disk.toml" "$audit_disk/audit.jsonl"
  write_config "$work/audit-tmpfs.toml" "$audit_shm/audit.jsonl"
  say '\n## Durable audit: ES256, 8 connections, audit log on disk vs on tmpfs, in %s turns\n\n' "$turns"
  say 'disk: %s (%s); tmpfs: %s (%s)\n\n' "$audit_disk" "$(fs_type "$audit_disk")" "$audit_shm" "$(fs_type "$audit_shm")"
  say '| turn | disk tokens/s | disk p99 µs | tmpfs tokens/s | tmpfs p99 µs | disk / tmpfs |\n'
  say '|-----:|--------------:|------------:|---------------:|-------------:|-------------:|\n'
  ratios=()
  for turn in $(seq "$turns"); do
    declare -A audit_rate audit_p99
    for where in disk tmpfs; do
      stop_daemon
      start_daemon "$work/audit-$where.toml"
      measure --connections 8 --seconds "$seconds" --keyset es256
      audit_rate[$where]=$rate audit_p99[$where]=$p99
    done
    ratios+=("$(calc '%.0f' "100 * ${audit_rate[disk]} / ${audit_rate[tmpfs]}")")
    say '| %4s | %13s | %11s | %14s | %12s | %11s%% |\n' "$turn" "${audit_rate[disk]}" "${audit_p99[disk]}" \
      "${audit_rate[tmpfs]}" "${audit_p99[tmpfs]}" "${ratios[-1]}"
    extra audit "ES256 8 conns audit on disk / on tmpfs, turn $turn" "${ratios[-1]}" "%"
  done
  pct=$(median "${ratios[@]}")
  target "ES256 8 conns, audit on disk / on tmpfs" ">= 80 %" "$pct % (median of $turns turns: ${ratios[*]})" "$(met "$pct >= 80")"
fi

# ---- targets ------------------------------------------------------------------------------------------

say '\n## Targets\n\n| %-60s | %-10s | %-38s | %-3s |\n|--------------------------------------------------------------|------------|----------------------------------------|-----|\n' \
  measure target measured met
for t in "${targets[@]}"; do
  IFS='|' read -r m goal got ok <<<"$t"
  say '| %-60s | %-10s | %-38s | %-3s |\n' "$m" "$goal" "$got" "$ok"
done
say '\nload average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "results: $results (table.md, raw.csv, daemon.csv, extras.csv, targets.csv, chart.png)"
