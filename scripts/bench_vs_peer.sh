#!/usr/bin/env bash
# Tessera against both PyTorch peers on the same machine, same threads, in one run: the Python
# peer (../shared/peer/torch_vit_peer.py) and the C++ one (libtorch_vit_peer.cpp, built here
# into build/peer/ on first use). Each round runs the three back to back per preset (paired);
# the table gives per preset the median over rounds of each figure, and the median of the
# per-round ratios against the faster peer of that round.
#
#   scripts/bench_vs_peer.sh [--isa avx2] [--threads N] [--steps N] [--rounds N]
#                            [--dropout P] [--latency] [PRESET...]
#
# --isa avx2 caps every framework to AVX2: ONEDNN_MAX_CPU_ISA=AVX2 for all, and for the peers
# also ATEN_CPU_CAPABILITY=avx2 and OPENBLAS_CORETYPE=Haswell. Presets: seed mnist tiny.
# Needs build/tessera and the peers' packages: ./scripts/setup.sh --peer
set -euo pipefail
cd "$(dirname "$0")/.."

isa="" threads=2 steps=20 rounds=3 dropout=0 latency=0 presets=()
while (($#)); do
  case "$1" in
    --isa) isa=${2:?--isa takes avx2}; shift 2 ;;
    --threads) threads=${2:?}; shift 2 ;;
    --steps) steps=${2:?}; shift 2 ;;
    --rounds) rounds=${2:?}; shift 2 ;;
    --dropout) dropout=${2:?}; shift 2 ;;
    --latency) latency=1; shift ;;
    seed|mnist|tiny) presets+=("$1"); shift ;;
    *) echo "bench_vs_peer: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
((${#presets[@]})) || presets=(seed mnist tiny)
[[ -z "$isa" || "$isa" == avx2 ]] || { echo "bench_vs_peer: --isa takes avx2" >&2; exit 2; }

peer_dir=${PEER_DIR:-../shared/peer}
[[ -x build/tessera ]] || { echo "bench_vs_peer: build/tessera is missing; build first" >&2; exit 1; }
[[ -f "$peer_dir/torch_vit_peer.py" ]] || { echo "bench_vs_peer: no peers in $peer_dir (set PEER_DIR)" >&2; exit 1; }
libtorch_peer=build/peer/libtorch_vit_peer
if [[ ! -x "$libtorch_peer" || "$libtorch_peer" -ot "$peer_dir/libtorch_vit_peer.cpp" ]]; then
  echo "bench_vs_peer: building the libtorch peer (about a minute)"
  mkdir -p build/peer
  g++ -O2 -std=c++17 "$peer_dir/libtorch_vit_peer.cpp" -o "$libtorch_peer" \
      -I/usr/include/torch/csrc/api/include -ltorch -ltorch_cpu -lc10
fi

cap=() peer_cap=()
if [[ "$isa" == avx2 ]]; then
  cap=(ONEDNN_MAX_CPU_ISA=AVX2)
  peer_cap=(ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 OPENBLAS_CORETYPE=Haswell)
fi
lat=()
((latency)) && lat=(--latency)
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'); ISA cap: ${isa:-none}; $threads threads; $rounds rounds"

field() { sed -n "s/.*[ ]$2=\([0-9.]*\).*/\1/p" <<<" $1"; }
declare -A line
for ((r = 1; r <= rounds; r++)); do
  for preset in "${presets[@]}"; do
    s=$steps; [[ $preset == tiny ]] && s=$(( steps < 5 ? steps : 5 ))  # tiny is slow: fewer steps
    line[$r,$preset,tessera]=$(env "${cap[@]}" OMP_NUM_THREADS="$threads" build/tessera bench --preset "$preset" \
      --steps "$s" --threads "$threads" --dropout "$dropout" --no-roofline "${lat[@]}" | grep '^config=')
    line[$r,$preset,pytorch]=$(env "${peer_cap[@]}" /usr/bin/python3 "$peer_dir/torch_vit_peer.py" "$preset" \
      --steps "$s" --threads "$threads" --dropout "$dropout" "${lat[@]}")
    line[$r,$preset,libtorch]=$(env "${peer_cap[@]}" "$libtorch_peer" "$preset" --steps "$s" --threads "$threads" \
      --dropout "$dropout" "${lat[@]}")
    for fw in tessera pytorch libtorch; do echo "round $r $fw: ${line[$r,$preset,$fw]}"; done
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# The median over rounds of `metric` for `fw`; and of Tessera's ratio against the faster peer
# (higher is better for throughput; for latency and memory the peer's value over ours).
stat() { local preset=$1 fw=$2 metric=$3 r v=""; for ((r = 1; r <= rounds; r++)); do v+=" $(field "${line[$r,$preset,$fw]}" "$metric")"; done; median <<<"$v"; }
ratio() {
  local preset=$1 metric=$2 lower_is_better=$3 r v=""
  for ((r = 1; r <= rounds; r++)); do
    local t p l
    t=$(field "${line[$r,$preset,tessera]}" "$metric")
    p=$(field "${line[$r,$preset,pytorch]}" "$metric")
    l=$(field "${line[$r,$preset,libtorch]}" "$metric")
    v+=" $(awk -v t="$t" -v p="$p" -v l="$l" -v low="$lower_is_better" \
      'BEGIN { best = low ? (p < l ? p : l) : (p > l ? p : l); printf "%.3f", low ? best / t : t / best }')"
  done
  median <<<"$v"
}

echo
printf "%-6s | %9s %9s %9s %7s | %9s %9s %9s %7s | %7s %7s %7s\n" preset "train ts" "torch" "libtorch" ratio \
  "infer ts" "torch" "libtorch" ratio "rss ts" "torch" "libt"
for preset in "${presets[@]}"; do
  printf "%-6s | %9s %9s %9s %6.2fx | %9s %9s %9s %6.2fx | %7s %7s %7s\n" "$preset" \
    "$(stat "$preset" tessera train_img_s)" "$(stat "$preset" pytorch train_img_s)" \
    "$(stat "$preset" libtorch train_img_s)" "$(ratio "$preset" train_img_s 0)" \
    "$(stat "$preset" tessera infer_img_s)" "$(stat "$preset" pytorch infer_img_s)" \
    "$(stat "$preset" libtorch infer_img_s)" "$(ratio "$preset" infer_img_s 0)" \
    "$(stat "$preset" tessera peak_rss_mb)" "$(stat "$preset" pytorch peak_rss_mb)" "$(stat "$preset" libtorch peak_rss_mb)"
done
if ((latency)); then
  echo
  printf "%-6s | %12s %12s %12s %7s\n" preset "p50 ms ts" "torch" "libtorch" ratio
  for preset in "${presets[@]}"; do
    printf "%-6s | %12s %12s %12s %6.2fx\n" "$preset" "$(stat "$preset" tessera latency_p50_ms)" \
      "$(stat "$preset" pytorch latency_p50_ms)" "$(stat "$preset" libtorch latency_p50_ms)" \
      "$(ratio "$preset" latency_p50_ms 1)"
  done
fi
