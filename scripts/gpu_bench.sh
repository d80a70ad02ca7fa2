#!/usr/bin/env bash
# The GPU benchmark of results/bench/, as run on a lent H100/H200 (no package registry there:
# the packages its image lacks travel as wheels in .whl/, see results/bench/README.md).
#   bash scripts/gpu_bench.sh OUT_DIR [CONFIG] [TIME_BUDGET_S]
# One device call (budget ~540 s) of issue 11, each stage saved under OUT_DIR as soon as it ends
# (its own log, JSON and Markdown), so a timeout loses only the stage that was running:
#  1. sampler check: the Pallas kernel as Triton compiled it against the reference sampler
#     (max |difference|), and both samplers' time at the policy update's size (16,384 rows, T=20);
#  2. profile of the fused training step, reference sampler, float32;
#  3-6. fused training step (N=1024, U=128, quick chunk) reference vs pallas, float32 then
#     bfloat16 matmuls, with each chunk's compile time;
#  7. profile with the pallas sampler; 8. profile with bfloat16 matmuls (if time is left).
# scan_unroll=1 throughout (the GPU compile is the cost that matters there).
# TAR=FILE.tgz packs OUT_DIR (raw traces left out) into FILE after every stage: the device tool
# brings back at most 8 files from $OUT, and a call cut off at its limit still returns the last pack.
# FULL=1 instead runs the earlier full bench (parts, precisions, Brax SAC) and the num_envs sweep.
set -u
OUT=${1:?usage: gpu_bench.sh OUT_DIR [CONFIG] [TIME_BUDGET_S]}
CONFIG=${2:-configs/humanoid.py}
BUDGET=${3:-540}
export PYTHONUNBUFFERED=1
if [ -z "${SKIP_WHEELS:-}" ] && [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv 2>&1
$PY -c "import jax; print('jax', jax.__version__, jax.devices())" 2>&1 | grep -v warp
mkdir -p "$OUT"
start=$SECONDS

# stage NAME MIN_SECONDS_LEFT CAP_S CMD...: run CMD for at most CAP_S seconds (and never past the
# budget less 15 s), log to OUT/NAME.log; skipped when fewer than MIN_SECONDS_LEFT seconds remain.
# The cap keeps one slow stage (a long Triton compile) from eating the later ones.
stage() {
  local name=$1 need=$2 cap=$3; shift 3
  local left=$((BUDGET - (SECONDS - start)))
  if [ "$left" -lt "$need" ]; then
    echo "gpu_bench: skip $name ($left s left, needs $need)" | tee -a "$OUT/stages.txt"
    return
  fi
  local limit=$((left - 15 < cap ? left - 15 : cap))
  local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | grep -v "warp" > "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "gpu_bench: $name rc=$rc $((SECONDS - t0)) s (at $((SECONDS - start)) s)" | tee -a "$OUT/stages.txt"
  tail -n 25 "$OUT/$name.log"
  pack
}

pack() {
  if [ -n "${TAR:-}" ]; then tar czf "$TAR" --exclude=profile_trace -C "$OUT" .; fi
}

if [ -n "${FULL:-}" ]; then
  stage bench 200 600 $PY -m mjx_qvpo.bench --config "$CONFIG" \
    --precisions float32,tensorfloat32,bfloat16 --out "$OUT"
  stage sweep 200 600 $PY -m mjx_qvpo.bench --config "$CONFIG" --quick --no-parts \
    --sweep num_envs=256,1024,4096 --out "$OUT/sweep"
  echo "gpu_bench: done after $((SECONDS - start)) s"
  exit 0
fi

U1=--config.scan_unroll=1
stage sampler 100 120 $PY scripts/sampler_bench.py "$OUT/sampler.json" ${SAMPLER_QUICK:+--quick}
stage profile_f32 90 120 $PY -m mjx_qvpo.bench --config "$CONFIG" --quick --profile $U1 \
  --out "$OUT/profile"
for prec in float32 bfloat16; do
  for sampler in reference pallas; do
    # A one-value sweep is the bench's fused-step-only path (with compile time).
    stage "fused_${prec}_${sampler}" 80 100 $PY -m mjx_qvpo.bench --config "$CONFIG" --quick \
      --no-parts --sweep scan_unroll=1 --config.sampler=$sampler --config.matmul_precision=$prec \
      --out "$OUT/fused_${prec}_${sampler}"
  done
done
stage profile_pallas 90 120 $PY -m mjx_qvpo.bench --config "$CONFIG" --quick --profile $U1 \
  --config.sampler=pallas --out "$OUT/profile"
stage profile_bf16 90 120 $PY -m mjx_qvpo.bench --config "$CONFIG" --quick --profile $U1 \
  --config.matmul_precision=bfloat16 --out "$OUT/profile"
rm -rf "$OUT/profile/profile_trace"   # raw traces are large; the reduced JSON keeps the numbers
echo "gpu_bench: done after $((SECONDS - start)) s" | tee -a "$OUT/stages.txt"
pack
