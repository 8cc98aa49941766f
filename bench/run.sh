#!/usr/bin/env bash
# One command for the whole benchmark on a throw-away SoftHSM token:
#   bench/run.sh [BUILD_DIR] [SECONDS_PER_ROW]
# Builds (Release), makes a fresh token under a temporary folder and prints the raw token baseline.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${1:-build-bench}
seconds=${2:-2}

scripts/install-deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target hsmsignd-bench-raw >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
eval "$(softhsm-config/make-token.sh "$work/token" bench)"
"$build/bench/hsmsignd-bench-raw" --module /usr/lib/softhsm/libsofthsm2.so --token bench \
  --pin-file "$work/token/pin" --seconds "$seconds"
