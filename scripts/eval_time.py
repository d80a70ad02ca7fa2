"""Wall-clock of one evaluation (issue 11's target: 16 halfcheetah episodes in under 3 s on a GPU):
``python scripts/eval_time.py CONFIG OUT.json [--repeats R] [--cmdbuf] [--config.FIELD=VALUE ...]``.

Times, after compiling, two programs on ``num_eval_envs`` fresh environments of ``episode_length``
steps (``--config.episode_length=200`` gives a shorter, cheaper probe of the per-step cost):

* ``qvpo``: ``trainer.evaluate`` as ``train`` and ``race`` run it (best-of-K_eval with the
  untrained networks; docs/algorithm.md section 5);
* ``physics``: the same loop (``envs.evaluate_returns``) with uniform random actions, i.e. the
  environment steps and the loop alone.

On a GPU an evaluation is a sequence of small steps, and each MJX physics step runs its solver's
while loops (halfcheetah: up to 4 Newton iterations of up to 50 line-search steps, 5 physics steps
per env step), whose loop conditions XLA copies to the host every iteration. With ``--cmdbuf``
each program is also compiled with XLA's command buffers extended to loops (``WHILE``,
``CONDITIONAL``: the loops run inside CUDA graphs, no host round trip), passed per program as a
compiler option, to see whether that shortens an evaluation; on the CPU the option is ignored.
Writes OUT.json: per program and variant, compile seconds, the median seconds per call over
``--repeats`` calls (different keys), and milliseconds per env step.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from envs.wrappers import evaluate_returns  # noqa: E402
from mjx_qvpo.cli import split_overrides  # noqa: E402
from mjx_qvpo.config import resolve  # noqa: E402
from mjx_qvpo.train import load_run_config  # noqa: E402
from mjx_qvpo.training import make_trainer  # noqa: E402

CMDBUF = {"xla_gpu_enable_command_buffer":
          "FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN,WHILE,CONDITIONAL"}


def time_program(fn, args, keys, compiler_options=None) -> dict:
    """Compile ``jax.jit(fn)`` on ``args`` (with ``compiler_options``), then call it once per key
    in ``keys`` (the key replaces ``args``' last entry); compile seconds and the calls' seconds."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile(compiler_options=compiler_options or None)
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(*args[:-1], keys[0]))   # first call: loading, allocation
    calls = []
    for k in keys[1:]:
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args[:-1], k))
        calls.append(time.perf_counter() - t0)
    return {"compile_s": compile_s, "call_s": calls, "median_s": float(np.median(calls))}


def main(argv) -> int:
    """Time both programs in each variant and write the JSON (see the module docstring)."""
    (overrides,), rest = split_overrides(argv, ("--config.",))
    repeats = 3
    if "--repeats" in rest:
        i = rest.index("--repeats")
        repeats = int(rest[i + 1])
        del rest[i:i + 2]
    cmdbuf = "--cmdbuf" in rest
    rest = [a for a in rest if a != "--cmdbuf"]
    if len(rest) != 2 or repeats < 1:
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        return 2
    config, out = rest
    cfg = resolve(load_run_config(config, overrides))
    trainer = make_trainer(cfg, single_device=True)
    state = jax.jit(trainer.init)(jax.random.key(cfg.seed))
    keys = list(jax.random.split(jax.random.key(cfg.seed + 1), repeats + 1))
    env, n, steps = trainer.env, cfg.num_eval_envs, cfg.episode_length

    def random_policy(obs, key):
        return jax.random.uniform(key, (obs.shape[0], env.action_size), minval=-1.0, maxval=1.0)

    programs = {"qvpo": (trainer.evaluate, (state, keys[0])),
                "physics": (lambda k: evaluate_returns(env, random_policy, k, n), (keys[0],))}
    device = jax.devices()[0].device_kind
    rows = []
    for variant, options in [("default", None)] + ([("cmdbuf_while", CMDBUF)] if cmdbuf else []):
        for name, (fn, fargs) in programs.items():
            r = time_program(fn, fargs, keys, options)
            r.update(program=name, variant=variant, ms_per_env_step=1e3 * r["median_s"] / steps)
            rows.append(r)
            print(f"eval_time: {name:8s} {variant:13s} compile {r['compile_s']:6.1f} s, "
                  f"{r['median_s']:7.3f} s per call of {n} envs x {steps} steps "
                  f"({r['ms_per_env_step']:.2f} ms per env step)", flush=True)
            with open(out, "w") as f:
                json.dump({"config": config, "overrides": overrides, "device": device,
                           "backend": jax.default_backend(), "jax": jax.__version__,
                           "num_eval_envs": n, "episode_length": steps,
                           "num_eval_samples": cfg.num_eval_samples, "repeats": repeats,
                           "xla_flags": os.environ.get("XLA_FLAGS", ""), "rows": rows},
                          f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
