#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, AddressSanitizer + UndefinedBehaviorSanitizer) in
# build-fuzz/ and runs each for SECONDS (default 30) from its committed seed corpus
# (tests/fuzz/corpus/<target>); new inputs go to build-fuzz/corpus/<target>, findings to
# build-fuzz/findings/. Exits non-zero on any crash, leak, hang or failed property.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (targets: idx cifar config safetensors image cli)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(idx cifar config safetensors image cli)

# -O1 with line tables only, as for scripts/sanitize.sh: half the build time, file:line kept.
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" \
  -DTESSERA_FUZZ=ON -DTESSERA_SANITIZE=address,undefined -DTESSERA_CUDA=OFF -DTESSERA_MPI=OFF -DTESSERA_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz --target $(printf 'fuzz_%s ' "${targets[@]}")

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
status=0
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$t" build-fuzz/findings
  echo "fuzz: $t for ${seconds}s"
  if ! build-fuzz/tests/fuzz/fuzz_"$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
      -artifact_prefix="build-fuzz/findings/$t-" -print_final_stats=1 \
      "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" 2> "build-fuzz/$t.log"; then
    echo "fuzz: $t FAILED; see build-fuzz/$t.log and build-fuzz/findings/" >&2
    tail -n 30 "build-fuzz/$t.log" >&2
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "build-fuzz/$t.log" | sed "s/^/fuzz: $t /"
  fi
done
exit $status
