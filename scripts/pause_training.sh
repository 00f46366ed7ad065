#!/usr/bin/env bash
# Run a command while a training process is stopped, and log the stop, so that a long run on a
# small machine can share it with short jobs (tests, a quick eval) without either slowing the
# other, and the run's training time can still be stated honestly:
#
#   scripts/pause_training.sh runs/demo-2h-lr3 pytest -q tests/test_config.py
#
# The `w2v finetune`/`w2v pretrain` process whose command line names RUN (its config file or
# output folder; set PATTERN to match something else) gets SIGSTOP, COMMAND runs, the process
# gets SIGCONT, and one line "<start> <end> <seconds> <command>" (Unix times) is appended to
# RUN.pauses. trainer_state.json's elapsed_s counts wall time, stops included;
# scripts/package_demo.py subtracts the logged seconds when it states a run's training time.
# Without a matching process the command just runs and nothing is logged.
set -uo pipefail
if [ $# -lt 2 ]; then
  echo "usage: scripts/pause_training.sh RUN COMMAND [ARGS...]   (RUN: e.g. runs/demo-2h-lr3)" >&2
  exit 2
fi
RUN=${1%/}; shift
NAME=$(basename "$RUN")
PATTERN=${PATTERN:-"w2v (finetune|pretrain) .*$NAME"}
PID=$(pgrep -f -- "$PATTERN" | grep -vx "$$" | head -1 || true)
if [ -z "$PID" ]; then
  echo "pause_training: no process matches '$PATTERN'; running the command without pausing" >&2
  exec "$@"
fi
t0=$(date +%s)
resume() {  # whatever happens to the command (failure, Ctrl-C): resume the run, log the stop
  kill -CONT "$PID"
  t1=$(date +%s)
  echo "$t0 $t1 $((t1 - t0)) $*" >> "$RUN.pauses"
}
trap 'resume "$@"' EXIT
kill -STOP "$PID"
"$@"
