#!/usr/bin/env bash
# The one command that installs, builds and runs every test: scripts/test.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${1:-build}

scripts/install-deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure -j"$(nproc)"
# The soak test in short form: full load on the daemon this build made; memory, descriptors flat.
BUILD_DIR="$build" bench/soak.sh 20 8
# The fuzz targets in short form (clang, ASan + UBSan): every finding's reproducer, then 20 s each.
tests/fuzz/run.sh "$build-fuzz" 20
