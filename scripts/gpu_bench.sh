#!/usr/bin/env bash
# The GPU benchmark of results/bench/, as run on a lent H100/H200 (no package registry there:
# the packages its image lacks travel as wheels in .whl/, see results/bench/README.md).
#   bash scripts/gpu_bench.sh OUT_DIR [CONFIG] [TIME_BUDGET_S]
# 1. the full bench of CONFIG (default configs/humanoid.py): parts, fused step, compile, MFU,
#    matmul precisions float32/tensorfloat32/bfloat16, Brax SAC baseline;
# 2. if at least 200 s of the budget are left, a num_envs sweep of the fused step (quick mode).
set -u
OUT=${1:?usage: gpu_bench.sh OUT_DIR [CONFIG] [TIME_BUDGET_S]}
CONFIG=${2:-configs/humanoid.py}
BUDGET=${3:-560}
export PYTHONUNBUFFERED=1
if [ -z "${SKIP_WHEELS:-}" ] && [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv 2>&1
${PYTHON:-python3} -c "import jax; print('jax', jax.__version__, jax.devices())" 2>&1 | grep -v warp
mkdir -p "$OUT"
start=$SECONDS
timeout $((BUDGET - 30)) ${PYTHON:-python3} -m mjx_qvpo.bench --config "$CONFIG" \
  --precisions float32,tensorfloat32,bfloat16 --out "$OUT" 2>&1 | grep -v "warp" | tee "$OUT/bench.log"
left=$((BUDGET - (SECONDS - start)))
echo "gpu_bench: main bench took $((SECONDS - start)) s, $left s left"
if [ "$left" -ge 200 ]; then
  timeout $((left - 15)) ${PYTHON:-python3} -m mjx_qvpo.bench --config "$CONFIG" --quick --no-parts \
    --sweep num_envs=256,1024,4096 --out "$OUT/sweep" 2>&1 | grep -v "warp" | tee "$OUT/sweep.log"
fi
echo "gpu_bench: done after $((SECONDS - start)) s"
