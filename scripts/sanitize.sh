#!/usr/bin/env bash
# The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer (GCC, CUDA off),
# in build-asan/, without MPI (which also proves the build without it). Any sanitizer report
# fails its test.
# -O1 with line tables only (-g1): what the sanitizers' authors recommend, stack traces keep
# their file:line, and it compiles in half the time of -O2 -g (CI's time is mostly builds).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DTESSERA_SANITIZE=address,undefined -DTESSERA_CUDA=OFF -DTESSERA_MPI=OFF >/dev/null
cmake --build build-asan
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
ctest --test-dir build-asan -j2 --output-on-failure --timeout 1200
