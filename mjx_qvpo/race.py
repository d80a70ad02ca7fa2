"""``python -m mjx_qvpo.race --config configs/<task>.py --budget-s S [--seeds M] [--out DIR]``

Time to a trained policy: QVPO (this package, with the given config) against Brax's SAC
(``brax.training.agents.sac``) on the same MJX task, on the same device, one after the other in
one process, each for ``S`` seconds of *training* wall-clock per seed.

Protocol (the same for both learners):

* **Clock.** Training time only: compilation is measured and reported apart (QVPO compiles its
  chunk and evaluation ahead of time; SAC's programs are compiled by a short warm-up run of the
  same shapes into a persistent compilation cache, so its timed run loads them), and evaluation
  time is not counted. Each seed gets the whole budget (seeds run one after the other), unless
  ``--vmap-seeds`` trains QVPO's seeds together as one ``vmap`` (sensible on a GPU, where one
  small run leaves the chip idle; on a CPU it divides the budget among the seeds).
* **Evaluation.** ``num_eval_envs`` fresh episodes of ``episode_length`` steps, undiscounted
  return of each, their mean; at the start, then QVPO at the first chunk end past every
  ``S / points`` seconds of training (its best-of-K_eval evaluation, docs/algorithm.md section 5,
  is costly, so it is not run after every chunk) and SAC after every epoch (Brax's loop; its epoch
  is set to the env steps of one QVPO chunk, ``log_every_env_steps``), and both at the end. SAC
  acts deterministically (tanh of its mean). A run's return "at the budget" is its last
  evaluation.
* **Settings.** QVPO: the config file and overrides. SAC: the best settings known for that task
  (``SAC_SETTINGS``, printed and saved), overridable with ``--sac.FIELD=VALUE``.

``--sac-from RACE`` / ``--qvpo-from RACE`` take one learner's curves from an earlier race instead
of training it (``reuse_sac`` / ``reuse_qvpo`` say what must match; both together train nothing
and join a QVPO race and a SAC race of the same seeds into one), and ``--report --merge``
joins races of other seeds into one report; ``--compare A B`` sets two saved races' QVPO
returns side by side, seed for seed, at each one's budget and at equal env steps.

Writes ``DIR/race.json`` (both curves: training seconds, env steps, evaluation return, per seed;
for QVPO also the lowest and highest episode return of each evaluation and the last chunk's
mean losses and Q statistics, ``train``),
``DIR/race.md`` (return at the budget, env steps, compile times, with ``--target R`` each
seed's training time to a return of R and with ``--late-s W`` each learner's mean return over
the evaluations in the last W seconds of the budget) and ``DIR/race.png`` (return against
training wall-clock and against env steps, mean and min-max band over seeds).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from typing import Any, Callable, Sequence

if __name__ == "__main__":
    # On some CPUs XLA logs an error line for every executable it loads from the persistent
    # cache (tuning flags it cannot match on the host; harmless). The race loads SAC's programs
    # from that cache, so C++ logs below FATAL are silenced; this must precede importing jaxlib.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import jax.numpy as jnp
import numpy as np

from mjx_qvpo.config import (ConfigError, apply_overrides, config_diff, derive, from_json,
                             resolve)

# Brax SAC settings per task: the values Brax's own examples use for its MJX locomotion tasks
# (brax/training/learner and the Brax training colab: 128 envs, batch 512, 64 updates per step,
# lr 6e-4, gamma 0.997, reward scale 30 for hopper/halfcheetah/walker2d), and for the cheap tasks the
# CPU setting measured to solve inverted_double_pendulum in about 6 minutes on this project's 2-core
# CPU (64 envs, 16 updates per 64 env steps, batch 256, observation normalization).
_SAC_COMMON = dict(num_envs=64, batch_size=256, grad_updates_per_step=16, learning_rate=3e-4,
                   discounting=0.99, reward_scaling=1.0, tau=0.005, normalize_observations=True,
                   min_replay_size=1024, max_replay_size=1_000_000,
                   hidden_layer_sizes=(256, 256))
_SAC_LOCOMOTION = dict(num_envs=128, batch_size=512, grad_updates_per_step=64, learning_rate=6e-4,
                       discounting=0.997, reward_scaling=30.0, min_replay_size=8192,
                       max_replay_size=1_048_576)
SAC_SETTINGS: dict[str, dict[str, Any]] = {
    "inverted_pendulum": dict(_SAC_COMMON),
    "inverted_double_pendulum": dict(_SAC_COMMON),
    "reacher": dict(_SAC_COMMON),
    "hopper": {**_SAC_COMMON, **_SAC_LOCOMOTION},
    "walker2d": {**_SAC_COMMON, **_SAC_LOCOMOTION},
    "halfcheetah": {**_SAC_COMMON, **_SAC_LOCOMOTION},
    "ant": {**_SAC_COMMON, **_SAC_LOCOMOTION, "reward_scaling": 10.0},
    "humanoid": {**_SAC_COMMON, **_SAC_LOCOMOTION, "reward_scaling": 1.0},
}


def sac_settings(task: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """SAC hyperparameters for ``task`` with ``--sac.FIELD`` overrides (unknown fields refused)."""
    if task not in SAC_SETTINGS:
        raise ConfigError(f"race: no SAC baseline for task {task!r} (tasks with one: "
                          f"{', '.join(SAC_SETTINGS)})")
    s = dict(SAC_SETTINGS[task])
    for k, v in overrides.items():
        if k not in s:
            raise ConfigError(f"unknown SAC setting 'sac.{k}'; known: {', '.join(sorted(s))}")
        s[k] = tuple(v) if isinstance(v, list) else v
    return s


# ----------------------------------------------------------------------------------- QVPO
# An evaluation's figures per seed (mean, lowest and highest episode return), and the prefixes of
# the diagnostic evaluations' copies of them: the target actor's (``--eval-target-actor``) and
# best-of-K's with another K (``--eval-samples K``).
_EVAL_FIELDS = ("return", "return_min", "return_max")
_TARGET = "target_actor_"
_SAMPLES = "eval_samples_"
# Each diagnostic evaluation, by the key of its curve in a report: the prefix of its fields in
# QVPO's points, the key of its summary in race["qvpo"], and its name in the log (and, after
# "QVPO, ", in the report; {k} is --eval-samples' K).
_DIAGNOSTICS = {"qvpo_target": (_TARGET, "summary_target_actor", "target actor"),
                "qvpo_samples": (_SAMPLES, "summary_eval_samples", "best-of-{k}")}


def _eval_span(evals: list[dict], prefix: str = "") -> tuple[float, float, float]:
    """One evaluation over all seeds: the mean of the seeds' mean returns, and the lowest and
    highest episode return (the config's own evaluation's, or with a diagnostic's ``prefix``
    that diagnostic evaluation's)."""
    return (float(np.mean([e[prefix + "return"] for e in evals])),
            min(e[prefix + "return_min"] for e in evals),
            max(e[prefix + "return_max"] for e in evals))


def _budget_loop(step_fn: Callable[[], int], eval_fn: Callable[[], list], budget_s: float,
                 eval_every_s: float, log: Callable[[str], None], label: str,
                 diagnostic_names: Sequence[tuple[str, str]] = ()) -> list[dict]:
    """Evaluate, then run units of training (``step_fn``, returning env steps so far) until the
    training clock reaches ``budget_s``: it stops where one more unit would end further past the
    budget than the current one ends short of it. Evaluates again after the first unit that ends
    past each multiple of ``eval_every_s``, and after the last. Only ``step_fn``'s time counts.
    Returns one point per evaluation (``returns``: one dict per seed, its ``return`` the mean
    over the evaluation's episodes). Each evaluation is logged, with the diagnostic
    evaluations' figures named by ``diagnostic_names`` ((field prefix, name) pairs)."""
    points = [{"train_s": 0.0, "env_steps": 0, "returns": eval_fn()}]
    clock, durations, next_eval = 0.0, [], eval_every_s
    while True:
        t = time.perf_counter()
        env_steps = step_fn()
        durations.append(time.perf_counter() - t)
        clock += durations[-1]
        done = clock + 0.5 * float(np.median(durations)) >= budget_s
        if done or clock >= next_eval:
            points.append({"train_s": clock, "env_steps": env_steps, "returns": eval_fn()})
            evals = points[-1]["returns"]
            mean, lo, hi = _eval_span(evals)
            line = (f"  {label} {clock:7.1f} s  {env_steps:>9,d} env steps  eval "
                    f"{mean:9.1f}  (episodes {lo:.0f} to {hi:.0f})")
            for prefix, name in diagnostic_names:
                mean, lo, hi = _eval_span(evals, prefix)
                line += f"; {name} {mean:.1f} ({lo:.0f} to {hi:.0f})"
            log(line)
            while next_eval <= clock:
                next_eval += eval_every_s
        if done:
            return points


def diagnostic_configs(cfg, eval_target: bool, eval_samples: int | None) -> list[tuple]:
    """(field prefix, name in the log, config) of each diagnostic evaluation ``run_qvpo`` adds:
    the config's own evaluation with one field overridden, ``eval_actor`` "target" for the
    target actor's (``eval_target``), ``num_eval_samples`` K for best-of-K (``eval_samples``)."""
    wanted = ([("qvpo_target", {"eval_actor": "target"})] if eval_target else []) + (
        [("qvpo_samples", {"num_eval_samples": eval_samples})] if eval_samples is not None
        else [])
    return [(_DIAGNOSTICS[key][0], _DIAGNOSTICS[key][2].format(k=eval_samples),
             resolve(apply_overrides(cfg, over))) for key, over in wanted]


def run_qvpo(cfg, seeds: Sequence[int], budget_s: float, points: int, vmap_seeds: bool,
             log: Callable[[str], None] = print, eval_target: bool = False,
             eval_samples: int | None = None) -> dict:
    """Train QVPO (the compiled chunk of docs/algorithm.md section 7) for ``budget_s`` seconds
    of training per seed (or per vmapped batch of seeds), evaluating (best-of-K_eval, section 5)
    at the first chunk end past every ``budget_s / points`` seconds of training. Seed s uses the
    keys ``python -m mjx_qvpo.train --config.seed=s`` uses, and without ``vmap_seeds`` the very
    functions it compiles.

    With ``eval_target`` each evaluation is repeated, with the same key (so the same initial
    states and noise), by the *target* actor (the Polyak average of the policy, section 2;
    the config's evaluation with ``eval_actor`` "target") in place of the online one, still
    ranking its candidates with the online critic; its returns are recorded as
    ``target_actor_return``, ``target_actor_return_min`` and ``target_actor_return_max``.
    With ``eval_samples`` K each evaluation is likewise repeated with K_eval = K candidates per
    state (K = 1: the diffusion policy's own samples, no critic ranking), recorded as
    ``eval_samples_return`` (and ``_min``, ``_max``), with K as the result's ``eval_samples``.
    Diagnostics: training is unchanged, and the curves and the report use the online actor
    with the config's K_eval."""
    from mjx_qvpo import compile_cache
    from mjx_qvpo.train import first_nonfinite
    from mjx_qvpo.training import make_evaluate, make_trainer

    trainer = make_trainer(cfg, single_device=True)
    configs = diagnostic_configs(cfg, eval_target, eval_samples)
    # (prefix of its fields, evaluate function) per diagnostic evaluation.
    diagnostics = [(prefix, make_evaluate(c, trainer.env, trainer.nets))
                   for prefix, _, c in configs]
    lift = jax.vmap if vmap_seeds else (lambda f: f)
    groups = [list(seeds)] if vmap_seeds else [[s] for s in seeds]

    def keys_of(group):
        keys = [jax.random.split(jax.random.PRNGKey(s)) for s in group]
        if not vmap_seeds:
            return keys[0][0], keys[0][1]
        return jnp.stack([k[0] for k in keys]), jnp.stack([k[1] for k in keys])

    chunk_fn = eval_fn = None
    diagnostic_fns: list = []   # compiled, in the order of ``diagnostics``
    compile_s = 0.0
    out: dict[str, list] = {}
    eval_s: list[float] = []   # wall seconds of each evaluation (not on the training clock)
    t_start = time.perf_counter()
    for group in groups:
        k_init, k_eval = keys_of(group)
        state = jax.jit(lift(trainer.init))(k_init)
        if chunk_fn is None:  # every group has the same shapes: compile once
            t0 = time.perf_counter()
            programs = [jax.jit(lift(trainer.chunk), donate_argnums=0).lower(state),
                        jax.jit(lift(trainer.evaluate)).lower(state, k_eval)]
            programs += [jax.jit(lift(f)).lower(state, k_eval) for _, f in diagnostics]
            chunk_fn, eval_fn, *diagnostic_fns = compile_cache.compile_all(tuple(programs))
            compile_s = time.perf_counter() - t0
            log(f"QVPO: compiled the chunk and evaluation in {compile_s:.1f} s")
        box = {"state": state, "evals": 0, "metrics": None}

        def step():
            box["state"], m = chunk_fn(box["state"])
            box["metrics"] = m = jax.device_get(m)
            env_steps = int(np.ravel(box["state"].env_steps)[0])
            bad = first_nonfinite(m)
            if bad is not None:
                raise FloatingPointError(
                    f"QVPO seed(s) {group}: non-finite {bad} in the chunk ending at env step "
                    f"{env_steps:,}; stopping the race")
            return env_steps

        def evaluate():
            box["evals"] += 1
            fold = lambda k: jax.random.fold_in(k, box["evals"])  # noqa: E731
            t = time.perf_counter()
            m = jax.device_get(eval_fn(box["state"], lift(fold)(k_eval)))
            eval_s.append(time.perf_counter() - t)
            # The episodes' lowest and highest returns beside their mean: they tell an
            # evaluation where some episodes fall from one where all do worse.
            cols = {f: np.ravel(np.asarray(m[f"eval/episode_{f}"], float)).tolist()
                    for f in _EVAL_FIELDS}
            # The same key: the same episodes' starts (and, for the target actor, noise).
            for (prefix, _), fn in zip(diagnostics, diagnostic_fns):
                md = jax.device_get(fn(box["state"], lift(fold)(k_eval)))
                cols.update({prefix + f: np.ravel(np.asarray(md[f"eval/episode_{f}"],
                                                            float)).tolist()
                             for f in _EVAL_FIELDS})
            rows = [dict(zip(cols, row)) for row in zip(*cols.values())]
            if box["metrics"] is not None:   # the last chunk's mean losses and Q statistics
                train = {k: np.ravel(np.asarray(v, float)) for k, v in box["metrics"].items()
                         if k.startswith("train/")}
                for i, row in enumerate(rows):
                    row["train"] = {k[len("train/"):]: float(v[i]) if np.isfinite(v[i]) else None
                                    for k, v in train.items()}   # NaN: no episode ended yet
            return rows

        pts = _budget_loop(step, evaluate, budget_s, budget_s / points, log,
                           f"QVPO seed(s) {group}", [(p, name) for p, name, _ in configs])
        for i, s in enumerate(group):
            out[str(s)] = [{"train_s": p["train_s"], "env_steps": p["env_steps"],
                            **p["returns"][i]} for p in pts]
    wall_s = time.perf_counter() - t_start
    log(_wall_clock_line("QVPO", wall_s, eval_s))
    return {"compile_s": compile_s, "seeds": out, "vmap_seeds": vmap_seeds,
            "eval_s": eval_s, "wall_s": wall_s,
            **({"eval_samples": eval_samples} if eval_samples is not None else {})}


# ------------------------------------------------------------------------------------ SAC
class _BudgetReached(Exception):
    """Raised from SAC's progress callback to end ``sac.train`` at the time budget."""


def _sac_train(task: str, settings: dict, *, seed: int, num_epochs: int, epoch_env_steps: int,
               episode_length: int, num_eval_envs: int, progress_fn,
               ls_iterations: int = 0) -> None:
    """``brax.training.agents.sac.train`` with ``settings``, ``num_epochs`` epochs of
    ``epoch_env_steps`` env steps after the prefill, evaluating after each epoch, on the task
    with QVPO's physics options (``ls_iterations``, see ``envs.set_ls_iterations``)."""
    import envs
    from brax import envs as brax_envs
    from brax.training.agents.sac import networks as sac_networks
    from brax.training.agents.sac import train as sac
    from mjx_qvpo.bench import _shim_newer_jax

    _shim_newer_jax()
    s = dict(settings)
    hidden = tuple(s.pop("hidden_layer_sizes"))
    prefill = -(-s["min_replay_size"] // s["num_envs"]) * s["num_envs"]
    env = envs.set_ls_iterations(brax_envs.get_environment(task, backend="mjx"), ls_iterations)
    sac.train(environment=env, num_timesteps=prefill + num_epochs * epoch_env_steps,
              num_evals=num_epochs + 1, episode_length=episode_length,
              num_eval_envs=num_eval_envs, deterministic_eval=True, seed=seed,
              max_devices_per_host=1, progress_fn=progress_fn,
              network_factory=functools.partial(sac_networks.make_sac_networks,
                                                hidden_layer_sizes=hidden), **s)


def sac_budget_reached(clock: float, epoch_times: Sequence[float], budget_s: float) -> bool:
    """SAC's stopping test after an epoch that ended at ``clock`` seconds of training: stop if
    half a median epoch (of ``epoch_times`` so far) would reach ``budget_s``, so the last epoch
    ends as close to the budget as the epoch length allows."""
    return clock + 0.5 * float(np.median(epoch_times)) >= budget_s


def run_sac(task: str, settings: dict, seeds: Sequence[int], budget_s: float,
            epoch_env_steps: int, episode_length: int, num_eval_envs: int,
            log: Callable[[str], None] = print,
            on_point: Callable[[dict], None] | None = None, ls_iterations: int = 0) -> dict:
    """Brax SAC for ``budget_s`` seconds of training per seed, evaluated after every epoch of
    ``epoch_env_steps`` env steps (Brax's own loop; deterministic actions).

    A warm-up run of one epoch with the same shapes compiles every SAC program (prefill,
    training epoch, evaluator) into the persistent compilation cache first, so the timed runs
    load them; SAC's compile time is the warm-up's time less its epoch of training and its two
    evaluations' running time. (One epoch, not more: on a GPU each epoch and evaluation of the
    warm-up costs tens of seconds of a time-limited device call.) The clock
    is Brax's ``training/walltime`` (replay prefill and epochs; evaluation excluded).

    ``on_point``, if given, receives the result so far (marked ``"partial": True``) after every
    timed evaluation, so that a run cut off by a time limit (a device call) keeps its curve.
    ``ls_iterations`` is QVPO's config field of that name: both learners step the same physics."""
    n = settings["num_envs"]
    epoch_env_steps = max(1, epoch_env_steps // n) * n
    warm: list[dict] = []
    log("SAC: warm-up run (prefill, one epoch, two evaluations), which compiles its programs")
    t0 = time.perf_counter()
    _sac_train(task, settings, seed=seeds[0], num_epochs=1, epoch_env_steps=epoch_env_steps,
               episode_length=episode_length, num_eval_envs=num_eval_envs,
               progress_fn=lambda step, m: warm.append(m), ls_iterations=ls_iterations)
    warm_s = time.perf_counter() - t0
    # Brax's evaluator times itself cumulatively over a run; the first of the warm-up's two
    # evaluations includes compiling the evaluator. On a GPU the evaluations are no small part
    # of the warm-up (24-37 s each for 16 halfcheetah episodes on an H200, session 17).
    cumulative = [float(m["eval/walltime"]) for m in warm if "eval/walltime" in m]
    warm_evals = np.diff([0.0, *cumulative]).tolist()
    log(f"SAC: warm-up run took {warm_s:.1f} s, of which {sum(warm_evals):.1f} s in its "
        f"evaluations (the first with the evaluator's compile)")
    out, epoch_times, eval_s = {}, [], []

    def result(seeds: dict) -> dict:
        # The warm-up less its epoch and the running time of its evaluations: the second as
        # timed, the first as long as the timed run's first (the same program, loaded
        # from the cache, on a policy at initialization).
        compile_s = (warm_s - float(np.median(epoch_times)) - sum(warm_evals[1:])
                     - (eval_s[0] if warm_evals and eval_s else 0.0))
        return {"compile_s": max(0.0, compile_s), "warmup_s": warm_s,
                "warmup_eval_s": warm_evals, "epoch_env_steps": epoch_env_steps, "seeds": seeds,
                "eval_s": list(eval_s), "wall_s": time.perf_counter() - t0}
    for seed in seeds:
        pts: list[dict] = []
        last = [0.0, 0.0]   # training clock and evaluation wall-clock at the previous epoch

        def progress(step, m, pts=pts, last=last):
            clock = float(m.get("training/walltime", 0.0))
            pts.append({"train_s": clock, "env_steps": int(step),
                        "return": float(m["eval/episode_reward"])})
            if "eval/walltime" in m:   # Brax's evaluator times itself, cumulatively per run
                eval_s.append(float(m["eval/walltime"]) - last[1])
                last[1] = float(m["eval/walltime"])
            if not step:
                return
            epoch_times.append(clock - last[0])
            last[0] = clock
            log(f"  SAC seed {seed} {clock:7.1f} s  {int(step):>9,d} env steps  eval "
                f"{pts[-1]['return']:9.1f}")
            if on_point is not None:
                on_point({**result({**out, str(seed): list(pts)}), "partial": True})
            if sac_budget_reached(clock, epoch_times, budget_s):
                raise _BudgetReached

        try:
            _sac_train(task, settings, seed=seed, num_epochs=1_000_000,
                       epoch_env_steps=epoch_env_steps, episode_length=episode_length,
                       num_eval_envs=num_eval_envs, progress_fn=progress,
                       ls_iterations=ls_iterations)
        except _BudgetReached:
            pass
        out[str(seed)] = pts
    final = result(out)
    log(f"SAC: compile (warm-up run less its epoch and its evaluations) "
        f"{final['compile_s']:.1f} s")
    log(_wall_clock_line("SAC", final["wall_s"], eval_s))
    return final


# A learner's wall-clock figures describe the process that trained it: a race that reuses or
# merges curves does not carry them over (its report would count another process's time).
_RUN_TIMES = ("wall_s", "eval_s")
# A learner's summaries, rewritten by every report.
_SUMMARIES = ("summary", *(summary for _, summary, _ in _DIAGNOSTICS.values()))


def _load_race(path: str, flag: str = "--merge") -> dict:
    """A saved race (its race.json or directory), with ``path`` recorded; ConfigError if absent."""
    file = os.path.join(path, "race.json") if os.path.isdir(path) else path
    if not os.path.exists(file):
        raise ConfigError(f"{flag}: {file} does not exist")
    with open(file) as f:
        return {**json.load(f), "path": file}


def qvpo_settings(qvpo_config: dict, *also: str) -> dict:
    """A saved QVPO config without ``workdir`` (where a train run would write, derived from the
    seed by default; it changes no curve) and without the fields in ``also``: what two races'
    QVPO configs must agree on to be joined or reused. Fields added to the config since the race
    was saved take their defaults, nested ones included (``config.from_json``, which gives them
    to older runs), since the race ran what those defaults do."""
    filled = config_json(from_json(json.dumps(qvpo_config)))
    return {k: v for k, v in filled.items() if k not in ("workdir", *also)}


def merge_races(races: Sequence[dict]) -> dict:
    """One race from several that differ only in their seeds (for example seeds raced in separate
    processes): same task, device, budget, evaluation protocol, QVPO config apart from ``seed``
    and ``workdir``,
    SAC settings and learners; the seeds must not overlap. Compile times are the parts' means;
    ``parts`` keeps each part's path, command and SAC source. Raises ConfigError naming what
    differs."""
    first = races[0]

    def key(r):
        cfg = qvpo_settings(r["qvpo_config"], "seed")
        return (r["task"], r["device"], r["budget_s"], r["num_eval_envs"], r["episode_length"],
                json.dumps(cfg, sort_keys=True), json.dumps(r.get("sac_settings"), sort_keys=True),
                "qvpo" in r, "sac" in r)
    names = ("task", "device", "budget_s", "num_eval_envs", "episode_length", "qvpo_config",
             "sac_settings", "QVPO curves", "SAC curves")
    ref = key(first)  # once: qvpo_settings fills the saved config through from_json
    for r in races[1:]:
        for name, a, b in zip(names, ref, key(r)):
            if a != b:
                raise ConfigError(f"--merge: {r['path']} and {first['path']} differ in {name}")
    # Parts with and without --eval-samples merge (the diagnostic curve then has too few seeds
    # and is left out), but not two different K: the curve's label would be wrong for some.
    ks = {r["qvpo"]["eval_samples"] for r in races if "eval_samples" in r.get("qvpo", {})}
    if len(ks) > 1:
        raise ConfigError(f"--merge: the races' QVPO diagnostic evaluations used different "
                          f"--eval-samples ({sorted(ks)})")
    seeds = [s for r in races for s in r["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--merge: the races share seeds ({sorted(seeds)})")
    out = {k: v for k, v in first.items()
           if k not in ("path", "sac_from", "qvpo_from", "qvpo", "sac")}
    out["seeds"] = seeds
    out["command"] = " ; ".join(r["command"] for r in races)
    out["parts"] = [{"path": r["path"], "command": r["command"], "sac_from": r.get("sac_from"),
                     "qvpo_from": r.get("qvpo_from")} for r in races]
    for name in ("sac_from", "qvpo_from"):
        reused = [r[name] for r in races if name in r]
        if reused:
            out[name] = {"path": ", ".join(x["path"] for x in reused),
                         "command": " ; ".join(x["command"] for x in reused)}
    for name in ("qvpo", "sac"):
        if name in first:
            part = {k: v for k, v in first[name].items()
                    if k not in ("seeds", *_SUMMARIES, *_RUN_TIMES)}
            part["compile_s"] = float(np.mean([r[name]["compile_s"] for r in races]))
            part.pop("partial", None)
            if any(r[name].get("partial") for r in races):   # one cut-off part cuts the whole
                part["partial"] = True
            if name == "qvpo" and ks:
                part["eval_samples"] = ks.pop()
            part["seeds"] = {s: pts for r in races for s, pts in r[name]["seeds"].items()}
            out[name] = part
    return out


def reuse_sac(path: str, cfg, seeds: Sequence[int], budget_s: float, device: str) -> dict:
    """SAC's curves for ``seeds`` from an earlier race (``path``: its race.json or directory),
    cut at ``budget_s`` by ``run_sac``'s stopping test (``sac_budget_reached``, with that seed's
    epoch times so far). SAC does not depend on QVPO's learner settings, so a
    baseline need not be retrained for every QVPO variant; the earlier race must be on the same
    task, physics (``ls_iterations``; races saved before the field had 0), device kind and
    evaluation protocol, and have run every one of ``seeds`` for at least ``budget_s``. Raises
    ConfigError naming what differs.
    Returns ``{"sac", "settings", "source"}``."""
    old = _load_race(path, "--sac-from")
    file = old["path"]
    if "sac" not in old:
        raise ConfigError(f"--sac-from: {file} has no SAC curves (a --no-sac race)")
    if old["sac"].get("partial"):
        raise ConfigError(f"--sac-from: {file} has SAC curves cut off before its budget")
    for key, ours in (("task", cfg.task), ("device", device),
                      ("num_eval_envs", cfg.num_eval_envs),
                      ("episode_length", cfg.episode_length)):
        if old.get(key) != ours:
            raise ConfigError(f"--sac-from: {file} has {key} {old.get(key)!r}, this race "
                              f"{ours!r}")
    old_ls = race_ls_iterations(old)
    if old_ls != cfg.ls_iterations:
        raise ConfigError(f"--sac-from: {file} has ls_iterations {old_ls} (its physics), this "
                          f"race {cfg.ls_iterations}")
    missing = [s for s in seeds if str(s) not in old["sac"]["seeds"]]
    if missing:
        raise ConfigError(f"--sac-from: {file} has SAC seeds {sorted(old['sac']['seeds'])}, "
                          f"not {missing}")
    if old["budget_s"] < budget_s:
        raise ConfigError(f"--sac-from: {file} ran {old['budget_s']:g} s per seed, less than "
                          f"--budget-s {budget_s:g}")
    curves = {}
    for s in seeds:
        pts = old["sac"]["seeds"][str(s)]
        keep, epochs = [pts[0]], []   # pts[0] is the evaluation before training
        for p in pts[1:]:
            epochs.append(p["train_s"] - keep[-1]["train_s"])
            keep.append(p)
            if sac_budget_reached(p["train_s"], epochs, budget_s):
                break
        curves[str(s)] = keep
    sac = {k: v for k, v in old["sac"].items()
           if k not in ("seeds", *_SUMMARIES, *_RUN_TIMES)}
    sac["seeds"] = curves
    return {"sac": sac, "settings": old["sac_settings"],
            "source": {"path": file, "command": old["command"], "budget_s": old["budget_s"]}}


def config_json(cfg) -> dict:
    """A resolved config as the plain JSON dict a race saves (tuples become lists)."""
    return json.loads(json.dumps(cfg.to_dict(), default=list))


def reuse_qvpo(path: str, qvpo_config: dict, budget_s: float, device: str) -> dict:
    """QVPO's curves from an earlier race (``path``: its race.json or directory), so that a race
    trains SAC alone (``--qvpo-from``, e.g. a SAC seed for a ``--no-sac`` race). QVPO's curves
    depend on its whole config (seed included) and on the budget (its evaluation times), so the
    earlier race must have the same resolved QVPO config and the same ``budget_s``, on the same
    device kind. Raises ConfigError naming what differs. Returns ``{"qvpo", "source"}``."""
    old = _load_race(path, "--qvpo-from")
    file = old["path"]
    if "qvpo" not in old:
        raise ConfigError(f"--qvpo-from: {file} has no QVPO curves")
    if old.get("device") != device:
        raise ConfigError(f"--qvpo-from: {file} has device {old.get('device')!r}, this race "
                          f"{device!r}")
    if old["budget_s"] != budget_s:
        raise ConfigError(f"--qvpo-from: {file} ran {old['budget_s']:g} s per seed, this race "
                          f"--budget-s {budget_s:g} (QVPO's curves are not cut)")
    before, now = qvpo_settings(old["qvpo_config"]), qvpo_settings(qvpo_config)
    differ = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    if differ:
        raise ConfigError(f"--qvpo-from: {file} has another QVPO config "
                          f"(fields {', '.join(differ)})")
    qvpo = {k: v for k, v in old["qvpo"].items() if k not in (*_SUMMARIES, *_RUN_TIMES)}
    return {"qvpo": qvpo, "source": {"path": file, "command": old["command"],
                                     "budget_s": old["budget_s"]}}


# -------------------------------------------------------------------------------- reporting
def curve_on_grid(points: list[dict], x_key: str, grid: np.ndarray) -> np.ndarray:
    """A seed's evaluation return as a step function of ``x_key``: at each grid value, the last
    evaluation at or before it (NaN past the seed's last evaluation)."""
    x = np.array([p[x_key] for p in points], float)
    y = np.array([p["return"] for p in points], float)
    idx = np.searchsorted(x, grid, side="right") - 1
    vals = y[np.clip(idx, 0, len(y) - 1)]
    return np.where((idx >= 0) & (grid <= x[-1] * 1.0001), vals, np.nan)


def seed_mean_band(seeds: Sequence[list[dict]], x_key: str, grid: np.ndarray,
                   hold_last: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max over seeds of their step-function curves on ``grid`` (NaN where no seed
    has one). The mean is drawn only where every seed has a value, so that it never turns into a
    subset of the seeds near the end. With ``hold_last`` each seed keeps its last evaluation to
    the end of the grid: right on the wall-clock axis, where every seed trained for the same
    budget and its last evaluation is its return at the budget (the seeds' last evaluations then
    differ by fractions of a second); wrong on the env-steps axis, where seeds end at different
    env steps."""
    ys = np.array([curve_on_grid(pts, x_key, grid) for pts in seeds])
    if hold_last:
        for y, pts in zip(ys, seeds):
            y[grid > pts[-1][x_key]] = pts[-1]["return"]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: no seed there yet
        mean = np.where(np.isfinite(ys).all(axis=0), ys.mean(axis=0), np.nan)
        return mean, np.nanmin(ys, axis=0), np.nanmax(ys, axis=0)


def first_reaching(points: list[dict], target: float) -> dict | None:
    """The first evaluation whose return is at least ``target`` (None if none is)."""
    return next((p for p in points if p["return"] >= target), None)


def late_returns(points: list[dict], from_s: float) -> list[float]:
    """The returns of a seed's evaluations taken at or after ``from_s`` seconds of training."""
    return [p["return"] for p in points if p["train_s"] >= from_s]


def summarize(result: dict, target: float | None = None,
              late: tuple[float, float] | None = None) -> dict:
    """Return at the budget (each seed's last evaluation), mean, std and env steps reached; with
    ``target``, each seed's training time and env steps at its first evaluation at or above it
    (None where it never got there); with ``late`` = (W, budget), each seed's mean return over
    its evaluations in the last W seconds of the budget (None where it has none there, e.g. a
    cut-off run), their mean and std over the seeds that have one, and how many evaluations each
    mean is over. A hopping policy's return swings from one evaluation to the next, so the last
    evaluation alone depends on where the budget falls along a swing; the late mean less so."""
    finals = [pts[-1] for pts in result["seeds"].values()]
    r = np.array([p["return"] for p in finals])
    # Per seed unrounded: the report rounds each figure once, so one seed's return and the
    # mean of one seed print alike (406.55 had printed as 407 and, rounded twice, 406).
    out = {"final_return_per_seed": r.tolist(), "final_return_mean": float(r.mean()),
           "final_return_std": float(r.std()),
           "final_train_s": [round(p["train_s"], 1) for p in finals],
           "final_env_steps": [p["env_steps"] for p in finals]}
    if target is not None:
        hits = [first_reaching(pts, target) for pts in result["seeds"].values()]
        out.update(target=target,
                   time_to_target_s=[None if h is None else round(h["train_s"], 1) for h in hits],
                   env_steps_to_target=[None if h is None else h["env_steps"] for h in hits])
    if late is not None:
        window_s, budget_s = late
        per_seed = [late_returns(pts, budget_s - window_s) for pts in result["seeds"].values()]
        means = [float(np.mean(x)) if x else None for x in per_seed]
        have = [m for m in means if m is not None]
        out.update(late_s=window_s, late_return_per_seed=means,
                   late_evals=[len(x) for x in per_seed],
                   late_return_mean=float(np.mean(have)) if have else None,
                   late_return_std=float(np.std(have)) if have else None)
    return out


def last_at_or_before(points: list[dict], env_steps: int) -> dict:
    """The last evaluation taken at or before ``env_steps`` (the first one if none is)."""
    return ([p for p in points if p["env_steps"] <= env_steps] or points[:1])[-1]


def compare_races(a: dict, b: dict) -> str:
    """A paired table of two races' QVPO curves, seed for seed over the seeds both trained:
    each one's return at its budget (its last evaluation) and at equal env steps, i.e. each
    one's last evaluation at or before the smaller of the two final env-step counts. Races on
    machines of other speeds (or configs of other costs) reach other env steps in the same
    seconds; the equal-env-steps columns compare what they learned per env step, the
    at-the-budget ones what they reached on their clock. Also names the QVPO config fields that
    differ. Raises ConfigError where the races share no seed."""
    ca, cb = a["qvpo"]["seeds"], b["qvpo"]["seeds"]
    seeds = sorted(set(ca) & set(cb), key=int)
    if not seeds:
        raise ConfigError(f"--compare: {a['path']} and {b['path']} share no QVPO seed "
                          f"({sorted(ca, key=int)} and {sorted(cb, key=int)})")
    differ = config_diff(*(qvpo_settings(r["qvpo_config"], "seed") for r in (a, b)))
    rows = ["| seed | A at its budget (env steps) | B at its budget (env steps) | equal env "
            "steps | A then | B then |", "|---|---|---|---|---|---|"]
    cols = {name: [] for name in ("a_end", "b_end", "a_eq", "b_eq")}
    cell = lambda p: f"{p['return']:,.0f} ({int(p['env_steps']):,})"  # noqa: E731
    for s in seeds:
        ea, eb = ca[s][-1], cb[s][-1]
        equal = int(min(ea["env_steps"], eb["env_steps"]))
        qa, qb = last_at_or_before(ca[s], equal), last_at_or_before(cb[s], equal)
        for name, p in zip(cols, (ea, eb, qa, qb)):
            cols[name].append(p["return"])
        rows.append(f"| {s} | {cell(ea)} | {cell(eb)} | {equal:,} | {cell(qa)} | {cell(qb)} |")
    stat = {k: f"**{np.mean(v):,.0f} +- {np.std(v):,.0f}**" for k, v in cols.items()}
    rows.append(f"| mean +- std | {stat['a_end']} | {stat['b_end']} | | {stat['a_eq']} | "
                f"{stat['b_eq']} |")
    head = "\n".join(
        f"- {name}: `{r['path']}`, {r['task']} on {r['device']}, {r['budget_s']:.0f} s per seed "
        f"(`{r['command']}`)" for name, r in (("A", a), ("B", b)))
    return (f"QVPO, race A against race B, seeds {', '.join(seeds)} (each cell: the return "
            f"of one evaluation, {a['num_eval_envs']} episodes, and its env steps).\n\n{head}\n"
            f"- QVPO config fields that differ (A -> B): {'; '.join(differ) or 'none'}\n\n"
            + "\n".join(rows) + "\n")


def _wall_clock_line(label: str, wall_s: float, eval_s: Sequence[float]) -> str:
    """"LABEL: W s of wall-clock in all, of which N evaluations E s (median M s)": a learner's
    whole time (compile, training, evaluations) and its evaluations' share, the figures that size
    a race to a device call. Logged at the end of each learner and written into race.md."""
    return (f"{label}: {wall_s:,.0f} s of wall-clock in all"
            + (f", of which {len(eval_s)} evaluations {sum(eval_s):,.0f} s (median "
               f"{float(np.median(eval_s)):.1f} s)" if eval_s else ""))


def _wall_clock_note(race: dict, learners: Sequence[str]) -> str:
    """``_wall_clock_line`` for each learner that recorded its times (races since session 12),
    as a Markdown list; empty when none did."""
    labels = {"qvpo": "QVPO", "sac": "Brax SAC"}
    lines = ["- " + _wall_clock_line(labels[name], race[name]["wall_s"],
                                     race[name].get("eval_s") or []) + "."
             for name in learners if "wall_s" in race[name]]
    return "\n" + "\n".join(lines) + "\n" if lines else ""


def diagnostic_curves(result: dict, prefix: str) -> dict | None:
    """QVPO's curves as a diagnostic evaluation saw them (``prefix`` _TARGET: the target actor's,
    ``--eval-target-actor``; _SAMPLES: best-of-K with ``--eval-samples`` K): each point with
    ``return`` (and its min and max) replaced by that evaluation's, so that ``summarize`` and the
    plot read them like any curve; None unless every evaluation of every seed has one."""
    seeds = result["seeds"]
    if not all(prefix + "return" in p for pts in seeds.values() for p in pts):
        return None
    return {"compile_s": result["compile_s"],
            "seeds": {s: [{"train_s": p["train_s"], "env_steps": p["env_steps"],
                           **{f: p[prefix + f] for f in _EVAL_FIELDS}} for p in pts]
                      for s, pts in seeds.items()}}


# The curves a report shows: key in the race (or in _DIAGNOSTICS, derived from QVPO's
# diagnostic evaluations), label, colour, line style.
_CURVES = (("qvpo", "QVPO", "C0", "-"),
           ("qvpo_target", "QVPO, " + _DIAGNOSTICS["qvpo_target"][2], "C0", "--"),
           ("qvpo_samples", "QVPO, " + _DIAGNOSTICS["qvpo_samples"][2], "C0", ":"),
           ("sac", "Brax SAC", "C3", "-"))


def _report_curves(race: dict) -> list[tuple[str, dict, str, str, str]]:
    """(key, result, label, colour, line style) of each curve in ``race``, in ``_CURVES``
    order; QVPO's diagnostic curves (target actor, other K_eval) where they were recorded."""
    results = {k: race[k] for k in ("qvpo", "sac") if k in race}
    for key, (prefix, _, _) in _DIAGNOSTICS.items():
        if "qvpo" in race and (view := diagnostic_curves(race["qvpo"], prefix)) is not None:
            results[key] = view
    k = race.get("qvpo", {}).get("eval_samples")
    cut = " (cut off before the budget)" if race.get("sac", {}).get("partial") else ""
    return [(key, results[key], label.format(k=k) + (cut if key == "sac" else ""), color, ls)
            for key, label, color, ls in _CURVES if key in results]


def check_late_s(late_s: float | None, budget_s: float | None) -> None:
    """``--late-s W`` must be a window inside the budget: 0 < W <= budget (``budget_s`` None:
    not known yet, W > 0 only); ConfigError if not."""
    if late_s is not None and (late_s <= 0 or budget_s is not None and late_s > budget_s):
        bound = "" if budget_s is None else f" and at most the budget ({budget_s:g} s)"
        raise ConfigError(f"--late-s must be > 0{bound}, got {late_s:g}")


def write_report(race: dict, out: str, target: float | None = None,
                 late_s: float | None = None) -> str:
    """Summaries into ``race`` (with ``target``: time to reach it; with ``late_s``: the mean over
    the evaluations in the last ``late_s`` seconds of the budget), ``race.md`` (one row per
    learner, and one for each of QVPO's diagnostic evaluations that was recorded) and
    ``race.png`` in ``out``; returns the Markdown."""
    check_late_s(late_s, race["budget_s"])
    learners = [k for k in ("qvpo", "sac") if k in race]
    curves = _report_curves(race)
    late = None if late_s is None else (late_s, race["budget_s"])
    summaries = {key: summarize(result, target, late) for key, result, *_ in curves}
    for key, summary in summaries.items():
        if key in _DIAGNOSTICS:
            race["qvpo"][_DIAGNOSTICS[key][1]] = summary
        else:
            race[key]["summary"] = summary
    head = ("| learner | return at the budget (mean +- std) | per seed | training s at the last "
            "evaluation | env steps then | compile s |")
    rows = [head, "|---|---|---|---|---|---|"]
    if target is not None:
        rows[0] += f" training s to reach {target:g} | env steps then |"
        rows[1] += "---|---|"
    if late_s is not None:
        rows[0] += (f" mean over the last {late_s:g} s (mean +- std) | per seed (evaluations "
                    f"averaged) |")
        rows[1] += "---|---|"
    for key, result, label, *_ in curves:
        s = summaries[key]
        row = (f"| {label} | {s['final_return_mean']:,.0f} +- "
               f"{s['final_return_std']:,.0f} | {', '.join(f'{x:,.0f}' for x in s['final_return_per_seed'])} | "
               f"{', '.join(f'{x:.0f}' for x in s['final_train_s'])} | "
               f"{', '.join(f'{x:,}' for x in s['final_env_steps'])} | {result['compile_s']:.0f} |")
        if target is not None:
            fmt = lambda xs, f: ", ".join("never" if x is None else f.format(x) for x in xs)  # noqa
            row += (f" {fmt(s['time_to_target_s'], '{:.0f}')} | "
                    f"{fmt(s['env_steps_to_target'], '{:,}')} |")
        if late_s is not None:
            row += (" none |" if s["late_return_mean"] is None else
                    f" {s['late_return_mean']:,.0f} +- {s['late_return_std']:,.0f} |")
            row += " " + ", ".join("none" if m is None else f"{m:,.0f} ({n})" for m, n in
                                   zip(s["late_return_per_seed"], s["late_evals"])) + " |"
        rows.append(row)
    ls_iterations = race_ls_iterations(race)
    text = (f"{race['task']} on {race['device']}, {race['budget_s']:.0f} s of training per learner "
            f"and seed, seeds {race['seeds']}; evaluation: {race['num_eval_envs']} episodes of "
            f"{race['episode_length']} steps.\n\nCommand: `{race['command']}`\n\n"
            + ("" if not ls_iterations else _physics_line(ls_iterations) + "\n\n")
            + ("" if "sac_from" not in race else
               f"SAC's curves were not (all) trained by this race: reused from "
               f"`{race['sac_from']['path']}` "
               f"(`{race['sac_from']['command']}`), cut at this budget.\n\n")
            + ("" if not race.get("sac", {}).get("partial") else
               "**SAC's run was cut off before the budget** (the process ended): its row and "
               "curve stop at its last evaluation before the cut.\n\n")
            + ("" if "qvpo_from" not in race else
               f"QVPO's curves were not (all) trained by this race: reused from "
               f"`{race['qvpo_from']['path']}` (`{race['qvpo_from']['command']}`).\n\n")
            + "\n".join(rows) + "\n" + _wall_clock_note(race, learners))
    with open(os.path.join(out, "race.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "race.json"), "w") as f:
        json.dump(race, f, indent=1)
    plot_race(race, os.path.join(out, "race.png"))
    return text


def plot_race(race: dict, path: str) -> None:
    """Two panels: evaluation return against training seconds and against env steps; mean over
    seeds with a min-max band, one colour per learner (``seed_mean_band``)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, result, label, color, ls in _report_curves(race):
        seeds = list(result["seeds"].values())
        for ax, key in zip(axes, ("train_s", "env_steps")):
            hi = max(p[key] for pts in seeds for p in pts)
            grid = np.linspace(0, hi, 200)
            mean, lo, up = seed_mean_band(seeds, key, grid, hold_last=key == "train_s")
            ok = np.isfinite(lo)
            ax.plot(grid, mean, color=color, ls=ls, label=f"{label}, {len(seeds)} seed(s)")
            if name not in _DIAGNOSTICS:   # their bands would hide the online actor's
                ax.fill_between(grid[ok], lo[ok], up[ok], color=color, alpha=0.15)
    axes[0].set_xlabel("training wall-clock (s, compile and evaluation excluded)")
    axes[1].set_xlabel("env steps")
    for ax in axes:
        ax.set_ylabel("evaluation return")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{race['task']} on {race['device']}: {race['budget_s']:.0f} s of training "
                 f"per learner and seed", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------ command line
def parse_cli(argv: Sequence[str]) -> tuple[argparse.Namespace, dict, dict]:
    """Race flags plus ``--config.FIELD=VALUE`` (QVPO) and ``--sac.FIELD=VALUE`` overrides."""
    from mjx_qvpo.cli import CONFIG_ALIASES, ArgumentParser, split_overrides

    p = ArgumentParser(prog="python -m mjx_qvpo.race", description=__doc__.split("\n\n")[1],
                       example="python -m mjx_qvpo.race --config configs/inverted_double_pendulum"
                               ".py --budget-s 300 --seeds 3 --out runs/race/idp")
    p.add_argument("--config",
                   help="QVPO config file (configs/<task>.py); --config.FIELD=VALUE overrides a "
                        "field of it, --sac.FIELD=VALUE a SAC setting")
    p.add_argument("--seed", type=int, default=None,
                   help="first seed (same as --config.seed); seeds S, S+1, ... are raced")
    p.add_argument("--budget-s", type=float,
                   help="seconds of training wall-clock per learner and seed")
    p.add_argument("--seeds", type=int, default=1, help="seeds per learner, from config.seed on")
    p.add_argument("--out", default=None, help="output directory (default runs/race/<task>)")
    p.add_argument("--points", type=int, default=15,
                   help="QVPO evaluations after the initial one: at the first chunk end past "
                        "every budget/points seconds of training (SAC: after every epoch)")
    p.add_argument("--sac-epoch-env-steps", type=int, default=None, metavar="N",
                   help="env steps of SAC's epoch, after each of which it is evaluated "
                        "(rounded down to a multiple of its num_envs; default: QVPO's chunk). "
                        "Larger epochs mean fewer evaluations, where they are slow (a GPU)")
    p.add_argument("--vmap-seeds", action="store_true",
                   help="train QVPO's seeds as one vmapped batch sharing the budget")
    p.add_argument("--no-sac", action="store_true", help="QVPO only (no baseline)")
    p.add_argument("--sac-from", default=None, metavar="RACE",
                   help="do not train SAC: take its curves from an earlier race (its race.json "
                        "or directory) on the same task, device and evaluation protocol, cut at "
                        "this budget; the report names the source")
    p.add_argument("--qvpo-from", default=None, metavar="RACE",
                   help="do not train QVPO: take its curves from an earlier race with the same "
                        "QVPO config (seed included), budget and device, and train SAC alone; "
                        "with --sac-from too, train nothing: one race joined from a QVPO race "
                        "and a SAC race of the same seeds")
    p.add_argument("--eval-target-actor", action="store_true",
                   help="also evaluate QVPO's target actor (the Polyak average of its policy) "
                        "at each evaluation, with the same episodes; recorded in race.json as "
                        "target_actor_return (a diagnostic: the curves use the online actor)")
    p.add_argument("--eval-samples", type=int, default=None, metavar="K",
                   help="also evaluate QVPO best-of-K with this K (1: the diffusion policy's "
                        "own samples, no critic ranking) at each evaluation, from the same "
                        "initial states; recorded in race.json as eval_samples_return (a "
                        "diagnostic: the curves use the config's num_eval_samples)")
    p.add_argument("--target", type=float, default=None,
                   help="also report each seed's training time to its first evaluation return "
                        "at or above this value")
    p.add_argument("--late-s", type=float, default=None, metavar="W",
                   help="also report each learner's mean return over its evaluations in the "
                        "last W seconds of the budget (per seed, then mean +- std over seeds): "
                        "steadier than the last evaluation alone where returns swing")
    p.add_argument("--report", action="store_true",
                   help="train nothing: rewrite race.md and race.png from OUT/race.json "
                        "(e.g. with another --target)")
    p.add_argument("--merge", nargs="+", default=None, metavar="RACE",
                   help="with --report: first write OUT/race.json from these races (their "
                        "race.json or directories), which differ only in their seeds")
    p.add_argument("--compare", nargs=2, default=None, metavar=("A", "B"),
                   help="train nothing: print QVPO's returns of two saved races seed for seed, "
                        "at each one's budget and at equal env steps (with --out DIR also "
                        "DIR/compare.md)")
    (config_over, sac_over), rest = split_overrides(argv, ("--config.", "--sac."))
    ns = p.parse_args(rest)
    if ns.compare is not None or ns.report:
        # Both read saved races and train nothing, so an override would be silently ignored.
        mode = "--compare" if ns.compare is not None else "--report"
        ignored = [f"--config.{k}" for k in config_over] + [f"--sac.{k}" for k in sac_over]
        ignored += [flag for flag, given in (("--config", ns.config is not None),
                                             ("--seed", ns.seed is not None)) if given]
        if ignored:
            raise ConfigError(f"{mode} reads saved races and trains nothing: {', '.join(ignored)} "
                              f"would have no effect (the saved race.json holds the config)")
    if ns.compare is not None:
        if ns.report or ns.merge is not None or ns.late_s is not None:
            raise ConfigError("--compare reads two saved races: it cannot be combined with "
                              "--report, --merge or --late-s")
        return ns, config_over, sac_over
    if ns.report:
        if ns.out is None:
            raise ConfigError("--report needs --out DIR (the race directory to report on)")
        check_late_s(ns.late_s, None)   # the saved race's budget is checked in write_report
        return ns, config_over, sac_over
    if ns.merge is not None:
        raise ConfigError("--merge works with --report only (it trains nothing)")
    for flag, value in (("--config", ns.config), ("--budget-s", ns.budget_s)):
        if value is None:
            raise ConfigError(f"the following arguments are required: {flag} (see --help)")
    if ns.seed is not None:
        config_over[CONFIG_ALIASES["--seed"]] = ns.seed
    if ns.budget_s <= 0:
        raise ConfigError(f"--budget-s must be > 0, got {ns.budget_s}")
    if ns.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {ns.seeds}")
    if ns.points < 1:
        raise ConfigError(f"--points must be >= 1, got {ns.points}")
    check_late_s(ns.late_s, ns.budget_s)
    if ns.sac_from is not None and (ns.no_sac or sac_over):
        raise ConfigError("--sac-from takes SAC's settings and curves from the earlier race: it "
                          "cannot be combined with --no-sac or --sac.FIELD=VALUE")
    if ns.sac_epoch_env_steps is not None:
        if ns.no_sac or ns.sac_from is not None:
            raise ConfigError("--sac-epoch-env-steps sizes the SAC run of this race: it cannot "
                              "be combined with --no-sac or --sac-from")
        if ns.sac_epoch_env_steps < 1:
            raise ConfigError(f"--sac-epoch-env-steps must be >= 1, got "
                              f"{ns.sac_epoch_env_steps}")
    if ns.eval_samples is not None and ns.eval_samples < 1:
        raise ConfigError(f"--eval-samples must be >= 1, got {ns.eval_samples}")
    if ns.qvpo_from is not None and (ns.no_sac or ns.vmap_seeds or ns.eval_target_actor
                                     or ns.eval_samples is not None):
        raise ConfigError("--qvpo-from trains SAC alone (with --sac-from: nothing): it cannot be "
                          "combined with --no-sac, --vmap-seeds, --eval-target-actor or "
                          "--eval-samples")
    return ns, config_over, sac_over


def check_eval_target_actor(ns: argparse.Namespace, cfg) -> None:
    """``--eval-target-actor`` compares the target actor with the online one: the config's own
    evaluations must use the online actor (``eval_actor``), or both would be the target's."""
    if ns.eval_target_actor and cfg.eval_actor != "online":
        raise ConfigError(f"--eval-target-actor compares the target actor with the online one: it "
                          f"needs config field 'eval_actor' 'online', got {cfg.eval_actor!r} "
                          f"(add --config.eval_actor=online)")


def main(argv: Sequence[str] | None = None, log: Callable[[str], None] = print) -> int:
    """Race QVPO against Brax SAC (see the module docstring); bad input is one line, exit 2."""
    from mjx_qvpo.train import load_run_config
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        ns, config_over, sac_over = parse_cli(argv)
        if ns.compare is not None:
            text = compare_races(*(_load_race(p, "--compare") for p in ns.compare))
            if ns.out is not None:
                os.makedirs(ns.out, exist_ok=True)
                with open(os.path.join(ns.out, "compare.md"), "w") as f:
                    f.write(text)
            log(text)
            return 0
        if ns.report:
            if ns.merge is not None:   # write_report saves the merged race.json
                saved = merge_races([_load_race(p) for p in ns.merge])
                os.makedirs(ns.out, exist_ok=True)
            else:
                saved = _load_race(os.path.join(ns.out, "race.json"), "--report")
                del saved["path"]
            log(write_report(saved, ns.out, ns.target, ns.late_s))
            return 0
        cfg = resolve(load_run_config(ns.config, config_over))
        check_eval_target_actor(ns, cfg)
        reused = None
        if ns.sac_from is not None:
            reused = reuse_sac(ns.sac_from, cfg, list(range(cfg.seed, cfg.seed + ns.seeds)),
                               ns.budget_s, jax.devices()[0].device_kind)
            settings = reused["settings"]
        else:
            settings = sac_settings(cfg.task, sac_over) if not ns.no_sac else None
        reused_qvpo = None
        if ns.qvpo_from is not None:
            reused_qvpo = reuse_qvpo(ns.qvpo_from, config_json(cfg), ns.budget_s,
                                     jax.devices()[0].device_kind)
    except ConfigError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    out = ns.out or os.path.join("runs", "race", cfg.task)
    os.makedirs(out, exist_ok=True)
    # SAC's compiled programs come from this cache in its timed runs (see run_sac).
    with fresh_compile_cache():
        try:
            return _race(ns, cfg, settings, argv, out, log, reused, reused_qvpo)
        except FloatingPointError as e:   # a non-finite loss or parameter (run_qvpo): one line
            print(f"error: {e}", file=sys.stderr)
            return 1


_CACHE_SETTINGS = ("jax_enable_compilation_cache", "jax_compilation_cache_dir",
                   "jax_persistent_cache_min_compile_time_secs",
                   "jax_persistent_cache_min_entry_size_bytes")


@contextlib.contextmanager
def fresh_compile_cache():
    """JAX's persistent compilation cache in a new temporary directory that keeps every program
    (no minimum compile time or size), for the race's SAC warm-up to fill and its timed runs to
    load (``run_sac``); on exit the directory is removed and the process's cache settings are
    restored. Yields the directory.

    JAX opens its cache once, at the first compile of the process, and ignores a later change of
    directory; so the cache is reset on entry and on exit. Without that, a race in a process that
    had compiled before (a second race, a notebook, the test suite) would write SAC's programs to
    the earlier directory, or nowhere, and time SAC's compiles as training."""
    from jax.experimental.compilation_cache import compilation_cache

    cache = tempfile.mkdtemp(prefix="mjx_qvpo_race_cache_")
    previous = {k: getattr(jax.config, k) for k in _CACHE_SETTINGS}
    for k, v in zip(_CACHE_SETTINGS, (True, cache, 0.0, 0)):
        jax.config.update(k, v)
    compilation_cache.reset_cache()
    try:
        yield cache
    finally:  # leave the process's cache as it was
        for k, v in previous.items():
            jax.config.update(k, v)
        compilation_cache.reset_cache()
        shutil.rmtree(cache, ignore_errors=True)


def race_ls_iterations(race: dict) -> int:
    """The line-search cap (config field ``ls_iterations``) a saved race ran both learners
    with; 0 for races saved before the field existed."""
    return (race.get("qvpo_config") or {}).get("ls_iterations", 0)


def _physics_line(ls_iterations: int) -> str:
    """The race's statement of a line-search cap (config field ``ls_iterations``, nonzero)."""
    return (f"Physics: MJX's line search capped at {ls_iterations} steps per solver iteration "
            f"(ls_iterations), for both learners.")


def _race(ns, cfg, settings, argv, out: str, log: Callable[[str], None],
          reused: dict | None = None, reused_qvpo: dict | None = None) -> int:
    """Both learners' runs and the report (``main`` after validation, inside
    ``fresh_compile_cache``); ``reused`` (from ``reuse_sac``) replaces SAC's runs with an
    earlier race's curves, ``reused_qvpo`` (from ``reuse_qvpo``) QVPO's."""
    seeds = list(range(cfg.seed, cfg.seed + ns.seeds))
    device = jax.devices()[0].device_kind
    race = {"command": "python -m mjx_qvpo.race " + " ".join(argv), "task": cfg.task,
            "device": device, "backend": jax.default_backend(), "budget_s": ns.budget_s,
            "seeds": seeds, "num_eval_envs": cfg.num_eval_envs,
            "episode_length": cfg.episode_length,
            "qvpo_config": config_json(cfg),
            "sac_settings": settings}
    log(f"race on {cfg.task}, {device}: {ns.budget_s:.0f} s of training per learner and seed, "
        f"seeds {seeds}; evaluation: {cfg.num_eval_envs} episodes of {cfg.episode_length} steps")
    if settings is not None:
        log(f"SAC settings: {settings}")
    if cfg.ls_iterations:
        log(_physics_line(cfg.ls_iterations))

    def save():
        # Written aside and renamed, so that a kill during the write leaves the last save whole.
        path = os.path.join(out, "race.json")
        with open(path + ".tmp", "w") as f:
            json.dump(race, f, indent=1)
        os.replace(path + ".tmp", path)

    # Curves are saved after each learner, SAC's also after each of its evaluations, so a failed
    # or cut-off run keeps them (--report redraws).
    if reused_qvpo is not None:
        race["qvpo"], race["qvpo_from"] = reused_qvpo["qvpo"], reused_qvpo["source"]
        log(f"QVPO: curves reused from {reused_qvpo['source']['path']} "
            f"({reused_qvpo['source']['command']})")
    else:
        race["qvpo"] = run_qvpo(cfg, seeds, ns.budget_s, ns.points, ns.vmap_seeds, log,
                                eval_target=ns.eval_target_actor,
                                eval_samples=ns.eval_samples)
    save()
    if reused is not None:
        race["sac"], race["sac_from"] = reused["sac"], reused["source"]
        log(f"SAC: curves of seeds {seeds} reused from {reused['source']['path']} "
            f"({reused['source']['command']})")
        save()
    elif settings is not None:
        def save_partial(sac: dict) -> None:
            race["sac"] = sac
            save()

        race["sac"] = run_sac(cfg.task, settings, seeds, ns.budget_s,
                              ns.sac_epoch_env_steps or derive(cfg).env_steps_per_chunk,
                              cfg.episode_length, cfg.num_eval_envs, log, on_point=save_partial,
                              ls_iterations=cfg.ls_iterations)
        save()
    log(write_report(race, out, ns.target, ns.late_s))
    log(f"wrote {out}/race.json, race.md and race.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
