"""``python -m mjx_qvpo.bench --config configs/<task>.py [--quick] [--out DIR] [--config.x=v ...]``

Throughput of the parts of one training step and of the fused step, on the current JAX device, in
one run: physics only, behavior action selection (K_b candidates, T steps), one learner update,
the whole training step, compile time, and the learner's model FLOP utilization against a matmul
peak measured in the same run. Each figure is the median over repeats after compilation.
Writes ``<task>_<device>.json`` and ``.md`` under ``--out`` (default ``results/bench``).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mjx_qvpo.config import ConfigError, derive, resolve
from mjx_qvpo.train import load_run_config, parse_args, update_flops


def median_time(fn: Callable, *args, repeats: int = 5) -> float:
    """Median wall time of ``fn(*args)`` (results blocked on) over ``repeats`` calls after a warm-up
    call (which also compiles)."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """Measured float32 FLOP/s of an n x n matmul on the default device (the MFU denominator)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: jnp.dot(x, x, precision=jax.lax.Precision.HIGHEST))
    return 2.0 * n ** 3 / median_time(f, a, repeats=repeats)


def run_bench(cfg, *, repeats: int = 5) -> dict:
    """Measure the parts and the whole of the training step for a resolved config (see module doc).

    The replay buffer is pre-filled with random transitions and warm-up is off, so every measured
    training step performs its U updates. Physics is timed over as many steps as one chunk holds.
    """
    from mjx_qvpo import acting, replay
    from mjx_qvpo.losses import Transition
    from mjx_qvpo.training import make_trainer

    trainer = make_trainer(cfg)
    env, nets = trainer.env, trainer.nets
    n, u = cfg.num_envs, cfg.updates_per_step
    chunk_steps = derive(cfg).steps_per_chunk
    obs_size, act_size = env.observation_size, env.action_size
    key = jax.random.PRNGKey(cfg.seed)
    state = jax.jit(trainer.init)(key)
    fill = max(cfg.batch_size, n)
    ks = jax.random.split(key, 4)
    rows = Transition(jax.random.normal(ks[0], (fill, obs_size)),
                      jax.random.uniform(ks[1], (fill, act_size), minval=-1, maxval=1),
                      jax.random.normal(ks[2], (fill,)), jax.random.normal(ks[3], (fill, obs_size)),
                      jnp.zeros((fill,)))
    state = state.replace(buffer=replay.insert(state.buffer, rows),
                          env_steps=jnp.asarray(cfg.warmup_env_steps, jnp.int32))
    out: dict = {}

    def physics(es, k):
        def body(es, k):
            a = jax.random.uniform(k, (n, act_size), minval=-1, maxval=1)
            return env.step(es, a)[0], None
        return jax.lax.scan(body, es, jax.random.split(k, chunk_steps))[0]
    t = median_time(jax.jit(physics), state.env_state, key, repeats=repeats)
    out["physics_env_steps_per_s"] = n * chunk_steps / t
    out["physics_s_per_step"] = t / chunk_steps

    act = jax.jit(lambda s, k: acting.best_of_k(nets, s.actor_params, s.critic_params,
                                                  s.env_state.obs, k, cfg.num_behavior_samples))
    out["act_s"] = median_time(act, state, key, repeats=repeats)

    batch = replay.sample(state.buffer, key, cfg.batch_size)
    out["update_s"] = median_time(jax.jit(trainer.update), state, batch, key, repeats=repeats)
    flops = update_flops(cfg, obs_size, act_size)
    out["update_flops"] = flops
    out["update_flop_per_s"] = flops / out["update_s"]
    out["matmul_peak_flop_per_s"] = matmul_peak(repeats=repeats)
    out["mfu"] = out["update_flop_per_s"] / out["matmul_peak_flop_per_s"]

    # The fused step: a chunk of `chunk_steps` training steps, compiled once.
    t0 = time.perf_counter()
    chunk = jax.jit(trainer.chunk).lower(state).compile()
    out["compile_chunk_s"] = time.perf_counter() - t0
    t = median_time(chunk, state, repeats=repeats)
    per_step = t / chunk_steps
    out["train_step_s"] = per_step
    out["train_env_steps_per_s"] = n / per_step
    out["train_updates_per_s"] = u / per_step
    parts = out["physics_s_per_step"] + out["act_s"] + u * out["update_s"]
    out["sum_of_parts_s"] = parts
    out["fused_overhead"] = per_step / parts - 1.0
    return out


def to_markdown(report: dict) -> str:
    """A one-table Markdown rendering of a bench report."""
    r, c = report["results"], report["config"]
    lines = [f"# Benchmark: {c['task']} on {report['device']}", "",
             f"{report['date']}, jax {report['versions']['jax']}, "
             f"N={c['num_envs']}, U={c['updates_per_step']}, B={c['batch_size']}, "
             f"K={c['num_train_samples']}, K_b={c['num_behavior_samples']}, "
             f"K_t={c['num_target_samples']}, T={c['diffusion_steps']}, "
             f"N_e={c['num_entropy_samples']}", "", f"Command: `{report['command']}`", "",
             "| quantity | value |", "|---|---|"]
    fmt = {"physics_env_steps_per_s": ("physics only, env steps/s", "{:,.0f}"),
           "act_s": ("behavior action selection (N states), ms", "{:.2f}", 1e3),
           "update_s": ("one learner update, ms", "{:.2f}", 1e3),
           "update_flops": ("learner update, GFLOP", "{:.2f}", 1e-9),
           "update_flop_per_s": ("learner update, GFLOP/s", "{:.1f}", 1e-9),
           "matmul_peak_flop_per_s": ("matmul peak (same run), GFLOP/s", "{:.1f}", 1e-9),
           "mfu": ("model FLOP utilization of the update", "{:.1%}"),
           "train_env_steps_per_s": ("whole training step, env steps/s", "{:,.1f}"),
           "train_updates_per_s": ("whole training step, updates/s", "{:,.2f}"),
           "fused_overhead": ("fused step vs sum of parts", "{:+.1%}"),
           "compile_chunk_s": ("compile time of the chunk, s", "{:.1f}")}
    for k, spec in fmt.items():
        if k in r:
            scale = spec[2] if len(spec) > 2 else 1.0
            lines.append(f"| {spec[0]} | {spec[1].format(r[k] * scale)} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "python -m mjx_qvpo.bench " + " ".join(argv)
    quick = "--quick" in argv
    out_dir = "results/bench"
    if "--out" in argv:
        i = argv.index("--out")
        out_dir = argv[i + 1]
        del argv[i:i + 2]
    argv = [a for a in argv if a != "--quick"]
    try:
        path, overrides, _ = parse_args(argv, flag_names=())
        cfg = load_run_config(path, overrides)
        # One chunk = `chunk` training steps; warm-up off (the buffer is pre-filled instead).
        chunk = 1 if quick else 4
        cfg.log_every_env_steps = chunk * cfg.num_envs
        cfg.warmup_env_steps = 0 if cfg.batch_size <= cfg.num_envs else cfg.batch_size
        cfg = resolve(cfg)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    repeats = 3 if quick else 5
    device = jax.devices()[0]
    print(f"bench: {cfg.task} on {device.device_kind} ({jax.default_backend()}), "
          f"{'quick, ' if quick else ''}{repeats} repeats", flush=True)
    results = run_bench(cfg, repeats=repeats)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device.device_kind, "backend": jax.default_backend(),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count()},
        "versions": {"jax": jax.__version__, "python": platform.python_version()},
        "command": command,
        "quick": quick, "repeats": repeats, "config": cfg.to_dict(), "results": results}
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"{cfg.task}_{device.device_kind.replace(' ', '_').lower()}")
    with open(stem + ".json", "w") as f:
        json.dump(report, f, indent=2, default=list)
    md = to_markdown(report)
    with open(stem + ".md", "w") as f:
        f.write(md)
    print(md)
    print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
