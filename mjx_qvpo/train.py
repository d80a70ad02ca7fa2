"""``python -m mjx_qvpo.train --config configs/humanoid.py [--config.field=value ...] [--resume]``
(``--help``; ``--print-config`` lists the resolved config, ``--dry-run`` the derived plan)

The host loop: validate the config, build the pure training functions, compile the training loop
once (reported apart), then call it repeatedly, logging between calls, evaluating, checkpointing
and stopping cleanly on SIGINT/SIGTERM or a non-finite quantity. Everything heavy happens inside
the compiled loop (``training.py``); this file only does I/O.

Each call's length (in training steps) is a traced argument of the one compiled loop, so the host
cuts calls exactly at the step budget, at evaluation and checkpoint boundaries, and to a time
bound (``max_chunk_seconds``) without compiling again.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np

from mjx_qvpo import checkpoint, cli, compile_cache, config, distributed
from mjx_qvpo.cli import parse_args, parse_value  # noqa: F401  (re-exported: bench, experiments)
from mjx_qvpo.config import (ConfigError, apply_overrides, config_diff, derive,
                             first_update_env_steps, from_json, load_config_file, next_boundary,
                             resolve, to_json)
from mjx_qvpo.runs import CKPT_DIR, CONFIG_FILE, METRICS_FILE, load_config, read_metrics

USAGE = ("usage: python -m mjx_qvpo.train --config CONFIG.py [--config.FIELD=VALUE ...] "
         "[--workdir RUN] [--seed S] [--resume | --overwrite] [--no-compile-cache] "
         "[--print-config [--markdown]] [--dry-run]")
FLAGS = ("resume", "overwrite", "no-compile-cache", "print-config", "markdown", "dry-run")
HELP = cli.help_text(
    "python -m mjx_qvpo.train", "Train QVPO on one task: N MJX environments and the learner in one "
    "compiled training step.\nWrites a run directory: config.json, metrics.jsonl, checkpoints/.",
    USAGE, [*cli.CONFIG_OPTIONS,
            ("--workdir RUN", "run directory (= --config.workdir; default runs/<task>-seed<seed>)"),
            ("--seed S", "PRNG seed (= --config.seed)"),
            ("--resume", "continue the run in RUN from its newest checkpoint"),
            ("--overwrite", "delete the run in RUN and start again"),
            ("--no-compile-cache", "do not use JAX's persistent compilation cache (default: on, "
                                   "in $MJX_QVPO_CACHE_DIR or ~/.cache/mjx_qvpo/jax)"),
            ("--print-config", "print the resolved config, each field with its meaning and "
                               "default, and exit"),
            ("--markdown", "with --print-config: as a Markdown table (the README's table)"),
            ("--dry-run", "validate, print the derived plan (env steps, chunks, updates, "
                          "buffer memory, time estimates) and exit; writes nothing")],
    "python -m mjx_qvpo.train --config configs/inverted_pendulum.py --workdir runs/ip --seed 1")
# Assumed sustained matmul rate of a small CPU, used only for the start-up time estimate.
_CPU_FLOPS_GUESS = 5e10


def update_flops(cfg, obs_size: int, action_size: int, policy_share: float = 1.0) -> float:
    """Matmul FLOPs of one learner update (critic + policy), from the network shapes.

    Counts 2 FLOPs per multiply-add; a backward pass counts twice its forward. The state's share
    of the first layers is counted once per state, as the implementation computes it.
    ``policy_share`` scales the policy step's part: 1 for one full update (sections 2-4), and
    ``1 / actor_update_every`` for the mean update of a run with a policy delay.
    """
    a_h = (*cfg.network.actor_hidden, action_size)
    c_h = (*cfg.network.critic_hidden, 1)
    eps_row = 2 * (action_size * a_h[0] + sum(x * y for x, y in zip(a_h[:-1], a_h[1:])))
    eps_state = 2 * obs_size * a_h[0]
    q_row = 2 * 2 * (action_size * c_h[0] + sum(x * y for x, y in zip(c_h[:-1], c_h[1:])))
    q_state = 2 * 2 * obs_size * c_h[0]
    b, t = cfg.batch_size, cfg.diffusion_steps
    k, kt = cfg.num_train_samples, cfg.num_target_samples
    rows = cfg.num_chosen + cfg.num_entropy_samples
    target = b * (eps_state + q_state) + b * kt * (t * eps_row + q_row)
    critic = 3 * b * (q_state + q_row)
    policy = b * (eps_state + q_state) + b * k * (t * eps_row + q_row) + 3 * b * (
        eps_state + rows * eps_row)
    return float(target + critic + policy_share * policy)


class _Stop:
    """Set by SIGINT/SIGTERM; the loop finishes the current call (at most about
    ``max_chunk_seconds``), checkpoints and exits."""
    def __init__(self):
        self.signal = None

    def __call__(self, signum, frame):
        if self.signal is not None:  # a second Ctrl-C: stop now (the last checkpoint stays)
            raise KeyboardInterrupt
        self.signal = signum
        print(f"\nreceived {signal.Signals(signum).name}: finishing this chunk, then "
              f"checkpointing", file=sys.stderr, flush=True)


class _Pacer:
    """Sizes host calls by time. Warm-up steps (no updates) are far cheaper than steps with
    updates, so each phase is timed apart: its first call is a one-step probe, and later calls run
    as many steps as fit in ``max_seconds`` at that phase's last measured speed."""

    def __init__(self, max_seconds: float):
        self.max_seconds = max_seconds
        self.per_step: dict[str, float] = {}

    def steps(self, phase: str, limit: int) -> int:
        """Training steps of the next call in ``phase``, at most ``limit``."""
        if self.max_seconds <= 0:
            return limit
        est = self.per_step.get(phase)
        return 1 if est is None else max(1, min(limit, int(self.max_seconds / est)))

    def record(self, update_fraction: float, steps: int, seconds: float) -> None:
        """Time of a finished call; calls that mix both kinds of step teach nothing."""
        if update_fraction in (0.0, 1.0):
            self.per_step["update" if update_fraction == 1.0 else "warm"] = seconds / steps

    def seconds_per_step(self) -> float:
        """Best guess for a step with updates (for the ETA)."""
        return self.per_step.get("update", self.per_step.get("warm", math.nan))


def prepare_workdir(workdir: str, resume: bool, overwrite: bool) -> None:
    """Never overwrite a run silently: an existing run needs --resume or --overwrite. A resumed
    directory is not written to here."""
    existing = os.path.exists(os.path.join(workdir, CONFIG_FILE)) or os.path.exists(
        os.path.join(workdir, METRICS_FILE))
    if existing and overwrite:
        shutil.rmtree(workdir)
    elif existing and not resume:
        raise ConfigError(f"run directory {workdir!r} already holds a run: pass --resume to "
                          f"continue it or --overwrite to replace it")
    elif resume and not existing:
        raise ConfigError(f"--resume: run directory {workdir!r} holds no run to resume")
    if not resume:
        os.makedirs(workdir, exist_ok=True)


def open_event_writer(workdir: str, purge_step: int | None):
    """A TensorBoard event writer in the run directory; ``purge_step`` hides the steps a resumed
    run recomputes (those after its checkpoint) in the earlier event files."""
    from tensorboardX import SummaryWriter  # imported late: only the training loop needs it
    return SummaryWriter(workdir, purge_step=purge_step, flush_secs=30)


def write_events(writer, row: dict) -> None:
    """Every numeric entry of a metrics row as a scalar, on the env-steps axis. NaN entries (a
    return before any episode finished, losses before updates begin) are left out: TensorBoard
    shows a gap, as ``plot`` does."""
    for k, v in row.items():
        if (k != "env_steps" and isinstance(v, (int, float)) and not isinstance(v, bool)
                and math.isfinite(v)):
            writer.add_scalar(k, v, row["env_steps"])
    writer.flush()


def _fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def first_nonfinite(metrics: dict) -> str | None:
    """The first non-finite quantity of a chunk's metrics (its network parameters, then its
    ``train/`` losses and statistics; values may be per-seed arrays), or None if all are finite.
    The episode window's return and length are left out: they are NaN until an episode ends."""
    if not np.all(metrics.get("finite/params", True)):
        return "network parameters"
    for k, v in metrics.items():
        if k.startswith("train/") and k not in ("train/episode_return", "train/episode_length"):
            if not np.all(np.isfinite(v)):
                return k
    return None


def _console(row: dict, eta: float) -> str:
    parts = [f"step {row['env_steps']:>10,d}", f"{row['sps']:>9,.0f} sps", f"eta {_fmt_time(eta)}"]
    for name, key in (("train_ret", "train/episode_return"), ("eval_ret", "eval/episode_return"),
                      ("critic", "train/critic_loss"), ("actor", "train/actor_loss"),
                      ("q", "train/q_best")):
        if key in row and row[key] is not None and np.isfinite(row[key]):
            parts.append(f"{name} {row[key]:.4g}")
    return " | ".join(parts)


def run(cfg, *, resume: bool = False, overwrite: bool = False,
        log: Callable[[str], None] = print) -> dict:
    """Train a validated config to ``total_env_steps`` (rounded up to a whole training step);
    returns the last metrics row.

    Exits early (after a checkpoint) on SIGINT/SIGTERM, and raises ``FloatingPointError`` on a
    non-finite loss or parameter, keeping the last good checkpoint untouched. ``resume=True``
    restores the newest checkpoint before anything in the run directory is written; one that does
    not fit this config is a ``ConfigError`` naming the fields that differ from the run's
    ``config.json``.
    """
    from mjx_qvpo.training import legacy_defaults, make_trainer  # brax/mjx import is slow

    cfg = resolve(cfg)
    distributed.check_divisibility(cfg)  # device counts are known only here; before any write
    main_process = distributed.is_main_process()
    if not main_process:  # other processes compute in lockstep but write nothing
        log = lambda line: None  # noqa: E731
    if cfg.render_every_eval:  # without OpenGL, fail before anything is written or compiled
        from mjx_qvpo import render
        render.select_gl_backend()
    workdir = cfg.workdir
    if main_process:
        prepare_workdir(workdir, resume, overwrite)
    derived = derive(cfg)
    n_envs = cfg.num_envs
    backend = jax.default_backend()
    devices = distributed.total_devices(cfg)
    log(f"mjx_qvpo: task {cfg.task}, {cfg.num_envs} envs, {cfg.updates_per_step} updates/step "
        f"(update-to-data {derived.update_to_data:.4g}), {derived.total_env_steps:,} env steps "
        f"({derived.total_steps:,} training steps), {devices} x {jax.devices()[0].device_kind} "
        f"({backend}" + (f", {jax.process_count()} processes" if jax.process_count() > 1 else "")
        + f"), workdir {workdir}")

    trainer = make_trainer(cfg)
    video_fn = None
    if cfg.render_every_eval:
        video_fn = render.make_video_fn(trainer, min(cfg.episode_length, render.EVAL_VIDEO_STEPS))
    total_updates = derived.total_steps * cfg.updates_per_step
    if backend == "cpu":
        est = total_updates * update_flops(cfg, trainer.env.observation_size,
                                           trainer.env.action_size,
                                           1 / cfg.actor_update_every) / _CPU_FLOPS_GUESS
        if est > 3600:
            log(f"note: JAX is running on the CPU and this config is sized for a GPU: roughly "
                f"{est / 3600:,.0f} hours of learner compute on this machine (a rough guess). "
                f"For a quick CPU run try: python -m mjx_qvpo.train --config "
                f"configs/inverted_double_pendulum.py")

    key = jax.random.PRNGKey(cfg.seed)
    k_init, k_eval = jax.random.split(key)
    ckpt_dir = os.path.join(workdir, CKPT_DIR)
    skip = () if cfg.checkpoint_buffer else (".buffer",)
    state, start_step = None, 0
    if resume:
        saved_cfg = (load_config(workdir) if os.path.exists(os.path.join(workdir, CONFIG_FILE))
                     else cfg)
        template = jax.eval_shape(trainer.init, k_init)
        try:
            state, start_step = restore_on_every_process(
                ckpt_dir, template, legacy_defaults(saved_cfg.total_env_steps))
        except checkpoint.LayoutError as e:
            diff = [d for d in config_diff(saved_cfg, cfg) if not d.startswith("workdir ")]
            raise ConfigError(
                f"--resume: {e}; config fields that differ from the run's {CONFIG_FILE}: "
                f"{', '.join(diff) or 'none (the checkpoint comes from another version)'}. "
                f"Nothing was written; resume with --config {os.path.join(workdir, CONFIG_FILE)} "
                f"or start a new workdir") from None
        if state is None:
            log("no checkpoint found: starting from scratch")
            start_step = 0
        else:
            state = place_state(trainer, state)
            log(f"resumed from env step {start_step:,} on {devices} device(s)")
    if state is None:
        state = jax.jit(trainer.init, out_shardings=trainer.shardings)(k_init)

    # The run directory is written only from here on: after a restore succeeded.
    metrics_path = os.path.join(workdir, METRICS_FILE)
    previous = [r for r in read_metrics(workdir) if r["env_steps"] <= start_step]
    writer, saver = None, None
    if main_process:
        with open(os.path.join(workdir, CONFIG_FILE), "w") as f:
            f.write(to_json(cfg))
        with open(metrics_path, "w") as f:  # drop rows newer than the checkpoint we resume from
            f.writelines(json.dumps(r) + "\n" for r in previous)
        writer = open_event_writer(workdir, start_step + 1 if resume else None)
        saver = checkpoint.BackgroundSaver(ckpt_dir, keep=cfg.keep_checkpoints, skip=skip)
    wall_offset = previous[-1]["wall_time"] if previous else 0.0

    t0, cpu0 = time.perf_counter(), time.process_time()
    # Evaluation is compiled up front too, so that no compile time hides in the steps/s figures.
    # Tracing and lowering are timed apart: the persistent cache skips only the XLA compile.
    # CPU seconds are reported too: on a shared machine they vary less than wall time.
    lowered = (jax.jit(trainer.run_steps, donate_argnums=0).lower(state, np.int32(1)),
               jax.jit(trainer.evaluate).lower(state, k_eval))
    trace_s = time.perf_counter() - t0
    run_fn, eval_fn = compile_cache.compile_all(lowered)
    compile_s, compile_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    cache_dir = jax.config.jax_enable_compilation_cache and jax.config.jax_compilation_cache_dir
    log(f"compiled the training chunk (any length up to {derived.steps_per_chunk} training steps "
        f"= {derived.env_steps_per_chunk:,} env steps) and evaluation in {compile_s:.1f} s "
        f"({trace_s:.1f} s tracing, {compile_s - trace_s:.1f} s XLA; {compile_cpu_s:.1f} CPU "
        f"seconds; compile cache: "
        f"{cache_dir or 'off'})")

    stopper = _Stop()
    old_handlers = {s: signal.signal(s, stopper) for s in (signal.SIGINT, signal.SIGTERM)}
    start_wall = time.perf_counter()
    pacer = _Pacer(cfg.max_chunk_seconds)
    row: dict = {}
    env_step = start_step
    step = env_step // n_envs  # training steps done
    first_update = first_update_env_steps(cfg) // n_envs  # the first training step with updates
    next_eval = next_boundary(step, cfg.eval_every_env_steps, n_envs)
    next_ckpt = next_boundary(step, cfg.checkpoint_every_env_steps, n_envs)

    def do_eval(st, at) -> dict:
        t = time.perf_counter()
        out = distributed.to_host(eval_fn(st, jax.random.fold_in(k_eval, at)))
        out = {k: float(v) for k, v in out.items()}
        out["eval/seconds"] = time.perf_counter() - t
        return out

    def do_save(st, at) -> None:
        if jax.process_count() > 1:
            st = distributed.to_host(st)  # a collective when several processes hold shards
        if main_process:  # copies to host memory now, writes in a background thread
            saver.submit(st, at)

    try:
        while step < derived.total_steps and stopper.signal is None:
            # Calls end exactly at the budget and at evaluation, checkpoint and log boundaries;
            # when paced by time also where updates begin (a phase's timing stays unmixed).
            warm = step + 1 < first_update
            ends = [derived.total_steps, next_boundary(step, cfg.log_every_env_steps, n_envs),
                    next_eval, next_ckpt,
                    first_update - 1 if warm and cfg.max_chunk_seconds > 0 else None]
            n = pacer.steps("warm" if warm else "update", min(e for e in ends if e) - step)
            if jax.process_count() > 1:  # every process must run the same loop: process 0 sizes it
                from jax.experimental import multihost_utils
                n = int(multihost_utils.broadcast_one_to_all(np.asarray(n, np.int32)))
            t = time.perf_counter()
            new_state, metrics = run_fn(state, np.int32(n))
            metrics = {k: float(v) for k, v in distributed.to_host(metrics).items()}
            dt = time.perf_counter() - t
            bad = first_nonfinite(metrics)
            new_env_step = int(new_state.env_steps)
            if bad is not None:
                raise FloatingPointError(
                    f"non-finite {bad} in the chunk ending at env step {new_env_step:,}; "
                    f"stopping. The last good checkpoint in {ckpt_dir} is kept.")
            state, env_step = new_state, new_env_step
            step = env_step // n_envs
            pacer.record(metrics["train/update_fraction"], n, dt)
            row = {"env_steps": env_step,
                   "wall_time": wall_offset + time.perf_counter() - start_wall,
                   "sps": n * n_envs / dt,
                   "updates_per_s": n * cfg.updates_per_step
                   * metrics["train/update_fraction"] / dt,
                   "compile_s": compile_s, "compile_cpu_s": compile_cpu_s, **metrics}
            final = step >= derived.total_steps
            if final or (next_eval is not None and step >= next_eval):
                row.update(do_eval(state, env_step))
                next_eval = next_boundary(step, cfg.eval_every_env_steps, n_envs)
                if video_fn is not None and main_process:
                    path = os.path.join(workdir, "videos", f"eval_{env_step:012d}.mp4")
                    video = video_fn(state, path, jax.random.fold_in(k_eval, env_step))
                    log(f"rendered {path} (return {video['returns'][0]:.4g}, "
                        f"{video['rollout_s'] + video['draw_s']:.1f} s)")
            if main_process:
                with open(metrics_path, "a") as f:
                    f.write(json.dumps(row) + "\n")
                write_events(writer, row)
            per_step = pacer.seconds_per_step()
            log(_console(row, (derived.total_steps - step) * (
                per_step if math.isfinite(per_step) else dt / n)))
            if final or stopper.signal is not None or (next_ckpt is not None
                                                       and step >= next_ckpt):
                do_save(state, env_step)
                next_ckpt = next_boundary(step, cfg.checkpoint_every_env_steps, n_envs)
        if saver is not None:
            saver.wait()  # the last checkpoint is complete before the run reports success
    finally:
        for s, h in old_handlers.items():
            signal.signal(s, h)
        if saver is not None:
            try:  # finish a pending write also when an error is on its way out
                saver.wait()
            except checkpoint.CheckpointError:
                pass
        if writer is not None:
            writer.close()
    if stopper.signal is not None and step < derived.total_steps:
        log(f"stopped at env step {env_step:,}; checkpoint saved. Resume with: python -m "
            f"mjx_qvpo.train --config {os.path.join(workdir, CONFIG_FILE)} --resume")
    else:
        log(f"done: {env_step:,} env steps in {_fmt_time(time.perf_counter() - start_wall)} "
            f"(+{compile_s:.0f} s compile); metrics in {metrics_path}")
    return row


def place_state(trainer, host_state):
    """A host (numpy) state on the trainer's devices: replicated, or split over the mesh."""
    if trainer.shardings is None:
        return jax.device_put(host_state)
    return distributed.from_host(host_state, trainer.shardings)


def restore_on_every_process(ckpt_dir: str, template, defaults: dict | None = None):
    """``checkpoint.restore_latest`` on process 0, sent to all others (no shared disk needed).
    A ``LayoutError`` on process 0 is raised on every process."""
    if jax.process_count() == 1:
        return checkpoint.restore_latest(ckpt_dir, template, defaults)
    from jax.experimental import multihost_utils
    state, step, error = None, None, None
    if distributed.is_main_process():
        try:
            state, step = checkpoint.restore_latest(ckpt_dir, template, defaults)
        except checkpoint.LayoutError as e:
            error = e
    # 0: no checkpoint, 1: found, 2: layout error (every process must raise, not wait)
    code = int(multihost_utils.broadcast_one_to_all(
        np.asarray(2 if error is not None else int(state is not None))))
    if code == 2:
        raise error if error is not None else checkpoint.LayoutError(
            "the checkpoint on process 0 does not match this config's state layout")
    if code == 0:
        return None, None
    if state is None:
        state = jax.tree.map(lambda t: np.zeros(t.shape, t.dtype), template)
    state = multihost_utils.broadcast_one_to_all(state)
    step = int(multihost_utils.broadcast_one_to_all(np.asarray(step or 0)))
    return state, step


def load_run_config(path: str, overrides: dict[str, Any]):
    """A config from a task file (``get_config()``) or a run's saved ``config.json``."""
    if path.endswith(".json"):
        with open(path) as f:
            cfg = from_json(f.read())
    else:
        cfg = load_config_file(path)
    return apply_overrides(cfg, overrides)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; bad input is one clear line on stderr and exit status 2."""
    argv = sys.argv[1:] if argv is None else argv
    if cli.wants_help(argv):
        print(HELP)
        return 0
    try:
        path, overrides, flags = parse_args(argv, FLAGS, USAGE, aliases=cli.CONFIG_ALIASES)
        if flags["markdown"] and not flags["print-config"]:
            raise ConfigError("--markdown only applies to --print-config")
        cfg = load_run_config(path, overrides)
        resolved = resolve(cfg)  # validate before anything compiles
        if flags["print-config"]:  # early exits: nothing is written or compiled
            print(config.format_config(resolved, markdown=flags["markdown"]))
            return 0
        if flags["dry-run"]:
            print(cli.describe_plan(resolved))
            return 0
        compile_cache.enable(disabled=flags.pop("no-compile-cache"))
        distributed.initialize()  # joins a multi-host run when the environment describes one
        run(cfg, resume=flags["resume"], overwrite=flags["overwrite"])
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except FloatingPointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except checkpoint.CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())
