#!/usr/bin/env bash
# `tessera train` under mpirun: a run prints once, a config error is reported once, a killed
# rank and a stopped (hung) rank end the run within a bound with a message naming the rank,
# the last checkpoint stays loadable and resumes, and srun's variables are read.
#   check_data_parallel_cli.sh TESSERA WORK_DIR MPIRUN...
set -uo pipefail
tessera=$1 work=$2
shift 2
mpirun=("$@")
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fail() { echo "FAIL: $*" >&2; for f in *.out *.err; do [[ -s $f ]] && { echo "--- $f"; tail -n 20 "$f"; }; done >&2; exit 1; }

cat > dp.yaml <<'YAML'
model: {image_size: 16, patch_size: 4, channels: 1, num_classes: 4, dim: 32, depth: 2, heads: 2, mlp_dim: 64}
data: {dataset: synthetic, synthetic: {train_size: 256, test_size: 32}, normalize: none}
optim: {name: adamw, lr: 1.0e-3}
train: {epochs: 2, batch_size: 16, eval_batch_size: 16, threads: 1, log_interval: 4}
YAML

# 1. A two-rank run reports once; rank 0 writes the files.
"${mpirun[@]}" "$tessera" train dp.yaml --set train.output_dir=ok > ok.out 2> ok.err || fail "two-rank run failed"
[[ $(grep -c "finished 2 epochs" ok.out) == 1 ]] || fail "the run's end was not printed exactly once"
grep -q "data parallel: 2 ranks" ok.out || fail "the run did not say it is data parallel"
[[ $(wc -l < ok/metrics.jsonl) == 2 ]] || fail "metrics.jsonl should hold 2 epochs"
echo "ok: two ranks train and report once"

# 2. A config error on every rank: one message, exit status 2.
"${mpirun[@]}" "$tessera" train dp.yaml --set train.epochs=0 > bad.out 2> bad.err
status=$?
[[ $status == 2 ]] || fail "a config error exited $status, not 2"
[[ $(grep -c "tessera: error" bad.err) == 1 ]] || fail "the config error was not reported exactly once"
echo "ok: a config error is reported once (exit 2)"

# The pid of rank $2 among the children of mpirun $1.
rank_pid() {
  for p in $(pgrep -P "$1"); do
    tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return; }
  done
}
# Starts a long run in directory $1 (extra --set options after it) and waits for its first checkpoint.
start_long_run() {
  local dir=$1
  shift
  "${mpirun[@]}" "$tessera" train dp.yaml --set train.epochs=100000 --set "train.output_dir=$dir" "$@" \
    > "$dir.out" 2> "$dir.err" &
  run_pid=$!
  for _ in $(seq 600); do
    [[ -s $dir/last.safetensors ]] && return
    kill -0 "$run_pid" 2>/dev/null || fail "the run in $dir ended early"
    sleep 0.2
  done
  fail "no checkpoint in $dir after 120 s"
}
# Waits at most $2 seconds for mpirun $1 to end; sets status and elapsed.
wait_bounded() {
  local start=$SECONDS
  for _ in $(seq $(($2 * 5))); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.2
  done
  kill -0 "$1" 2>/dev/null && { kill -KILL "$1"; fail "the run did not end within $2 s"; }
  wait "$1"
  status=$?
  elapsed=$((SECONDS - start))
}
# The last checkpoint of $1 is loadable and the run resumes from it in one process.
check_resumes() {
  "$tessera" eval dp.yaml --checkpoint "$1/last.safetensors" > "$1-eval.out" 2>&1 || fail "$1's checkpoint does not load"
  # --foreground: one SIGINT to tessera alone (else timeout signals its process group too).
  timeout --foreground --preserve-status -s INT 10 "$tessera" train dp.yaml --set train.epochs=100000 --set "train.output_dir=$1" \
    --resume "$1" > "$1-resume.out" 2>&1
  local status=$?
  grep -q "resuming from" "$1-resume.out" || fail "the run in $1 did not resume"
  [[ $status == 130 ]] || fail "the resumed run in $1 exited $status, not 130 after SIGINT"
}

# 3. A killed rank ends the run, naming the rank.
start_long_run killed
victim=$(rank_pid "$run_pid" 1)
[[ -n $victim ]] || fail "rank 1 of the killed run not found"
kill -KILL "$victim"
wait_bounded "$run_pid" 60
[[ $status != 0 ]] || fail "the run with a killed rank exited 0"
grep -q "rank 1" killed.err || fail "the message does not name rank 1"
check_resumes killed
echo "ok: a killed rank ends the run in ${elapsed} s (exit $status), naming rank 1; the checkpoint resumes"

# 4. A stopped (hung) rank: the others time out, name it and stop the run.
start_long_run hung --set train.collective_timeout=5
victim=$(rank_pid "$run_pid" 1)
[[ -n $victim ]] || fail "rank 1 of the hung run not found"
kill -STOP "$victim"
wait_bounded "$run_pid" 60
kill -KILL "$victim" 2>/dev/null
[[ $status != 0 ]] || fail "the run with a stopped rank exited 0"
grep -q "rank 1 did not reach it" hung.err || fail "the message does not name the stopped rank 1"
check_resumes hung
echo "ok: a stopped rank ends the run in ${elapsed} s (exit $status), naming rank 1; the checkpoint resumes"

# 5. srun: Slurm's variables are read; a world MPI does not see is refused.
SLURM_PROCID=0 SLURM_NTASKS=2 "$tessera" train dp.yaml --set train.output_dir=srun2 > srun2.out 2> srun2.err
status=$?
[[ $status == 2 ]] || fail "a faked two-task srun exited $status, not 2"
grep -q "srun --mpi=pmix" srun2.err || fail "the srun mismatch does not say what to do"
SLURM_PROCID=0 SLURM_NTASKS=1 "$tessera" train dp.yaml --set train.output_dir=srun1 \
  > srun1.out 2> srun1.err || fail "a one-task srun did not train"
echo "ok: srun's variables are read"
