#!/usr/bin/env bash
# The GPU benchmark of results/bench/, as run on a lent H100/H200 (no package registry there:
# the packages its image lacks travel as wheels in .whl/, see results/bench/README.md).
#   bash scripts/gpu_bench.sh OUT_DIR [CONFIG] [TIME_BUDGET_S]
# One device call (budget ~540 s) of issue 11, each stage saved under OUT_DIR as soon as it ends
# (its own log, JSON and Markdown), so a timeout loses only the stage that was running:
#  1. one evaluation's time per env step on halfcheetah (scripts/eval_time.py), QVPO's and the
#     physics alone, with the task's own line search and capped at 8 steps (ls_iterations=8);
#  2. fused training step (N=1024, U=128, quick chunk) in bfloat16, reference sampler, at
#     scan_unroll 1 and 4, and in float32;
#  3. the chunk + evaluation compile time (scripts/compile_time.py --together) and the bench's
#     parts in bfloat16 (the update's MFU against a bfloat16 matmul measured in the same run);
#  4. the Pallas sampler: quick check (128 rows, T=4), then its fused step and the full-size
#     sampler check (tiles, warps);
#  5. the bfloat16 profile, bfloat16 without GEMM autotuning, float32 with loops in command
#     buffers, the evaluation with loops in command buffers.
#     Each fused stage reports its chunk's compile time (later stages are skipped when the
#     budget runs out).
# scan_unroll=1 except in stage 2's sweep (the GPU compile is the cost that matters there).
# SKIP="NAME ..." leaves out the named stages (e.g. those an earlier call measured).
# SAMPLER_PRECISIONS=bfloat16 limits the sampler checks to that precision (default both).
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
# SKIP="NAME ..." skips the named stages (already measured by an earlier call of the session).
stage() {
  local name=$1 need=$2 cap=$3; shift 3
  if [[ " ${SKIP:-} " == *" $name "* ]]; then
    echo "gpu_bench: skip $name (SKIP)" | tee -a "$OUT/stages.txt"
    return
  fi
  local left=$((BUDGET - (SECONDS - start)))
  if [ "$left" -lt "$need" ]; then
    echo "gpu_bench: skip $name ($left s left, needs $need)" | tee -a "$OUT/stages.txt"
    return
  fi
  local limit=$((left - 15 < cap ? left - 15 : cap))
  local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | grep --line-buffered -v "warp" > "$OUT/$name.log"
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
# Order from the H200 calls of session 18 (results/bench/h200_session18/): unrolling the
# denoising loop gained 5% at most (scan_unroll 4: 507.5 updates/s in bfloat16), the profile
# after session 12's change showed 674 launches per update, an evaluation of halfcheetah was
# physics (14.3 of its 14.4 ms per env step), and the Pallas kernel ran for the first time
# (0.64x the reference's step). So: the evaluation with MJX's line search capped (the config
# field ls_iterations, new since; never measured on a GPU), the step in both precisions (the
# before/after baseline of the session), the compile target, the Pallas kernel, then repeats.
#
# eval_stage NAME [--config.FIELD=VALUE ...]: the time of one evaluation of 16 halfcheetah
# environments per env step, QVPO's program and the physics alone (100-step episodes keep it short).
eval_stage() {
  local name=$1; shift
  stage "$name" 80 120 $PY scripts/eval_time.py configs/halfcheetah.py "$OUT/$name.json" \
    --repeats 2 --config.episode_length=100 "$@"
}
eval_stage eval_halfcheetah
eval_stage eval_halfcheetah_ls8 --config.ls_iterations=8
# fused NAME PRECISION SAMPLER [UNROLLS] [env VAR=VALUE ...]: the fused training step alone, with
# its compile time, at each scan_unroll of the comma-separated UNROLLS (default 1) in one
# process (a sweep is the bench's fused-step-only path).
fused() {
  local name=$1 prec=$2 sampler=$3 unrolls=1; shift 3
  if [[ "${1:-}" =~ ^[0-9,]+$ ]]; then unrolls=$1; shift; fi
  local n=$(( $(tr -cd , <<< "$unrolls" | wc -c) + 1 ))
  stage "fused_$name" 100 $((90 * n + 60)) "$@" $PY -m mjx_qvpo.bench --config "$CONFIG" \
    --quick --no-parts --sweep scan_unroll=$unrolls --config.sampler=$sampler \
    --config.matmul_precision=$prec --out "$OUT/fused_$name"
}
# T = 20 denoising steps: unroll 1 (a loop of 20), 4 (a loop of 5; 20, no loop, was no faster).
fused bfloat16_reference_unroll bfloat16 reference 1,4
fused float32_reference float32 reference
# Issue 11's compile target: the humanoid chunk plus evaluation, lowered, then XLA-compiled as
# train does (compile_cache.compile_all: one after the other on a GPU).
stage compile_together 100 150 $PY scripts/compile_time.py "$CONFIG" "$OUT/compile_together.json" \
  1 --together
# Issue 11's MFU against the measured peak of the precision used: the bench's parts (physics,
# acting, one update, the learner stage, the fused step) and a 4096 x 4096 bfloat16 matmul, in
# one process (no Brax SAC baseline).
stage parts_bf16 120 180 $PY -m mjx_qvpo.bench --config "$CONFIG" --quick --no-baseline \
  --config.matmul_precision=bfloat16 --config.scan_unroll=4 --out "$OUT/parts_bf16"
# The Pallas kernel: the cheapest check, then its stages only when the check ran the kernel (an
# entry without an error; since session 18's num_stages=1 it does).
stage sampler_quick 60 75 $PY scripts/sampler_bench.py "$OUT/sampler_quick.json" --quick \
  ${SAMPLER_PRECISIONS:+--precisions $SAMPLER_PRECISIONS}
if $PY -c "import json, sys; e = json.load(open(sys.argv[1]))['entries']
sys.exit(not any(x['sampler'] == 'pallas' and 'error' not in x for x in e))" \
    "$OUT/sampler_quick.json" 2>/dev/null; then
  fused bfloat16_pallas bfloat16 pallas
  stage sampler 100 120 $PY scripts/sampler_bench.py "$OUT/sampler.json" ${SAMPLER_QUICK:+--quick} \
    ${SAMPLER_PRECISIONS:+--precisions $SAMPLER_PRECISIONS}
  stage profile_pallas 120 150 $PY -m mjx_qvpo.bench --config "$CONFIG" --quick --profile $U1 \
    --config.sampler=pallas --config.matmul_precision=bfloat16 --out "$OUT/profile"
else
  echo "gpu_bench: skip the pallas stages (the quick check ran no pallas variant)" | tee -a "$OUT/stages.txt"
fi
stage profile_bf16 120 150 $PY -m mjx_qvpo.bench --config "$CONFIG" --quick --profile $U1 \
  --config.matmul_precision=bfloat16 --out "$OUT/profile"
# XLA autotunes every GEMM while compiling; without it the compile may be much shorter (issue
# 11's 30 s target) at some cost in speed.
fused bfloat16_reference_autotune0 bfloat16 reference env XLA_FLAGS=--xla_gpu_autotune_level=0
# XLA runs a while loop inside a CUDA graph only if WHILE (and CONDITIONAL) are among its command
# buffer types (same program, no host round trip per iteration): 0.87x for the bfloat16 step
# (session 17) and 0.79x for the evaluation (session 18).
CMDBUF=--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN,WHILE,CONDITIONAL
fused float32_reference_cmdbuf float32 reference env XLA_FLAGS=$CMDBUF
eval_stage eval_halfcheetah_cmdbuf --cmdbuf
rm -rf "$OUT/profile/profile_trace"   # raw traces are large; the reduced JSON keeps the numbers
echo "gpu_bench: done after $((SECONDS - start)) s" | tee -a "$OUT/stages.txt"
pack
