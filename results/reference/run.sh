#!/usr/bin/env bash
# Regenerates the quick-profile Spread comparison in this folder: 3 seeds of every continuous algorithm on the
# four OMAR tiers generated from the shipped behaviour policies, and of the discrete-capable generative algorithms
# (plus BC and MAC-Flow for context) on the scripted discrete Spread. Usage, from the repository root:
#   results/reference/run.sh [ALGO ...]        (default: every algorithm)
# Completed seeds are skipped and interrupted ones resume, so the script can be re-run at any time.
# WORKERS (default 2) sets the processes per command.
set -euo pipefail
ALGOS=("${@:-bc mabcq macql matd3bc icq omar omiga macflow flow-bc diffusion-bc madiff-c dof ma-fql}")
DISCRETE=" bc macflow flow-bc diffusion-bc madiff-c dof "
run() {
  marlbench run --algo "$1" --task "$2" --seeds 3 --profile quick --results results/reference \
    --workers "${WORKERS:-2}"
}
for algo in ${ALGOS[@]}; do
  for tier in expert medium medium-replay random; do
    run "$algo" "mpe/spread-$tier"
  done
  if [[ "$DISCRETE" == *" $algo "* ]]; then
    run "$algo" mpe/spread-discrete-scripted
  fi
done
