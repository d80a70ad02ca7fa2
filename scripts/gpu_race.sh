#!/usr/bin/env bash
# The GPU race of results/race/ (QVPO against Brax SAC on one task, same device and clock), for a
# lent H100/H200 in one device call (at most 10 minutes a command; the packages the GPU image
# lacks travel as wheels in .whl/, see results/bench/README.md).
#   bash scripts/gpu_race.sh OUT_DIR [CONFIG] [BUDGET_S] [EXTRA race args...]
# Default: configs/halfcheetah.py, 150 s of training per learner. Per learner the call also
# spends its compile time and its evaluations. On an H200 (session 12, results/race/
# halfcheetah_h200_150s/) two learners at 150 s did NOT fit a 555 s race: QVPO (compile 84 s,
# 150 s of training, four evaluations) finished, and SAC was still in its warm-up run (which
# compiles its programs) when the limit came. So give each learner its own call: QVPO with
# --no-sac, then SAC with --qvpo-from DIR (same device kind, config and budget). The race now
# logs each learner's wall-clock and evaluation time, which sizes the next try.
# RACE_TIMEOUT (default 570) limits the race itself, inside the device tool's 600 s.
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
