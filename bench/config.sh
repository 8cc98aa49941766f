# Sourced by the bench scripts: the daemon's configuration on a throw-away token.
#
#   bench_config TOKEN_LABEL AUDIT_FILE ALGORITHM...
#
# prints the TOML: sockets under run/, no JWKS listener, one keyset per algorithm (named as the algorithm
# in lower case) and one client, this uid, that may use them all. VERIFY sets verify_signatures (all);
# AUDIT_MAX_SIZE, when set, the audit log's rotation size; SIGNERS and SESSIONS, when set, [token] signers
# and sessions (left out: the daemon's defaults, one signer process per core with one session each).
# bench_config_base TOKEN_LABEL AUDIT_FILE: the tables before the keysets, for scripts that write their own.
bench_config_base() {
  cat <<TOML
[token]
module = "/usr/lib/softhsm/libsofthsm2.so"
label = "$1"
pin_file = "token/pin"
verify_signatures = "${VERIFY:-all}"
TOML
  [ -z "${SIGNERS:-}" ] || echo "signers = $SIGNERS"
  [ -z "${SESSIONS:-}" ] || echo "sessions = $SESSIONS"
  cat <<TOML
[server]
socket = "run/sign.sock"
admin_socket = "run/admin.sock"
[jwks]
listen = ""
[state]
dir = "run"
[audit]
file = "$2"
TOML
  [ -z "${AUDIT_MAX_SIZE:-}" ] || echo "max_size = $AUDIT_MAX_SIZE"
}

bench_config() {
  local label=$1 audit=$2
  shift 2
  bench_config_base "$label" "$audit"
  local alg names=()
  for alg in "$@"; do
    printf '[[keyset]]\nname = "%s"\nalgorithm = "%s"\n' "${alg,,}" "$alg"
    names+=("\"${alg,,}\"")
  done
  printf '[[client]]\nname = "bench"\nuids = [%s]\nkeysets = [%s]\nissuer = "https://bench.example"\naudiences = ["bench"]\n' \
    "$(id -u)" "$(IFS=,; echo "${names[*]}")"
}
