#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, runs every test.
#   scripts/test.sh [ctest args...]     e.g. scripts/test.sh -L e2e
# Build dir: $STREAMTALLY_BUILD_DIR or ./build. Exits non-zero on any failure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${STREAMTALLY_BUILD_DIR:-$root/build}

"$root/scripts/setup-deps.sh"

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)"

cd "$build"
ctest --output-on-failure --timeout 600 "$@"
