#!/usr/bin/env bash
# Installs every Debian 12 package hsmsignd's build, tests and development token need. Idempotent: asks
# apt only when something is missing. Run as root (or with sudo available).
set -euo pipefail

packages=(
  build-essential cmake pkg-config git          # build
  libssl-dev openssl                            # OpenSSL 3: hashing, public keys, verification
  libp11-kit-dev                                # the Cryptoki header (pkcs11.h)
  libboost-dev nlohmann-json3-dev libtomlplusplus-dev libsystemd-dev
  libgoogle-perftools-dev                       # tcmalloc_minimal, the daemon's allocator
  libgtest-dev                                  # tests
  softhsm2 opensc                               # the token, and pkcs11-tool as an independent client
  python3 python3-jwcrypto curl                 # independent JOSE verification in end-to-end tests
  python3-jsonschema python3-yaml               # answers checked against docs/openapi.yaml (Draft 2020-12)
  systemd util-linux                            # systemd-analyze, -socket-activate, -sysusers; setpriv
  clang libclang-rt-14-dev                      # libFuzzer and the sanitizers (tests/fuzz)
  libsqlite3-dev zlib1g-dev                     # the embedded revocation store; Status List compression
  libhiredis-dev redis-server                   # the shared revocation store; tests start their own redis-server
  nginx-light                                   # a TLS server that signs its handshakes through the provider; tests start their own
  libnss3-tools                                 # NSS softoken as a second PKCS#11 implementation (certutil makes its token)
  swtpm swtpm-tools tpm2-tools tpm2-abrmd dbus  # a software TPM 2.0 behind tpm2-abrmd on a private D-Bus; tests start their own
  libtss2-tcti-tabrmd0                          # the TPM clients' way to tpm2-abrmd (tpm2-abrmd does not pull it in)
  libtpm2-pkcs11-1 libtpm2-pkcs11-tools         # the TPM's PKCS#11 module and tpm2_ptool, which makes its token
  p11-kit p11-kit-modules                       # `p11-kit server` and p11-kit-client.so: a token over a socket, as a network HSM
  libp11-dev iproute2                           # libp11 as an independent client of the keys; network namespaces for several hosts
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js runs the issuer example and the OpenAPI linter; a machine may already have it from elsewhere.
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)

if [ ${#missing[@]} -gt 0 ]; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "installing: ${missing[*]}"
  # Packages such as redis-server start a system service when installed; the tests start their own instances,
  # so invoke-rc.d is told (policy-rc.d answering 101) to start nothing while apt runs. A policy-rc.d that
  # was already there is put back afterwards.
  policy=/usr/sbin/policy-rc.d saved=
  if [ -e "$policy" ]; then saved=$(mktemp); "${sudo[@]}" cp -p "$policy" "$saved"; fi
  restore_policy() { if [ -n "$saved" ]; then "${sudo[@]}" cp -p "$saved" "$policy"; rm -f "$saved"; else "${sudo[@]}" rm -f "$policy"; fi; }
  trap restore_policy EXIT
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod 755 "$policy"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  restore_policy
  trap - EXIT
fi

# The npm tools the tests use, exactly as package-lock.json pins them, into node_modules/; again only when
# package.json or the lock changed.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 18 || (a === 18 && b >= 13) ? 0 : 1)' ||
  { echo "install-deps: Node.js $(node --version) is too old: the tests need 18.13 or later (Debian 12's nodejs)" >&2; exit 1; }
if [ -f package-lock.json ]; then
  stamp=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
  if [ "$(cat node_modules/.installed-from 2>/dev/null)" != "$stamp" ]; then
    npm ci --no-audit --no-fund --loglevel=error
    echo "$stamp" > node_modules/.installed-from
  fi
fi
