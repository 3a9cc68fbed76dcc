#!/usr/bin/env bash
# Data-parallel training on one machine: 1 rank x T threads against N ranks x T/N threads,
# training the `mnist` and `tiny` bench presets' ViTs on synthetic data with `tessera train`
# (the whole step: loader, forward, backward, all-reduce, optimizer step), in paired runs,
# medians over the rounds. Then a projection to 8-64 ranks on one machine each, from the
# measured step time and the bytes all-reduced per step (see the README).
#
#   scripts/bench_data_parallel.sh [--rounds R] [--ranks N] [--threads T] [--preset mnist|tiny]...
#
# Throughput is epoch 2's training images/s from metrics.jsonl (epoch 1 warms up; evaluation
# is not counted); communication is rank 0's time in the step's collectives, which includes
# waiting for the slower rank.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 ranks=2 threads=2 presets=()
while (($#)); do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --preset) presets+=("$2"); shift 2 ;;
    *) echo "bench_data_parallel: unknown option '$1'" >&2; exit 2 ;;
  esac
done
((${#presets[@]})) || presets=(mnist tiny)
tessera=${TESSERA:-build/tessera}
[[ -x $tessera ]] || { echo "bench_data_parallel: build tessera first ($tessera)" >&2; exit 1; }
per_rank=$((threads / ranks)); ((per_rank >= 1)) || per_rank=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The bench presets (bench/bench.cpp) as training configs: model, batch, AdamW as bench uses.
config() {
  local model batch steps
  case "$1" in
    mnist) model="{image_size: 28, patch_size: 4, channels: 1, num_classes: 10, dim: 64, depth: 6, heads: 4, mlp_dim: 128}"
           batch=128 steps=40 ;;
    tiny) model="{image_size: 224, patch_size: 16, channels: 3, num_classes: 1000, dim: 192, depth: 12, heads: 3, mlp_dim: 768}"
          batch=32 steps=8 ;;
    *) echo "bench_data_parallel: unknown preset '$1' (mnist, tiny)" >&2; exit 2 ;;
  esac
  cat <<YAML
model: $model
data: {dataset: synthetic, synthetic: {train_size: $((batch * steps)), test_size: $batch}, normalize: none, workers: 1}
optim: {name: adamw, lr: 1.0e-3, weight_decay: 0.05}
schedule: {name: constant, warmup_epochs: 0}
train: {epochs: 2, batch_size: $batch, eval_batch_size: $batch, seed: 0, log_interval: 1000000}
YAML
}

# Epoch 2's field $2 from run directory $1's metrics.jsonl.
metric() { sed -n 2p "$1/metrics.jsonl" | grep -o "\"$2\":[0-9.e+-]*" | cut -d: -f2; }
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "$("$tessera" --version | grep '^cpu:'); $(nproc) cores"
for preset in "${presets[@]}"; do
  config "$preset" > "$work/$preset.yaml"
  : > "$work/$preset.rows"
  for ((r = 1; r <= rounds; r++)); do
    rm -rf "$work/one" "$work/many"
    "$tessera" train "$work/$preset.yaml" --set train.threads="$threads" --set train.output_dir="$work/one" \
      > "$work/one.log"
    mpirun -np "$ranks" --oversubscribe --bind-to none --allow-run-as-root "$tessera" train "$work/$preset.yaml" \
      --set train.threads="$per_rank" --set train.output_dir="$work/many" > "$work/many.log"
    one=$(metric "$work/one" train_images_per_second)
    many=$(metric "$work/many" train_images_per_second)
    comm=$(metric "$work/many" communication_seconds)
    epoch=$(metric "$work/many" epoch_seconds)
    row=$(awk -v a="$one" -v b="$many" -v c="$comm" -v e="$epoch" 'BEGIN {printf "%.1f %.1f %.3f %.3f", a, b, b / a, c / e}')
    echo "$row" >> "$work/$preset.rows"
    read -r a b ratio frac <<< "$row"
    echo "$preset round $r: 1 rank x $threads threads $a img/s, $ranks ranks x $per_rank thread(s) $b img/s," \
         "ratio $ratio, communication $(awk -v f="$frac" 'BEGIN {printf "%.1f", 100 * f}')% of the step"
  done
  mb=$(grep -o "all-reduced per step: [0-9.]* MB" "$work/many.log" | grep -o "[0-9.]*")
  one=$(cut -d' ' -f1 "$work/$preset.rows" | median)
  many=$(cut -d' ' -f2 "$work/$preset.rows" | median)
  ratio=$(cut -d' ' -f3 "$work/$preset.rows" | median)
  frac=$(cut -d' ' -f4 "$work/$preset.rows" | median)
  batch=$(grep -o "batch_size: [0-9]*" "$work/$preset.yaml" | head -1 | grep -o "[0-9]*")
  echo "$preset median of $rounds: 1 rank x $threads threads $one img/s; $ranks ranks x $per_rank $many img/s;" \
       "ratio $ratio; communication $(awk -v f="$frac" 'BEGIN {printf "%.1f", 100 * f}')% of the step;" \
       "$mb MB all-reduced per step"
  # Projection to p machines, each running one rank at the measured 1-rank speed, with a ring
  # all-reduce of S bytes per step: 2 (p - 1) / p * S / bandwidth + 2 (p - 1) * latency, not
  # overlapped with backward. Two ways to use p ranks: the same global batch split p ways
  # (compute t / p per step, at most one image per rank), or the same batch per rank (a
  # global batch p times larger, compute t per step).
  awk -v preset="$preset" -v imgs="$one" -v batch="$batch" -v mb="$mb" 'BEGIN {
    t = batch / imgs; S = mb * 1e6
    split("10GbE InfiniBand", name, " "); split("1.25e9 12.5e9", bw, " "); split("30e-6 2e-6", lat, " ")
    printf "%s projection: step %.1f ms on one rank, %.2f MB all-reduced per step\n", preset, 1e3 * t, mb
    printf "  %-40s", "ranks"; for (i = 1; i <= 6; i++) printf " %6d", 2 ^ i; printf "\n"
    for (n = 1; n <= 2; n++) {
      printf "  %-40s", sprintf("global batch %d, %s: speedup", batch, name[n])
      half = 0
      for (i = 1; i <= 12; i++) {
        p = 2 ^ i; comm = 2 * (p - 1) / p * S / bw[n] + 2 * (p - 1) * lat[n]
        s = p <= batch ? t / (t / p + comm) : 0
        if (i <= 6) printf " %6s", p <= batch ? sprintf("%.1f", s) : "-"
        if (!half && p <= batch && s < p / 2) half = p
      }
      printf "   (%s)\n", half ? "under 50% efficiency from " half " ranks" : "50% efficiency or more up to " batch " ranks, one image each"
    }
    for (n = 1; n <= 2; n++) {
      printf "  %-40s", sprintf("batch %d per rank, %s: efficiency", batch, name[n])
      for (i = 1; i <= 6; i++) {
        p = 2 ^ i; comm = 2 * (p - 1) / p * S / bw[n] + 2 * (p - 1) * lat[n]
        printf " %5.1f%%", 100 * t / (t + comm)
      }
      printf "\n"
    }
  }'
done
