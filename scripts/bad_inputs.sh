#!/usr/bin/env bash
# Feeds the `tessera` CLI one bad input at a time and prints a Markdown table of what each
# gets: the exit status and the one line on stderr. The README's bad-input table is this
# script's output. Needs a build (./build/tessera) and MNIST in data/mnist (fetch_mnist.sh).
#
#   scripts/bad_inputs.sh [TESSERA]
set -uo pipefail
cd "$(dirname "$0")/.."
readonly TESSERA=$(realpath "${1:-build/tessera}")
readonly MNIST=$(realpath data/mnist)
[[ -x "$TESSERA" ]] || { echo "bad_inputs: no executable at $TESSERA; build first" >&2; exit 1; }
[[ -f "$MNIST/t10k-labels-idx1-ubyte" ]] || { echo "bad_inputs: run scripts/fetch_mnist.sh first" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export OMP_NUM_THREADS=1

# A tiny model on synthetic data: fast to train, so it can make real checkpoints.
tiny='model: {dim: 16, depth: 1, heads: 2, mlp_dim: 32}
schedule: {warmup_epochs: 0}
data: {dataset: synthetic, synthetic: {train_size: 64, test_size: 32}}
train: {epochs: 1, batch_size: 32, output_dir: run}'
echo "$tiny" > tiny.yaml
"$TESSERA" train tiny.yaml > /dev/null 2>&1 || { echo "bad_inputs: the tiny training failed" >&2; exit 1; }

# A copy of MNIST's test split to damage (the loader also needs a training split).
mnist_copy() {
  mkdir -p "$1"
  cp "$MNIST"/t10k-* "$1"/
  cp "$MNIST"/t10k-images-idx3-ubyte "$1"/train-images-idx3-ubyte
  cp "$MNIST"/t10k-labels-idx1-ubyte "$1"/train-labels-idx1-ubyte
}
mnist_copy truncated && truncate -s 100000 truncated/t10k-images-idx3-ubyte
mnist_copy badmagic && printf '\x00\x00\x09\x03' | dd of=badmagic/t10k-images-idx3-ubyte conv=notrunc status=none
mnist_copy badlabel && printf '\x0c' | dd of=badlabel/t10k-labels-idx1-ubyte bs=1 seek=20 conv=notrunc status=none
mnist_copy shortlabels && truncate -s 5008 shortlabels/t10k-labels-idx1-ubyte
mnist='model: {dim: 16, depth: 1, heads: 2, mlp_dim: 32}
schedule: {warmup_epochs: 0}
train: {epochs: 1, output_dir: mrun}
data: {train_limit: 64, test_limit: 64, root: '

echo 'model: {dim: 64' > malformed.yaml
echo ',model: {}' > leading_comma.yaml
echo 'model: {depht: 3}' > unknown_key.yaml
echo 'optim: {lr: fast}' > wrong_type.yaml
echo 'train: {epochs: 0}' > out_of_range.yaml
echo 'train: {epochs: 1}' > short.yaml
echo 'model: {image_size: 30, patch_size: 4}' > indivisible.yaml
echo 'model: {dim: 100, heads: 3}' > heads.yaml
printf 'model: {dim: 16}\n---\nmodel: {dim: 32}\n' > two_docs.yaml
head -c 2000 run/last.safetensors > truncated.safetensors
echo 'not an image' > note.png
printf 'P5\n3 0\n255\n' > flat.pgm
printf 'P5\n20000 20000\n255\n' > huge.pgm
printf 'P553\n553\n3838' > deep.pgm
printf 'GIF89a\1\0\1\0' > anim.png
touch afile
# A gzipped IDX file whose valid 100-image header hides 200 MB of zeros (a decompression bomb).
{ printf '\x00\x00\x08\x03\x00\x00\x00\x64\x00\x00\x00\x1c\x00\x00\x00\x1c'; head -c 200000000 /dev/zero; } | gzip -1 > bomb.gz
mnist_copy bomb && rm bomb/t10k-images-idx3-ubyte && mv bomb.gz bomb/t10k-images-idx3-ubyte.gz
# Image folders whose splits disagree on the classes.
pgm() { mkdir -p "$(dirname "$1")" && printf 'P5\n4 4\n255\n%s' "$(head -c 16 /dev/urandom | tr '\0' '\1')" > "$1"; }
for c in cat dog zebra; do pgm "folders/train/$c/a.png"; done  # PGM bytes: decoders go by content
for c in cat horse; do pgm "folders/test/$c/a.png"; done
folders='model: {image_size: 4, patch_size: 2, channels: 1, num_classes: 3, dim: 8, depth: 1, heads: 1, mlp_dim: 8}
schedule: {warmup_epochs: 0}
train: {epochs: 1, output_dir: frun}
data: {dataset: image_folder, root: folders}'
echo "$folders" > folders.yaml
mkfifo fifo.yaml fifo.safetensors
ln -s /dev/zero zero.png
# Checkpoints with NaN weights, and with finite weights so large that the next step overflows.
cp run/last.safetensors nan.safetensors
cp -r run poisoned
python3 - nan.safetensors poisoned/last.safetensors <<'PY'
import json, struct, sys
for path, value in zip(sys.argv[1:], (float("nan"), 3e38)):
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        entry = json.loads(f.read(n))["head.weight"]
        begin, end = entry["data_offsets"]
        f.seek(8 + n + begin)
        f.write(struct.pack("<f", value) * ((end - begin) // 4))
PY
for d in truncated badmagic badlabel shortlabels bomb; do echo "$mnist$d}" > "$d.yaml"; done
echo "${mnist}nowhere}" > missing_data.yaml
echo "${mnist}$MNIST}" > mnist.yaml

echo '| bad input | command | exit | message (stderr) |'
echo '|---|---|---|---|'
try() {
  local what=$1
  shift
  local err status
  err=$("$TESSERA" "$@" 2>&1 >/dev/null)
  status=$?
  err=${err//$work\//}
  err=${err//$MNIST/data\/mnist}
  err=${err//|/\\|}
  printf '| %s | `tessera %s` | %d | %s |\n' "$what" "$*" "$status" "${err//$'\n'/<br>}"
}
try "malformed YAML" summary malformed.yaml
try "a stray ',' (hung yaml-cpp; found by fuzzing)" summary leading_comma.yaml
try "two YAML documents" summary two_docs.yaml
try "unknown key" summary unknown_key.yaml
try "wrong type" summary wrong_type.yaml
try "out-of-range value" summary out_of_range.yaml
try "warm-up as long as the run" summary short.yaml
try "image not divisible by the patch" summary indivisible.yaml
try "dim not divisible by heads" summary heads.yaml
try "bad --set" summary tiny.yaml --set optim.lr
try "bad --set value" summary tiny.yaml --set train.batch_size=-1
try "unknown preset" summary tiny.yaml --set model.preset=vit-huge
try "missing config" summary nothere.yaml
try "unknown command" frobnicate
try "missing dataset directory" train missing_data.yaml
try "truncated IDX file" train truncated.yaml
try "IDX file with a wrong magic number" train badmagic.yaml
try "label out of range" train badlabel.yaml
try "fewer labels than images" train shortlabels.yaml
try "model expects 3 channels, data has 1" train mnist.yaml --set model.channels=3
try "model expects 32×32, data is 28×28" train mnist.yaml --set model.image_size=32
try "output directory unusable" train tiny.yaml --set train.output_dir=afile/run
try "more memory than the machine has" train tiny.yaml --set model.preset=vit-base/16 --set train.batch_size=65536 --set train.output_dir=big
try "checkpoint of another model" eval tiny.yaml --set model.dim=32 --checkpoint run/last.safetensors
try "truncated checkpoint" eval tiny.yaml --checkpoint truncated.safetensors
try "not a checkpoint" eval tiny.yaml --checkpoint tiny.yaml
try "missing checkpoint" eval tiny.yaml --checkpoint none.safetensors
try "resume with another model" train tiny.yaml --set model.dim=32 --resume run
try "undecodable image" predict --checkpoint run/last.safetensors note.png
try "image with a zero side (aborted stb; found by fuzzing)" predict --checkpoint run/last.safetensors flat.pgm
try "a 19-byte image claiming 20000×20000 pixels (found by fuzzing)" predict --checkpoint run/last.safetensors huge.pgm
try "a 16-bit PNM (read past stb's buffer; found by fuzzing)" predict --checkpoint run/last.safetensors deep.pgm
try "a GIF named .png (stb would decode it; only checked formats reach it)" predict --checkpoint run/last.safetensors anim.png
try "a number far beyond its key's range (wrapped a byte count: segfault)" summary tiny.yaml --set model.mlp_dim=1152921504606846980
try "200,000 threads (segfault)" train tiny.yaml --set train.threads=200000
try "a warm-up of 1e300 epochs" train tiny.yaml --set schedule.warmup_epochs=1e300
try "a shift of 3e9 pixels" train tiny.yaml --set data.augment.random_shift=3000000000
try "no classes to show" predict --checkpoint run/last.safetensors note.png --top-k 0
"$TESSERA" train tiny.yaml --set data.synthetic.train_size=200000 --set train.output_dir=busy >/dev/null 2>&1 &
busy=$!
until grep -qs ' step ' busy/train.log; do sleep 0.1; done
try "a second run into a busy directory" train tiny.yaml --set data.synthetic.train_size=200000 --set train.output_dir=busy
kill "$busy"; wait "$busy" 2>/dev/null
try "resume with another batch size, seed and data size" train tiny.yaml --resume run --set train.batch_size=16 --set train.seed=3 --set data.synthetic.train_size=32
try "evaluation batches too big for memory" train tiny.yaml --set model.patch_size=2 --set model.heads=16 --set train.eval_batch_size=1000000 --set train.output_dir=evalbig
try "a gzip bomb behind a valid IDX header" train bomb.yaml
try "a test class the training split lacks" train folders.yaml
try "a FIFO as the config" summary fifo.yaml
try "a FIFO as the checkpoint" eval tiny.yaml --checkpoint fifo.safetensors
try "/dev/zero as an image" predict --checkpoint run/last.safetensors zero.png
try "a checkpoint of NaN weights" eval tiny.yaml --checkpoint nan.safetensors
try "a loss that overflows (stderr and train.log say why)" train tiny.yaml --set train.epochs=2 --resume poisoned --set train.output_dir=poisoned
