#!/usr/bin/env bash
# Regenerates the quick-profile Spread comparison in this folder (3 seeds of every continuous algorithm on the
# four OMAR tiers generated from the shipped behaviour policies). Usage, from the repository root:
#   results/reference/run.sh [ALGO ...]        (default: every continuous algorithm)
# Completed seeds are skipped and interrupted ones resume, so the script can be re-run at any time.
set -euo pipefail
ALGOS=("${@:-bc mabcq macql matd3bc icq omar omiga macflow}")
for algo in ${ALGOS[@]}; do
  for tier in expert medium medium-replay random; do
    marlbench run --algo "$algo" --task "mpe/spread-$tier" --seeds 3 --profile quick \
      --results results/reference --workers "${WORKERS:-2}"
  done
done
