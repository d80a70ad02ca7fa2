"""Does capping MJX's line search (config field ``ls_iterations``) change a task's physics, and
how much time does it save?

    python scripts/ls_probe.py TASK OUT.json [--steps S] [--envs N] [--caps 4,8]

Rolls ``N`` envs of ``TASK`` (Brax's MJX env, as ``envs.make`` builds it) for ``S`` steps from the
same reset keys under the same Gaussian actions (scale 0.3 and 1.0, clipped to [-1, 1]), once
with the task's own line search (MuJoCo's 50 steps for halfcheetah, hopper, walker2d) and once
per cap, and compares the positions bit for bit. Then times each rollout (one compiled scan,
median of 3 interleaved calls) and writes milliseconds per env step. Why it matters: MJX runs
its line search as a scan of exactly ``ls_iterations`` steps whose body a ``lax.cond`` skips
after convergence, and under ``vmap`` that cond runs every step (envs.set_ls_iterations).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import envs  # noqa: E402


def rollout_fn(task: str, cap: int, steps: int, n: int):
    """A jitted rollout(key, scale) -> (qpos (S, N, nq), reward, done) of the raw Brax env."""
    from envs.quiet import import_mjx_quietly
    import_mjx_quietly()
    from brax import envs as brax_envs
    env = envs.set_ls_iterations(brax_envs.get_environment(task, backend="mjx"), cap)

    def run(key, scale):
        state = jax.vmap(env.reset)(jax.random.split(key, n))

        def body(state, k):
            a = jnp.clip(scale * jax.random.normal(k, (n, env.action_size)), -1.0, 1.0)
            state = jax.vmap(env.step)(state, a)
            return state, (state.pipeline_state.qpos, state.reward, state.done)
        return jax.lax.scan(body, state, jax.random.split(jax.random.fold_in(key, 1), steps))[1]
    return jax.jit(run), int(env.sys.opt.ls_iterations)


def main(argv) -> int:
    """Compare and time the rollouts; write the JSON (see the module docstring)."""
    if len(argv) < 2:
        print(__doc__)
        return 2
    task, path = argv[0], argv[1]
    opt = dict(zip(argv[2::2], argv[3::2]))
    steps, n = int(opt.get("--steps", 200)), int(opt.get("--envs", 16))
    caps = [int(c) for c in opt.get("--caps", "4,8").split(",")]
    fns = {}
    for cap in [0, *caps]:
        fns[cap], used = rollout_fn(task, cap, steps, n)
        if cap == 0:
            own = used
    report = {"task": task, "steps": steps, "envs": n, "own_ls_iterations": own,
              "device": jax.devices()[0].device_kind, "jax": jax.__version__,
              "load_average": os.getloadavg(), "rows": []}
    for scale in (0.3, 1.0):
        base = np.asarray(jax.block_until_ready(fns[0](jax.random.PRNGKey(0), scale))[0])
        for cap in caps:
            q, _, done = jax.block_until_ready(fns[cap](jax.random.PRNGKey(0), scale))
            diff = np.abs(np.asarray(q) - base).max(axis=(1, 2))
            row = {"action_scale": scale, "ls_iterations": cap,
                   "bitwise_equal": bool((np.asarray(q) == base).all()),
                   "max_qpos_diff": float(diff.max()),
                   "first_step_that_differs": int(np.argmax(diff > 0)) if diff.any() else None,
                   # how far apart the first differing step is (chaotic dynamics then amplify it)
                   "qpos_diff_at_first_difference": float(diff[np.argmax(diff > 0)]),
                   "done_flags": int(np.asarray(done).sum())}
            print(json.dumps(row), flush=True)
            report["rows"].append(row)
    times = {cap: [] for cap in fns}
    for rep in range(3):
        for cap, fn in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(jax.random.PRNGKey(10 + rep), 1.0))
            times[cap].append(time.perf_counter() - t0)
    report["ms_per_env_step"] = {str(cap or own): 1e3 * float(np.median(t)) / steps
                                 for cap, t in times.items()}
    report["load_average_after"] = os.getloadavg()
    print(json.dumps(report["ms_per_env_step"]), flush=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
