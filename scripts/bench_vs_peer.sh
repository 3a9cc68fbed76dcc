#!/usr/bin/env bash
# Tessera against the PyTorch peer (../shared/peer/torch_vit_peer.py, or $PEER) on the same
# machine, same thread count, in one run: one line per preset from each, then the ratios.
# Needs a build (build/tessera) and Debian's PyTorch: ./scripts/setup.sh --peer
# Usage: scripts/bench_vs_peer.sh [THREADS] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
steps=${2:-20}
peer=${PEER:-../shared/peer/torch_vit_peer.py}
[[ -x build/tessera ]] || { echo "bench_vs_peer: build/tessera is missing; build first" >&2; exit 1; }
[[ -f "$peer" ]] || { echo "bench_vs_peer: no PyTorch peer at $peer (set PEER)" >&2; exit 1; }

declare -A ours theirs
for preset in seed mnist tiny; do
  s=$steps; [[ $preset == tiny ]] && s=$(( steps < 5 ? steps : 5 ))  # tiny is slow: fewer steps
  ours[$preset]=$(OMP_NUM_THREADS=$threads build/tessera bench --preset "$preset" --steps "$s" --threads "$threads")
  theirs[$preset]=$(/usr/bin/python3 "$peer" "$preset" --steps "$s" --threads "$threads")
  echo "tessera: ${ours[$preset]}"
  echo "pytorch: ${theirs[$preset]}"
done

field() { sed -n "s/.*$2=\([0-9.]*\).*/\1/p" <<<"$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
printf "%-6s %14s %14s %8s | %14s %14s %8s | %10s %10s\n" preset "train tessera" "train torch" ratio \
  "infer tessera" "infer torch" ratio "rss tessera" "rss torch"
for preset in seed mnist tiny; do
  a=${ours[$preset]} b=${theirs[$preset]}
  ta=$(field "$a" train_img_s) tb=$(field "$b" train_img_s) ia=$(field "$a" infer_img_s) ib=$(field "$b" infer_img_s)
  printf "%-6s %14s %14s %7sx | %14s %14s %7sx | %8s MB %8s MB\n" "$preset" "$ta" "$tb" \
    "$(ratio "$ta" "$tb")" "$ia" "$ib" "$(ratio "$ia" "$ib")" \
    "$(field "$a" peak_rss_mb)" "$(field "$b" peak_rss_mb)"
done
