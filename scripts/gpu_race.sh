#!/usr/bin/env bash
# The GPU race of results/race/ (QVPO against Brax SAC on one task, same device and clock), for a
# lent H100/H200 in one device call (at most 10 minutes a command; the packages the GPU image
# lacks travel as wheels in .whl/, see results/bench/README.md).
#   bash scripts/gpu_race.sh OUT_DIR [CONFIG] [BUDGET_S] [EXTRA race args...]
# Default: configs/halfcheetah.py, 150 s of training per learner. Per learner the call also
# spends its compile time (about 80 s for QVPO's chunk and evaluation on an H200) and its
# evaluations, so two learners at 150 s fit a 9-minute call; 240 s per learner needs more
# than one call allows (run QVPO alone with --no-sac to see its curve at that budget).
set -u
OUT=${1:?usage: gpu_race.sh OUT_DIR [CONFIG] [BUDGET_S] [race args...]}
CONFIG=${2:-configs/halfcheetah.py}
BUDGET=${3:-150}
shift $(( $# < 3 ? $# : 3 ))
export PYTHONUNBUFFERED=1
if [ -z "${SKIP_WHEELS:-}" ] && [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
mkdir -p "$OUT"
start=$SECONDS
timeout "${RACE_TIMEOUT:-570}" ${PYTHON:-python3} -m mjx_qvpo.race --config "$CONFIG" --budget-s "$BUDGET" \
  --out "$OUT" "$@" 2>&1 | grep --line-buffered -v "warp" | tee "$OUT/race.log"
echo "gpu_race: done after $((SECONDS - start)) s"
