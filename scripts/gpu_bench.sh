#!/usr/bin/env bash
# The GPU benchmark of results/bench/, as run on a lent H100/H200 (no package registry there:
# the packages its image lacks travel as wheels in .whl/, see results/bench/README.md).
#   bash scripts/gpu_bench.sh OUT_DIR [CONFIG] [TIME_BUDGET_S]
# One device call (budget ~540 s) of issue 11, each stage saved under OUT_DIR as soon as it ends
# (its own log, JSON and Markdown), so a timeout loses only the stage that was running:
#  1. quick sampler check (128 rows, T=4): does Triton compile the Pallas kernel, and does it
#     give the reference's actions (bfloat16 first, then float32); then the halfcheetah
#     evaluation's time per env step (scripts/eval_time.py), with and without loops in
#     command buffers;
#  2. fused training step (N=1024, U=128, quick chunk) in bfloat16, reference sampler, with
#     XLA's default command buffers and with loops in them too;
#  3. profile of the fused training step with bfloat16 matmuls (reference sampler);
#  4. if the quick check ran the Pallas kernel: its fused step, full-size check and profile;
#  5. the chunk + evaluation compile time (scripts/compile_time.py --together), the float32
#     step (both command buffer settings), bfloat16 without GEMM autotuning;
#     each fused stage with its chunk's compile time (later stages are skipped when the budget
#     runs out).
# scan_unroll=1 throughout (the GPU compile is the cost that matters there).
# SKIP="NAME ..." leaves out the named stages (e.g. those an earlier call measured).
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
# Order from the H200 call of session 12 (results/bench/h200_profile_bf16/): the bfloat16 update
# is launch-bound (the GPU busy 45% of the step, 751 kernels per update, 139 of them weight
# conversions that the sampler now does once before its loop), and the Pallas kernel did not fit
# in shared memory (its weight reads now stay inside its loop). So: the kernel's cheapest check,
# the bfloat16 step after the change, the same with XLA's command buffers (CUDA graphs) for
# loops too, the profile after the change, then the rest.
stage sampler_quick 60 75 $PY scripts/sampler_bench.py "$OUT/sampler_quick.json" --quick
# Issue 11's evaluation target (16 halfcheetah episodes in under 3 s): on an H200 (session 17)
# Brax SAC's evaluation of 16 halfcheetah episodes took 24-37 s, 24-37 ms per env step, bound by
# step latency. Time QVPO's evaluation and the physics alone per env step (100-step episodes to
# keep it short), each also compiled with loops inside command buffers (no host round trip per
# solver iteration).
stage eval_halfcheetah 100 150 $PY scripts/eval_time.py configs/halfcheetah.py \
  "$OUT/eval_halfcheetah.json" --repeats 2 --cmdbuf --config.episode_length=100
# fused NAME PRECISION SAMPLER [env VAR=VALUE ...]: the fused training step alone, with its
# compile time (a one-value sweep is the bench's fused-step-only path).
fused() {
  local name=$1 prec=$2 sampler=$3; shift 3
  stage "fused_$name" 100 150 "$@" $PY -m mjx_qvpo.bench --config "$CONFIG" --quick --no-parts \
    --sweep scan_unroll=1 --config.sampler=$sampler --config.matmul_precision=$prec \
    --out "$OUT/fused_$name"
}
fused bfloat16_reference bfloat16 reference
# XLA runs a while loop inside a CUDA graph only if WHILE (and CONDITIONAL) are among its command
# buffer types (same program, fewer host launches). Whether this XLA's default list has them was
# not checked: if it does, the two stages measure the same thing (the bench saves XLA_FLAGS).
CMDBUF=--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN,WHILE,CONDITIONAL
fused bfloat16_reference_cmdbuf bfloat16 reference env XLA_FLAGS=$CMDBUF
stage profile_bf16 120 150 $PY -m mjx_qvpo.bench --config "$CONFIG" --quick --profile $U1 \
  --config.matmul_precision=bfloat16 --out "$OUT/profile"
# The Pallas stages only when the quick check ran the kernel (an entry without an error).
if $PY -c "import json, sys; e = json.load(open(sys.argv[1]))['entries']
sys.exit(not any(x['sampler'] == 'pallas' and 'error' not in x for x in e))" \
    "$OUT/sampler_quick.json" 2>/dev/null; then
  fused bfloat16_pallas bfloat16 pallas
  stage sampler 100 120 $PY scripts/sampler_bench.py "$OUT/sampler.json" ${SAMPLER_QUICK:+--quick}
  stage profile_pallas 120 150 $PY -m mjx_qvpo.bench --config "$CONFIG" --quick --profile $U1 \
    --config.sampler=pallas --config.matmul_precision=bfloat16 --out "$OUT/profile"
else
  echo "gpu_bench: skip the pallas stages (the quick check ran no pallas variant)" | tee -a "$OUT/stages.txt"
fi
# Issue 11's compile target: the humanoid chunk plus evaluation, lowered, then XLA-compiled as
# train does (compile_cache.compile_all: one after the other on a GPU).
stage compile_together 100 150 $PY scripts/compile_time.py "$CONFIG" "$OUT/compile_together.json" \
  1 --together
fused float32_reference float32 reference
fused float32_reference_cmdbuf float32 reference env XLA_FLAGS=$CMDBUF
# XLA autotunes every GEMM while compiling; without it the compile may be much shorter (issue
# 11's 30 s target) at some cost in speed.
fused bfloat16_reference_autotune0 bfloat16 reference env XLA_FLAGS=--xla_gpu_autotune_level=0
rm -rf "$OUT/profile/profile_trace"   # raw traces are large; the reduced JSON keeps the numbers
echo "gpu_bench: done after $((SECONDS - start)) s" | tee -a "$OUT/stages.txt"
pack
