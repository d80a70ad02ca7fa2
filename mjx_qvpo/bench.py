"""``python -m mjx_qvpo.bench --config configs/<task>.py [--quick] [--out DIR] [--config.x=v ...]
[--no-baseline] [--no-parts] [--precisions float32,bfloat16] [--sweep FIELD=v1,v2,...]
[--devices 1,2,4]``

Throughput of the parts of one training step and of the fused step, on the current JAX device, in
one run (issue 5): physics only, behavior action selection (K_b candidates, T steps), one learner
update, the whole training step against the sum of its parts, compile time, the learner's model
FLOP utilization against a matmul peak measured in the same run, and Brax's own SAC trainer on the
same MJX environment with matched N, B and U as the baseline. Each figure is the median over
repeats after compilation. Options add the update time in other matmul precisions, a sweep of one
config field (a scaling plot) and the scaling of the fused step over device counts;
``--no-parts`` skips the main measurements (and the baseline) to run only those.
``--profile`` instead traces a few fused training chunks with ``jax.profiler`` and writes the
reduced table ``profile_<device>.{md,json}`` (see profiling.py).
Writes ``<task>_<device>.json`` and ``.md`` (and ``*_sweep_<field>.png``) under ``--out``
(default ``runs/bench``; the committed ``results/bench/`` is refreshed only on purpose, with
``--out results/bench``).
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import os
import platform
import sys
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mjx_qvpo import cli, profiling
from mjx_qvpo.config import ConfigError, apply_overrides, derive, resolve
from mjx_qvpo.networks import MATMUL_MODES, matmul
from mjx_qvpo.train import load_run_config, parse_args, parse_value, update_flops

USAGE = ("usage: python -m mjx_qvpo.bench --config CONFIG.py [--quick] [--out DIR] "
         "[--no-baseline] [--no-parts] [--precisions P1,P2] [--sweep FIELD=V1,V2,...] [--devices 1,2,...] "
         "[--config.FIELD=VALUE ...]")
DEFAULT_OUT = os.path.join("runs", "bench")
HELP = cli.help_text(
    "python -m mjx_qvpo.bench", "Throughput of the parts of one training step and of the fused "
    "step on the current JAX device\n(physics, acting, one update, compile time, MFU) against "
    "Brax's SAC trainer on the same MJX environment.", USAGE,
    [*cli.CONFIG_OPTIONS,
     ("--out DIR", f"folder for <task>_<device>.json/.md (default {DEFAULT_OUT}; pass --out "
                   f"results/bench only to refresh the committed results)"),
     ("--quick", "1 training step per chunk and 3 repeats instead of 4 and 5"),
     ("--no-baseline", "skip the Brax SAC baseline"),
     ("--no-parts", "skip the main measurements (and the baseline): only the options below"),
     ("--precisions P1,P2", "also time the update in these matmul modes (float32, "
                            "tensorfloat32, bfloat16)"),
     ("--sweep FIELD=V1,V2", "fused step over values of one config field, with a plot"),
     ("--devices 1,2,4", "data-parallel scaling of the fused step over device counts")],
    "python -m mjx_qvpo.bench --config configs/inverted_pendulum.py --quick --no-baseline")


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


def matmul_peak(mode: str = "float32", n: int = 4096, repeats: int = 5) -> float:
    """Measured FLOP/s of an n x n matmul in ``mode`` (see ``networks.matmul``) on the default
    device, on random data: the denominator of the model FLOP utilization."""
    if jax.default_backend() == "cpu":
        n = min(n, 2048)  # large enough to reach the CPU's rate, small enough to stay quick
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    f = jax.jit(functools.partial(matmul, mode=mode))
    return 2.0 * n ** 3 / median_time(f, a, b, repeats=repeats)


def prefilled_state(trainer, cfg, key):
    """A fresh training state whose buffer holds at least max(B, N) random transitions and whose
    warm-up is over, so every measured training step performs its U updates. Laid out on the
    trainer's devices."""
    from mjx_qvpo import replay
    from mjx_qvpo.losses import Transition
    n, obs, act = cfg.num_envs, trainer.env.observation_size, trainer.env.action_size
    steps = min(math.ceil(max(cfg.batch_size, n) / n), replay.capacity_steps(cfg.buffer_size, n))

    def build(key):
        state = trainer.init(key)
        ks = jax.random.split(key, 4)
        rows = Transition(jax.random.normal(ks[0], (steps, n, obs)),
                          jax.random.uniform(ks[1], (steps, n, act), minval=-1, maxval=1),
                          jax.random.normal(ks[2], (steps, n)),
                          jax.random.normal(ks[3], (steps, n, obs)), jnp.zeros((steps, n)))
        buffer = state.buffer
        for i in range(steps):
            buffer = replay.insert(buffer, jax.tree.map(lambda x: x[i], rows))
        return state.replace(buffer=buffer,
                             env_steps=jnp.asarray(cfg.warmup_env_steps, jnp.int32))
    return jax.jit(build, out_shardings=trainer.shardings)(key)


def chained_chunk(trainer, state) -> tuple[float, Callable[[], tuple]]:
    """``(compile_s, run)``: the training chunk compiled with its state donated, as ``train`` and
    ``race`` run it, and ``run()``, which advances a private copy of ``state`` by one chunk and
    returns the chunk's outputs (``state`` itself stays valid).

    Donation is what lets XLA update the replay buffer in place. A chunk compiled without it
    must write a fresh copy of the whole state (the buffer above all) on every call: on the
    2-core CPU that copy made the hopper config's quick fused step (one training step per
    chunk) 1.48x slower than the same step in training (158 against 107 ms per step, session
    24, scripts/chunk_donation.py), and it is what earlier benchmarks of the fused step
    measured."""
    t0 = time.perf_counter()
    compiled = jax.jit(trainer.chunk, donate_argnums=0).lower(state).compile()
    compile_s = time.perf_counter() - t0
    box = [jax.tree.map(jnp.copy, state)]

    def run():
        out = compiled(box[0])
        box[0] = out[0]
        return out
    return compile_s, run


def fused_step(trainer, cfg, state, repeats: int) -> dict:
    """Compile time of the chunk and seconds per training step of the compiled chunk (donated
    and chained, as in training: ``chained_chunk``)."""
    chunk_steps = derive(cfg).steps_per_chunk
    compile_s, run = chained_chunk(trainer, state)
    per_step = median_time(run, repeats=repeats) / chunk_steps
    return {"compile_chunk_s": compile_s, "train_step_s": per_step,
            "train_env_steps_per_s": cfg.num_envs / per_step,
            "train_updates_per_s": cfg.updates_per_step / per_step}


def learner_only(update: Callable) -> Callable:
    """``update`` (``Trainer.update``, one sgd_step, or ``Trainer.learner_step``, U of them)
    returning only what a learner update computes (networks, targets, optimizer
    states, Q statistics, metrics). Returning the whole state from a standalone jitted call
    would also copy the replay buffer and environment states it passes through (2 GB for the
    humanoid buffer), which the fused step never does."""
    def fn(state, *args):
        new, metrics = update(state, *args)
        return (new.actor_params, new.critic_params, new.target_actor_params,
                new.target_critic_params, new.actor_opt_state, new.critic_opt_state,
                new.q_stats, new.updates), metrics
    return fn


def run_bench(cfg, *, repeats: int = 5, precisions: Sequence[str] = (),
              out: dict | None = None, on_stage: Callable[[str], None] = lambda stage: None
              ) -> dict:
    """Measure the parts and the whole of the training step for a resolved config (see module doc).

    Physics is timed over as many steps as one chunk holds. ``precisions`` adds the learner
    update's time in each listed matmul mode (``update_s_<mode>``). Figures go into ``out`` as
    they are measured, and ``on_stage(name)`` is called after each stage (to save them).
    """
    from mjx_qvpo import acting, replay
    from mjx_qvpo.training import make_trainer

    trainer = make_trainer(cfg, single_device=True)
    env, nets = trainer.env, trainer.nets
    n, u = cfg.num_envs, cfg.updates_per_step
    chunk_steps = derive(cfg).steps_per_chunk
    obs_size, act_size = env.observation_size, env.action_size
    key = jax.random.PRNGKey(cfg.seed)
    state = prefilled_state(trainer, cfg, key)
    out = {} if out is None else out

    def physics(es, k):
        def body(es, k):
            a = jax.random.uniform(k, (n, act_size), minval=-1, maxval=1)
            return env.step(es, a)[0], None
        return jax.lax.scan(body, es, jax.random.split(k, chunk_steps))[0]
    t = median_time(jax.jit(physics), state.env_state, key, repeats=repeats)
    out["physics_env_steps_per_s"] = n * chunk_steps / t
    out["physics_s_per_step"] = t / chunk_steps
    on_stage("physics")

    act = jax.jit(lambda s, k: acting.best_of_k(nets, s.actor_params, s.critic_params,
                                                  s.env_state.obs, k, cfg.num_behavior_samples))
    out["act_s"] = median_time(act, state, key, repeats=repeats)
    on_stage("acting")

    batch = replay.sample(state.buffer, key, cfg.batch_size)
    out["update_s"] = median_time(jax.jit(learner_only(trainer.update)), state, batch, key,
                                  repeats=repeats)
    flops = update_flops(cfg, obs_size, act_size)
    out["update_flops"] = flops
    out["update_flop_per_s"] = flops / out["update_s"]
    out["matmul_peak_flop_per_s"] = matmul_peak(cfg.matmul_precision, repeats=repeats)
    out["mfu"] = out["update_flop_per_s"] / out["matmul_peak_flop_per_s"]
    on_stage("update")
    # The learner stage alone: U updates in one lax.scan, each sampling its own batch (against
    # U x update_s: what the loop and the batch draws add).
    out["learner_step_s"] = median_time(jax.jit(learner_only(trainer.learner_step)), state, key,
                                        repeats=repeats)
    on_stage("learner step")
    for mode in precisions:
        if mode == cfg.matmul_precision:
            continue
        other = make_trainer(resolve(apply_overrides(cfg, {"matmul_precision": mode})),
                             single_device=True)
        out[f"update_s_{mode}"] = median_time(jax.jit(learner_only(other.update)), state, batch,
                                              key, repeats=repeats)
        on_stage(f"update in {mode}")

    out.update(fused_step(trainer, cfg, state, repeats))
    # update_s times one full update; with a policy delay most updates are critic-only, so the
    # learner's share is then the measured learner stage instead.
    learner_s = u * out["update_s"] if cfg.actor_update_every == 1 else out["learner_step_s"]
    parts = out["physics_s_per_step"] + out["act_s"] + learner_s
    out["sum_of_parts_s"] = parts
    out["fused_overhead"] = out["train_step_s"] / parts - 1.0
    # What one million env steps would take at this N with U = N (one update per env step, the
    # paper's ratio), from the measured parts: a projection, not a run.
    out["projected_s_per_million_at_u_eq_n"] = 1e6 / n * (
        out["physics_s_per_step"] + out["act_s"] + n * learner_s / u)
    return out


# ------------------------------------------------------------------------- Brax SAC baseline
def _shim_newer_jax() -> None:
    """Let Brax 0.14 and Flax 0.12 run on a newer JAX (the lent GPU machines have 0.11).
    Brax's trainers call ``jax.device_put_replicated``, which JAX 0.10 removed; give them the
    same result (a leading axis of one copy per device, as ``pmap`` expects)."""
    import warnings
    try:
        with warnings.catch_warnings():  # JAX 0.9 warns that it is deprecated: fine for Brax
            warnings.simplefilter("ignore", DeprecationWarning)
            jax.device_put_replicated  # noqa: B018
    except AttributeError:
        def put(x, devices):
            return jax.tree.map(lambda a: jax.device_put_sharded([a] * len(devices), devices)
                                if hasattr(jax, "device_put_sharded")
                                else jnp.stack([jnp.asarray(a)] * len(devices)), x)
        jax.device_put_replicated = put
    # Flax 0.12's linen (Brax's SAC networks) calls jax.core.get_opaque_trace_state, which JAX
    # 0.11 moved to jax.extend.core.
    if not hasattr(jax.core, "get_opaque_trace_state"):
        from jax.extend import core as extend_core
        jax.core.get_opaque_trace_state = extend_core.get_opaque_trace_state


def _stub_env(observation_size: int, action_size: int):
    """A do-nothing Brax environment with the task's shapes, used as SAC's evaluation env so
    that the baseline spends its time (and compilation) on training only."""
    from brax.envs.base import Env, State

    class Stub(Env):
        def reset(self, rng):
            z = jnp.zeros(())
            return State(None, jnp.zeros((observation_size,)), z, z, {}, {})

        def step(self, state, action):
            return state.replace(done=jnp.ones(()))

        @property
        def observation_size(self):
            return observation_size

        @property
        def action_size(self):
            return action_size

        @property
        def backend(self):
            return "stub"
    return Stub()


def brax_sac_baseline(cfg, epochs: int = 2) -> dict:
    """Env steps/s of ``brax.training.agents.sac.train`` on the same MJX task with matched
    ``num_envs`` (N), ``batch_size`` (B), ``grad_updates_per_step`` (U), episode length and
    hidden widths, over ``epochs`` epochs of as many training steps as one of our chunks holds;
    the figure is Brax's own ``training/sps`` of the last epoch (after compilation)."""
    from brax import envs as brax_envs
    from brax.training.agents.sac import networks as sac_networks
    from brax.training.agents.sac import train as sac

    _shim_newer_jax()
    import envs
    env = envs.set_ls_iterations(brax_envs.get_environment(cfg.task, backend="mjx"),
                                 cfg.ls_iterations)
    n, steps = cfg.num_envs, derive(cfg).steps_per_chunk
    rows = []
    t0 = time.perf_counter()
    sac.train(environment=env, num_timesteps=epochs * steps * n, episode_length=cfg.episode_length,
              num_envs=n, batch_size=cfg.batch_size, grad_updates_per_step=cfg.updates_per_step,
              min_replay_size=0, max_replay_size=cfg.buffer_size, num_evals=epochs + 1,
              num_eval_envs=1, eval_env=_stub_env(env.observation_size, env.action_size),
              normalize_observations=cfg.normalize_observations, seed=cfg.seed,
              max_devices_per_host=1, learning_rate=cfg.critic_lr, discounting=cfg.gamma,
              tau=cfg.tau, network_factory=functools.partial(
                  sac_networks.make_sac_networks,
                  hidden_layer_sizes=tuple(cfg.network.critic_hidden)),
              progress_fn=lambda step, m: rows.append(float(m.get("training/sps", np.nan))))
    sps = [r for r in rows if np.isfinite(r)]
    return {"env_steps_per_s": sps[-1], "total_s": time.perf_counter() - t0,
            "num_envs": n, "batch_size": cfg.batch_size,
            "grad_updates_per_step": cfg.updates_per_step, "training_steps_per_epoch": steps,
            "hidden": list(cfg.network.critic_hidden)}


# --------------------------------------------------------------------- sweeps and devices
def _bench_config(cfg, overrides: dict):
    """``cfg`` with ``overrides``, validated, and with the bench's warm-up: none, except the env
    steps one batch needs in the buffer (the buffer is pre-filled with random rows instead,
    ``prefilled_state``). Set per swept value, since ``batch_size`` may be the swept field."""
    c = apply_overrides(cfg, overrides)
    c.warmup_env_steps = 0 if c.batch_size <= c.num_envs else c.batch_size
    return resolve(c)


def fused_step_with(cfg, overrides: dict, repeats: int, single_device: bool) -> dict:
    """``fused_step`` of ``cfg`` changed by ``overrides`` (validated), on a fresh prefilled state."""
    from mjx_qvpo.training import make_trainer
    c = _bench_config(cfg, overrides)
    trainer = make_trainer(c, single_device=single_device)
    return fused_step(trainer, c, prefilled_state(trainer, c, jax.random.PRNGKey(c.seed)), repeats)


def sweep(cfg, field: str, values: Sequence, repeats: int) -> list[dict]:
    """The fused training step at each value of one config field (everything else fixed)."""
    rows = []
    for v in values:
        rows.append({"value": v, **fused_step_with(cfg, {field: v}, repeats, single_device=True)})
        print(f"  sweep {field}={v}: {rows[-1]['train_env_steps_per_s']:,.1f} env steps/s",
              flush=True)
    return rows


def device_scaling(cfg, counts: Sequence[int], repeats: int) -> list[dict]:
    """The fused training step of one total configuration on 1, 2, ... devices (data-parallel),
    with efficiency = t(1) / (d * t(d))."""
    rows = [{"devices": d, **fused_step_with(cfg, {"num_devices": d}, repeats,
                                             single_device=False)} for d in counts]
    base = rows[0]["train_step_s"] * rows[0]["devices"]
    for r in rows:
        r["efficiency"] = base / (r["devices"] * r["train_step_s"])
        print(f"  {r['devices']} device(s): {r['train_env_steps_per_s']:,.1f} env steps/s, "
              f"efficiency {r['efficiency']:.0%}", flush=True)
    return rows


def plot_sweep(field: str, rows: list[dict], title: str, path: str) -> None:
    """Env steps/s and updates/s of the fused step against the swept value."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    x = [r["value"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(x, [r["train_env_steps_per_s"] for r in rows], "o-", label="env steps/s")
    ax.plot(x, [r["train_updates_per_s"] for r in rows], "s--", label="updates/s")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(field)
    ax.set_title(title, fontsize=9)
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------- reporting
_FMT = {"physics_env_steps_per_s": ("physics only, env steps/s", "{:,.0f}"),
        "act_s": ("behavior action selection (N states), ms", "{:.2f}", 1e3),
        "update_s": ("one learner update, ms", "{:.2f}", 1e3),
        **{f"update_s_{m}": (f"one learner update in {m} matmuls, ms", "{:.2f}", 1e3)
           for m in MATMUL_MODES},
        "learner_step_s": ("learner stage alone (U updates in one scan), ms", "{:.1f}", 1e3),
        "update_flops": ("learner update, GFLOP", "{:.2f}", 1e-9),
        "update_flop_per_s": ("learner update, GFLOP/s", "{:.1f}", 1e-9),
        "matmul_peak_flop_per_s": ("matmul peak (same run, same precision), GFLOP/s", "{:.1f}",
                                   1e-9),
        "mfu": ("model FLOP utilization of the update", "{:.1%}"),
        "train_env_steps_per_s": ("whole training step, env steps/s", "{:,.1f}"),
        "train_updates_per_s": ("whole training step, updates/s", "{:,.2f}"),
        "sum_of_parts_s": ("sum of the parts (physics + acting + U updates), ms", "{:.1f}", 1e3),
        "train_step_s": ("whole training step, ms", "{:.1f}", 1e3),
        "fused_overhead": ("fused step vs sum of parts", "{:+.1%}"),
        "compile_chunk_s": ("compile time of the chunk, s", "{:.1f}"),
        "projected_s_per_million_at_u_eq_n": (
            "projected time for 1M env steps with U = N (from the parts), min", "{:.1f}", 1 / 60),
        "brax_sac_env_steps_per_s": ("Brax SAC, same N/B/U, env steps/s", "{:,.1f}"),
        "ratio_to_brax_sac": ("ours / Brax SAC (env steps/s)", "{:.3f}")}


def to_markdown(report: dict) -> str:
    """Markdown tables of a bench report (main figures, then sweeps and device scaling)."""
    r, c = report["results"], report["config"]
    lines = [f"# Benchmark: {c['task']} on {report['device']}", "",
             f"{report['date']}, jax {report['versions']['jax']}, {report['host']['cpus']} CPU "
             f"cores, N={c['num_envs']}, U={c['updates_per_step']}, B={c['batch_size']}, "
             f"K={c['num_train_samples']}, K_b={c['num_behavior_samples']}, "
             f"K_t={c['num_target_samples']}, T={c['diffusion_steps']}, "
             f"N_e={c['num_entropy_samples']}, matmul {c['matmul_precision']}", "",
             f"Command: `{report['command']}`"]
    if r:
        lines += ["", "| quantity | value |", "|---|---|"]
    for k, spec in _FMT.items():
        if k in r and r[k] is not None:
            scale = spec[2] if len(spec) > 2 else 1.0
            lines.append(f"| {spec[0]} | {spec[1].format(r[k] * scale)} |")
    if r.get("brax_sac_error"):
        lines.append(f"| Brax SAC baseline | failed: {r['brax_sac_error']} |")
    for field, rows in report.get("sweeps", {}).items():
        lines += ["", f"Sweep of `{field}` (fused training step):", "",
                  f"| {field} | env steps/s | updates/s | compile, s |", "|---|---|---|---|"]
        lines += [f"| {x['value']} | {x['train_env_steps_per_s']:,.1f} | "
                  f"{x['train_updates_per_s']:,.2f} | {x['compile_chunk_s']:.1f} |" for x in rows]
    if report.get("devices"):
        lines += ["", "Data-parallel scaling, same total configuration (fused training step):",
                  "", "| devices | env steps/s | efficiency |", "|---|---|---|"]
        lines += [f"| {x['devices']} | {x['train_env_steps_per_s']:,.1f} | "
                  f"{x['efficiency']:.0%} |" for x in report["devices"]]
    return "\n".join(lines) + "\n"


def _take(argv: list[str], flag: str) -> str | None:
    """Remove ``flag VALUE`` or ``flag=VALUE`` from argv and return VALUE (None if absent)."""
    for i, a in enumerate(argv):
        if a == flag:
            if i + 1 >= len(argv):
                raise ConfigError(f"{flag}: missing value; {USAGE}")
            value = argv[i + 1]
            del argv[i:i + 2]
            return value
        if a.startswith(flag + "="):
            del argv[i]
            return a.split("=", 1)[1]
    return None


def parse_bench_args(argv: Sequence[str]):
    """The config (validated, chunk shaped for benchmarking) and the bench's own options."""
    argv = list(argv)
    quick = "--quick" in argv
    baseline = "--no-baseline" not in argv
    parts = "--no-parts" not in argv
    profile = "--profile" in argv
    argv = [a for a in argv if a not in ("--quick", "--no-baseline", "--no-parts", "--profile")]
    out_dir = _take(argv, "--out") or DEFAULT_OUT
    precisions = [p for p in (_take(argv, "--precisions") or "").split(",") if p]
    for p in precisions:
        if p not in MATMUL_MODES:
            raise ConfigError(f"--precisions: {p!r} is not one of {list(MATMUL_MODES)}")
    sweeps = {}
    while (spec := _take(argv, "--sweep")) is not None:
        if "=" not in spec:
            raise ConfigError(f"--sweep {spec!r}: expected FIELD=V1,V2,...")
        field, values = spec.split("=", 1)
        sweeps[field] = [parse_value(v) for v in values.split(",") if v]
    devices = _take(argv, "--devices")
    try:
        device_counts = [int(d) for d in devices.split(",")] if devices else []
    except ValueError:
        raise ConfigError(f"--devices {devices!r}: expected comma-separated integers") from None
    path, overrides, _ = parse_args(argv, flag_names=(), usage=USAGE)
    cfg = load_run_config(path, overrides)
    # One chunk = `chunk` training steps; warm-up off (the buffer is pre-filled instead).
    cfg.log_every_env_steps = (1 if quick else 4) * cfg.num_envs
    cfg = _bench_config(cfg, {})
    for field, values in sweeps.items():  # every swept value must be valid before any compile
        for v in values:
            _bench_config(cfg, {field: v})
    return cfg, dict(quick=quick, baseline=baseline, parts=parts, out_dir=out_dir, precisions=precisions,
                     sweeps=sweeps, devices=device_counts, profile=profile)


def run_profile(cfg, report: dict, out_dir: str, device_kind: str, chunks: int = 2) -> int:
    """``--profile``: trace ``chunks`` fused training chunks after warm-up and write the reduced
    table as ``profile_<device>[_<sampler>][_<matmul>].{md,json}`` under ``out_dir`` (the raw
    trace stays in ``profile_trace/`` beside them). See profiling.py."""
    suffix = "".join(f"_{v}" for v, default in ((cfg.sampler, "reference"),
                                                 (cfg.matmul_precision, "float32")) if v != default)
    stem = os.path.join(out_dir, f"profile_{device_kind.replace(' ', '_').lower()}{suffix}")
    print(f"bench: profiling {chunks} chunks", flush=True)
    report["profile"] = profiling.profile_training_step(
        cfg, os.path.join(out_dir, "profile_trace"), chunks=chunks)
    print(profiling.save(report, stem))
    print(f"wrote {stem}.json and {stem}.md")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if cli.wants_help(argv):
        print(HELP)
        return 0
    command = "python -m mjx_qvpo.bench " + " ".join(argv)
    try:
        cfg, opts = parse_bench_args(argv)
        if opts["devices"]:
            from mjx_qvpo import distributed
            for d in opts["devices"]:
                distributed.check_divisibility(apply_overrides(cfg, {"num_devices": d}))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    quick = opts["quick"]
    repeats = 3 if quick else 5
    device = jax.devices()[0]
    print(f"bench: {cfg.task} on {device.device_kind} ({jax.default_backend()}), "
          f"{'quick, ' if quick else ''}{repeats} repeats", flush=True)
    results: dict = {}
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device.device_kind, "backend": jax.default_backend(),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count()},
        "versions": {"jax": jax.__version__, "python": platform.python_version()},
        "xla_flags": os.environ.get("XLA_FLAGS", ""),   # they change compile time and speed
        "command": command, "quick": quick, "repeats": repeats, "config": cfg.to_dict(),
        "results": results, "sweeps": {}, "devices": []}
    os.makedirs(opts["out_dir"], exist_ok=True)
    stem = os.path.join(opts["out_dir"],
                        f"{cfg.task}_{device.device_kind.replace(' ', '_').lower()}")

    def save() -> str:
        """Write the report so far: a later stage that fails or times out loses only itself."""
        return profiling.save(report, stem, to_markdown)

    def stage_done(name: str) -> None:
        save()
        print(f"bench: {name} done ({time.perf_counter() - t_start:.0f} s)", flush=True)

    t_start = time.perf_counter()
    if opts["profile"]:
        return run_profile(cfg, report, opts["out_dir"], device.device_kind)
    if opts["parts"]:
        run_bench(cfg, repeats=repeats, precisions=opts["precisions"], out=results,
                  on_stage=stage_done)
        stage_done("fused training step")
    if opts["baseline"] and opts["parts"] and cfg.task != "bandit":
        print("bench: Brax SAC baseline", flush=True)
        try:
            sac = brax_sac_baseline(cfg)
            results["brax_sac"] = sac
            results["brax_sac_env_steps_per_s"] = sac["env_steps_per_s"]
            results["ratio_to_brax_sac"] = results["train_env_steps_per_s"] / sac["env_steps_per_s"]
        except Exception as e:  # the baseline is a third-party trainer: report, do not lose ours
            results["brax_sac_error"] = f"{type(e).__name__}: {e}"[:300]
            print(f"bench: Brax SAC baseline failed: {results['brax_sac_error']}", flush=True)
        save()
    for field, values in opts["sweeps"].items():
        print(f"bench: sweep {field}", flush=True)
        rows = sweep(cfg, field, values, repeats)
        report["sweeps"][field] = rows
        plot_sweep(field, rows, f"{cfg.task} on {device.device_kind}: fused training step",
                   f"{stem}_sweep_{field.replace('.', '_')}.png")
        save()
    if opts["devices"]:
        print("bench: device scaling", flush=True)
        report["devices"] = device_scaling(cfg, opts["devices"], repeats)
    print(save())
    print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
