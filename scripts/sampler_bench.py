"""Standalone timing and GPU correctness check of the two samplers (issue 11, docs/algorithm.md section 1).

    python scripts/sampler_bench.py OUT.json [--quick] [--precisions bfloat16,float32]

At humanoid size (obs 244, act 17, 3 x 256 Mish, T = 20, B = 256 states x K = 64 candidates, the
policy update's sampling): the reference ``lax.scan`` sampler (scan_unroll 1 and 4) and the Pallas
kernel over tile sizes and weight-chunk sizes, in float32 and bfloat16 matmuls. For each kernel
variant: compile time, median time and the largest difference from the reference's actions with
the same key (this is the check that the kernel Triton compiled computes the reference's
function). The JSON is rewritten after every entry, so a timeout loses only the entry running.
Precisions run in the order given (default bfloat16 first: on an H100 the float32 kernel of the
Python-unrolled loop never finished compiling, and it used to hold up everything after it).
"""

import functools
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from mjx_qvpo import diffusion  # noqa: E402
from mjx_qvpo.bench import median_time  # noqa: E402
from mjx_qvpo.networks import NoiseModel  # noqa: E402


def timed(fn, *args, repeats=10):
    """(compile seconds, median seconds per call, result) of a jitted fn."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    return compile_s, median_time(compiled, *args, repeats=repeats), compiled(*args)


def main(argv):
    """Run every variant, rewriting the JSON at argv[0] after each."""
    path = argv[0]
    quick = "--quick" in argv
    precisions = ("bfloat16", "float32")
    if "--precisions" in argv:
        precisions = tuple(argv[argv.index("--precisions") + 1].split(","))
    batch, k, steps = (16, 8, 4) if quick else (256, 64, 20)
    sched = diffusion.make_schedule(steps)
    obs = jax.random.normal(jax.random.PRNGKey(1), (batch, 244))
    key = jax.random.PRNGKey(2)
    report = {"device": jax.devices()[0].device_kind, "jax": jax.__version__,
              "rows": batch * k, "T": steps, "entries": []}

    def save():
        with open(path, "w") as f:
            json.dump(report, f, indent=2)

    tiles = (32,) if quick else (32, 64, 128)
    for precision in precisions:
        model = NoiseModel(244, 17, (256, 256, 256), 32, 256, precision)
        params = model.init(jax.random.PRNGKey(0))
        ref = None
        # Most informative first (the stage may be cut off): the defaults, then the tuning grid.
        variants = [("reference", {"unroll": 1}), ("pallas", {"tile_rows": 64, "k_chunk": 64}),
                    ("reference", {"unroll": 4}),
                    # the hidden layers as an inner loop, so that pipelining fits (session 18)
                    ("pallas", {"tile_rows": 64, "k_chunk": 64, "stack_hidden": True,
                                "num_stages": 2}),
                    ("pallas", {"tile_rows": tiles[-1], "k_chunk": 64, "num_warps": 8,
                                "stack_hidden": True, "num_stages": 2})]
        variants += [("pallas", {"tile_rows": t, "k_chunk": 64}) for t in tiles if t != 64]
        variants += [("pallas", {"tile_rows": tiles[-1], "k_chunk": 64, "num_warps": 8}),
                     ("pallas", {"tile_rows": tiles[0], "k_chunk": None}),
                     # Triton's pipelining on, as before session 18 (every load buffered at once)
                     ("pallas", {"tile_rows": tiles[0], "k_chunk": 64, "num_stages": 2})]
        for sampler, opts in variants:
            entry = {"precision": precision, "sampler": sampler, **opts}
            if sampler == "reference":
                fn = functools.partial(diffusion.sample_reference, model, sched,
                                       num_samples=k, unroll=opts["unroll"])
            else:
                fn = functools.partial(diffusion.sample_pallas, model, sched, num_samples=k,
                                       **opts)
            try:
                entry["compile_s"], entry["time_s"], out = timed(
                    lambda p, o, kk: fn(p, o, kk), params, obs, key)
                if ref is None:
                    ref = out
                entry["max_abs_diff_vs_reference"] = float(jnp.max(jnp.abs(out - ref)))
            except Exception as e:  # a variant that does not compile is a result too
                entry["error"] = f"{type(e).__name__}: {e}"[:400]
            report["entries"].append(entry)
            save()
            print(json.dumps(entry), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
