"""Compile time of a config's training chunk and evaluation at several ``scan_unroll`` values
(issue 11):
``python scripts/compile_time.py configs/humanoid.py OUT.json [UNROLL ...] [--together]``.

With ``--together`` the chunk and the evaluation are lowered one after the other and then
XLA-compiled as ``train`` and ``race`` do (``compile_cache.compile_all``: side by side on the CPU,
one after the other on a GPU); the row then has one ``together`` entry whose wall seconds are
what a run waits for. Without it each is compiled alone, one after the other.

Lowers and compiles ``jax.jit(trainer.chunk)`` and ``jax.jit(trainer.evaluate)`` on abstract
shapes (nothing is allocated, so the 1M-transition humanoid buffer needs no memory), one unroll
value after another in this process, and rewrites OUT.json after each. The chunk is docs/algorithm.md
section 7's training step scanned over one logging interval; its denoising scans (section 1) are
what ``scan_unroll`` unrolls.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

from mjx_qvpo.compile_cache import compile_all  # noqa: E402
from mjx_qvpo.config import apply_overrides, resolve  # noqa: E402
from mjx_qvpo.train import load_run_config  # noqa: E402
from mjx_qvpo.training import make_trainer  # noqa: E402


def compile_seconds(fn, *args) -> dict:
    """Wall and process-CPU seconds of tracing + lowering, then of XLA compiling, jax.jit(fn) on
    abstract args. CPU seconds (all threads of this process) are the figure to compare on a
    shared machine, where wall time depends on what else runs."""
    times = compile_together([(fn, args)])  # one program: compile_all compiles it alone
    del times["total_wall_s"]
    return times


def compile_together(fns_args) -> dict:
    """Wall and process-CPU seconds of lowering each ``(fn, args)`` in turn, then of XLA-compiling
    them as ``compile_all`` does (side by side in threads on the CPU)."""
    w0, c0 = time.perf_counter(), time.process_time()
    lowered = [jax.jit(fn).trace(*args).lower() for fn, args in fns_args]
    w1, c1 = time.perf_counter(), time.process_time()
    compile_all(lowered)
    w2, c2 = time.perf_counter(), time.process_time()
    return {"lower_wall_s": w1 - w0, "lower_cpu_s": c1 - c0,
            "compile_wall_s": w2 - w1, "compile_cpu_s": c2 - c1, "total_wall_s": w2 - w0}


def main(argv):
    """Measure each unroll value given (default 1 and 4), rewriting the JSON after each."""
    together = "--together" in argv
    config, out, *unrolls = [a for a in argv if a != "--together"]
    rows = []
    for unroll in [int(u) for u in unrolls] or [1, 4]:
        cfg = resolve(apply_overrides(load_run_config(config, {}), {"scan_unroll": unroll}))
        trainer = make_trainer(cfg, single_device=True)
        key = jax.random.PRNGKey(0)
        state = jax.eval_shape(trainer.init, key)
        row = {"scan_unroll": unroll}
        if together:
            row["together"] = compile_together(
                [(trainer.chunk, (state,)), (trainer.evaluate, (state, key))])
        else:
            row["chunk"] = compile_seconds(trainer.chunk, state)
            row["evaluate"] = compile_seconds(trainer.evaluate, state, key)
        rows.append(row)
        with open(out, "w") as f:
            json.dump({"config": config, "device": jax.devices()[0].device_kind,
                       "jax": jax.__version__, "rows": rows}, f, indent=2)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
