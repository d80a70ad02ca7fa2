#!/usr/bin/env bash
# One device call that races first and benchmarks with the time left:
#   [SAC_EPOCH=N] bash scripts/gpu_session.sh OUT_DIR [BUDGET_S]
# 1. Brax SAC's half of the halfcheetah race on an H200 (QVPO's half, 150 s of training, is
#    session 12's results/race/halfcheetah_h200_150s/, reused with --qvpo-from: same device kind,
#    config and budget). SAC is evaluated after every SAC_EPOCH env steps instead of after every
#    QVPO chunk (19,456): on the H200 one evaluation of 16 episodes of 1,000 steps takes 24-37 s.
#    Session 17 ran this with SAC_EPOCH=116736 (6 chunks; results/race/halfcheetah_h200_150s_sac/):
#    SAC's warm-up (then two epochs and three evaluations) took 305 s and the call's limit cut
#    its run off after 63 s of training. The default is now 233,472 (12 chunks, about 51 s of
#    SAC's training per epoch there), and the warm-up is one epoch and two evaluations: about
#    550 s in all by session 17's timings, so BUDGET_S near 590. Its curve is saved after each
#    evaluation, so a cut-off call keeps it. The race stops at most BUDGET_S - RESERVE s into the
#    call (RESERVE default 15; session 17 used 60).
# 2. scripts/gpu_bench.sh (issue 11's stages, in its order) with whatever is left of BUDGET_S,
#    packed into OUT_DIR/bench.tgz after every stage.
# BUDGET_S (default 570) must stay inside the device tool's 600 s per command.
set -u
OUT=${1:?usage: gpu_session.sh OUT_DIR [BUDGET_S]}
BUDGET=${2:-570}
start=$SECONDS
export PYTHONUNBUFFERED=1
if [ -z "${SKIP_WHEELS:-}" ] && [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD SKIP_WHEELS=1   # installed once for both scripts
fi
mkdir -p "$OUT"
RACE_TIMEOUT=$((BUDGET - ${RESERVE:-15} - (SECONDS - start))) bash scripts/gpu_race.sh "$OUT/race" \
  configs/halfcheetah.py 150 --points 3 --config.scan_unroll=1 \
  --qvpo-from results/race/halfcheetah_h200_150s --sac-epoch-env-steps "${SAC_EPOCH:-233472}"
left=$((BUDGET - (SECONDS - start)))
echo "gpu_session: race done at $((SECONDS - start)) s; $left s left for the bench"
if [ "$left" -ge 90 ]; then
  TAR=$OUT/bench.tgz bash scripts/gpu_bench.sh "$OUT/bench" configs/humanoid.py "$left"
fi
echo "gpu_session: done after $((SECONDS - start)) s"
