#!/usr/bin/env bash
# Data flows one way (DESIGN.md): each layer includes only its own headers and those of the
# layers below it. Lists every include that points up, and fails if there is one. The link
# step proves the same for calls (tests/layering/upward_call.cpp).
#
#   check_layering.sh SOURCE_DIR
set -euo pipefail
cd "${1:?usage: $0 SOURCE_DIR}"

# What each layer may include, itself included (mirrors the libraries' links in CMakeLists.txt).
declare -A allowed=(
  [autograd]="autograd"
  [ops]="autograd ops"
  [nn]="autograd ops nn"
  [models]="autograd ops nn models"
  [optim]="autograd ops optim"
  [datasets]="autograd datasets"
  [train]="autograd ops nn models optim datasets train bench"
  [bench]="autograd ops nn models optim datasets train bench"
)
status=0
for layer in "${!allowed[@]}"; do
  while IFS=: read -r file line text; do
    target=$(sed -E 's/.*#include "(tessera\/)?([a-z_]+)\/.*/\2/' <<<"$text")
    [[ " ${allowed[$layer]} " == *" $target "* ]] && continue
    echo "check_layering: $file:$line: $layer includes $target, a layer above it: $text"
    status=1
  done < <(grep -rnE '#include "(tessera/)?(autograd|ops|nn|models|optim|datasets|train|bench)/' \
             "$layer" "include/tessera/$layer" 2>/dev/null || true)
done
((status == 0)) && echo "check_layering: every include points down or sideways within its layer"
exit $status
