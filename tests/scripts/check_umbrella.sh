#!/usr/bin/env bash
# The umbrella header covers the whole public API: every header installed under
# include/tessera/ is reached from <tessera/tessera.h>. Lists those it misses.
#
#   check_umbrella.sh SOURCE_DIR CXX
set -euo pipefail
src="${1:?usage: $0 SOURCE_DIR CXX}"
cxx="${2:?usage: $0 SOURCE_DIR CXX}"
cd "$src/include"
reached=$("$cxx" -std=c++20 -M -I . tessera/tessera.h | tr ' \\' '\n\n' | grep -o 'tessera/.*\.h$' | sort -u)
missing=$(comm -13 <(echo "$reached") <(find tessera -name '*.h' | sort))
if [[ -n "$missing" ]]; then
  echo "check_umbrella: not reached from tessera/tessera.h:"
  echo "$missing"
  exit 1
fi
echo "check_umbrella: tessera/tessera.h reaches all $(echo "$reached" | wc -l) public headers"
