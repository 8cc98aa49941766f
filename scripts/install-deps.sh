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
  systemd util-linux                            # systemd-analyze, -socket-activate, -sysusers; setpriv
  clang libclang-rt-14-dev                      # libFuzzer and the sanitizers (tests/fuzz)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "installing: ${missing[*]}"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
