"""The continuous bandit of docs/algorithm.md section 8: does the entropy term find the highest bump?

``python -m mjx_qvpo.experiments.bandit --config configs/bandit.py [--config.field=value ...]``

Protocol (the authors' rebuttal, docs/algorithm.md section 8): the state is constant and the reward r(a) is a
sum of Gaussian bumps on [-1, 1]^2. Every epoch the diffusion policy draws ``samples_per_epoch``
(64) actions, the best by the *true* reward is kept and the policy takes one step on the weighted VLO
loss of that action (section 3) with weight w = r(a*) - mean_k r(a_k) (the ``qadv`` transform, with
the true reward in place of Q), plus, when the entropy term is on, N_e uniform actions weighted
omega_t * w (section 4). The variants "entropy" and "no_entropy" differ only in omega; each seed
starts both variants from the same initial network.

All seeds of one variant run in one jitted function: ``jax.vmap`` over the seeds of a single run,
which is a ``lax.scan`` over epochs. omega is a traced argument, so both variants reuse the one
compilation.

Writes to ``--config.workdir``: ``bandit.png`` (reward contours and the samples of seed 0 at several
epochs, one row per variant, plus where every seed ended), ``curves.png`` (mean reward of the
sampled actions per epoch, mean and spread over seeds), ``summary.json`` and ``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from envs.bandit import bandit_reward
from mjx_qvpo import diffusion
from mjx_qvpo import cli
from mjx_qvpo.config import ConfigError, apply_overrides, call_config_function, load_module
from mjx_qvpo.losses import entropy_coef_schedule
from mjx_qvpo.networks import MATMUL_MODES, NoiseModel
from mjx_qvpo.q_transforms import QStats, QTransformParams, get_q_transform

USAGE = ("usage: python -m mjx_qvpo.experiments.bandit --config configs/bandit.py "
         "[--config.FIELD=VALUE ...] [--out DIR] [--seed S] [--seeds N]")
# The shared conventions (mjx_qvpo/cli.py) as aliases of this experiment's own config fields.
ALIASES = {"--out": "workdir", "--workdir": "workdir", "--seed": "seed", "--seeds": "num_seeds"}
HELP = cli.help_text(
    "python -m mjx_qvpo.experiments.bandit",
    "The continuous bandit of docs/algorithm.md section 8: does the entropy term find the highest "
    "of several reward bumps?\nRuns the variants 'entropy' and 'no_entropy' over many seeds "
    "(vmapped) and writes bandit.png, curves.png,\nsummary.json and config.json to --out.",
    USAGE, [*cli.CONFIG_OPTIONS,
            ("--out DIR", "output folder (= --config.workdir; --workdir DIR also works; default "
                          "runs/bandit-experiment)"),
            ("--seed S", "base PRNG seed (= --config.seed); seed i is fold_in(S, i)"),
            ("--seeds N", "seeds per variant (= --config.num_seeds)")],
    "python -m mjx_qvpo.experiments.bandit --config configs/bandit.py --seeds 8 "
    "--config.num_epochs=300 --out runs/bandit-small")
# The two variants of section 8; the first uses cfg.entropy_coef, the second switches it off.
VARIANTS = ("entropy", "no_entropy")


# ------------------------------------------------------------------------------------ config
def experiment_config(task_cfg: ml_collections.ConfigDict | None = None
                      ) -> ml_collections.ConfigDict:
    """The bandit protocol's own config (docs/algorithm.md section 8), seeded from a task config.

    The bumps, the diffusion model and the actor's optimizer come from ``task_cfg`` (the trainer's
    ``configs/bandit.py``) so that the experiment and the full learner see the same bandit; the
    protocol fields below exist only here, which keeps the trainer's schema unchanged.
    """
    if task_cfg is None:
        from mjx_qvpo.config import base_config
        task_cfg = base_config()
    c = ml_collections.ConfigDict()
    c.bandit = ml_collections.ConfigDict(dict(
        centers=tuple(tuple(float(x) for x in p) for p in task_cfg.bandit.centers),
        heights=tuple(float(h) for h in task_cfg.bandit.heights),
        widths=tuple(float(w) for w in task_cfg.bandit.widths)))
    c.seed = 0                          # base PRNG seed; seed i of the experiment is fold_in(seed, i)
    c.num_seeds = 32                    # runs per variant, vmapped in one compiled call
    c.num_epochs = 1500                 # one best-of-K selection and one gradient step each
    c.samples_per_epoch = 64            # K: actions drawn per epoch (the rebuttal: 64)
    c.diffusion_steps = task_cfg.diffusion_steps          # T
    c.beta_schedule = task_cfg.beta_schedule
    # networks.MATMUL_MODES; bfloat16 here measures whether bf16 matmuls change what is learned.
    c.matmul_precision = task_cfg.matmul_precision
    c.network = ml_collections.ConfigDict(dict(
        actor_hidden=tuple(task_cfg.network.actor_hidden),
        time_dim=task_cfg.network.time_dim,
        time_hidden=task_cfg.network.time_hidden))
    # A higher rate than the trainer's 1e-4: here one gradient step sees one chosen action, so at
    # 1e-4 a thousand epochs barely move the policy.
    c.actor_lr = 1e-3
    c.adam_eps = task_cfg.adam_eps
    c.grad_clip = task_cfg.grad_clip
    c.entropy_coef = task_cfg.entropy_coef   # omega of the "entropy" variant (section 4)
    c.num_entropy_samples = task_cfg.num_entropy_samples  # N_e
    c.anneal_entropy = True             # omega_t annealed over num_epochs as in section 4
    c.snapshot_epochs = ()              # epochs whose samples are plotted; () = 0, E/8, E/4, E/2, E
    c.num_plot_samples = 512            # policy samples drawn at each snapshot (and at the end)
    c.workdir = "runs/bandit-experiment"  # results/bandit/ is written only with an explicit --out
    return c


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def validate_experiment(c: ml_collections.ConfigDict) -> None:
    """Check the section 8 protocol config; raises ConfigError naming the field (one line)."""
    b = c.bandit
    try:
        centers = np.asarray(b.centers, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"config field 'bandit.centers' must be a tuple of (x, y) points, "
                          f"got {b.centers!r}") from None
    if centers.ndim != 2 or centers.shape[1] != 2 or len(centers) == 0 or np.any(
            np.abs(centers) > 1.0) or not np.all(np.isfinite(centers)):
        raise ConfigError(f"config field 'bandit.centers' must be a non-empty tuple of (x, y) "
                          f"points inside [-1, 1]^2, got {b.centers!r}")
    for name in ("heights", "widths"):
        v = b[name]
        if not isinstance(v, (tuple, list)) or not all(_is_number(x) for x in v):
            raise ConfigError(f"config field 'bandit.{name}' must be a tuple of numbers, got {v!r}")
        if len(v) != len(centers):
            raise ConfigError(f"config field 'bandit.{name}' has {len(v)} entries but "
                              f"'bandit.centers' has {len(centers)}")
    if any(w <= 0 for w in b.widths):
        raise ConfigError(f"config field 'bandit.widths' must be positive, got {b.widths!r}")
    ints = {"seed": 0, "num_seeds": 1, "num_epochs": 1, "samples_per_epoch": 2,
            "diffusion_steps": 1, "num_entropy_samples": 0, "num_plot_samples": 1}
    for name, lo in ints.items():
        v = c[name]
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ConfigError(f"config field {name!r} must be an integer >= {lo}, got {v!r}")
    for name in ("actor_lr", "adam_eps", "grad_clip"):
        if not _is_number(c[name]) or c[name] <= 0:
            raise ConfigError(f"config field {name!r} must be a number > 0, got {c[name]!r}")
    if not _is_number(c.entropy_coef) or not 0 <= c.entropy_coef <= 1:
        raise ConfigError(f"config field 'entropy_coef' must be a number in [0, 1], "
                          f"got {c.entropy_coef!r}")
    if c.matmul_precision not in MATMUL_MODES:
        raise ConfigError(f"config field 'matmul_precision' must be one of {list(MATMUL_MODES)}, "
                          f"got {c.matmul_precision!r}")
    if c.beta_schedule not in diffusion.BETA_SCHEDULES:
        raise ConfigError(f"config field 'beta_schedule' must be one of "
                          f"{list(diffusion.BETA_SCHEDULES)}, got {c.beta_schedule!r}")
    hidden = c.network.actor_hidden
    if not isinstance(hidden, (tuple, list)) or not hidden or not all(
            isinstance(h, int) and h >= 1 for h in hidden):
        raise ConfigError(f"config field 'network.actor_hidden' must be a non-empty tuple of "
                          f"positive integers, got {hidden!r}")
    if not isinstance(c.network.time_dim, int) or c.network.time_dim < 4 or c.network.time_dim % 2:
        raise ConfigError(f"config field 'network.time_dim' must be an even integer >= 4, "
                          f"got {c.network.time_dim!r}")
    snaps = c.snapshot_epochs
    if not isinstance(snaps, (tuple, list)) or not all(
            isinstance(e, int) and 0 <= e <= c.num_epochs for e in snaps):
        raise ConfigError(f"config field 'snapshot_epochs' must be a tuple of epochs in "
                          f"[0, num_epochs={c.num_epochs}], got {snaps!r}")
    if not isinstance(c.workdir, str) or not c.workdir:
        raise ConfigError(f"config field 'workdir' must be a non-empty path, got {c.workdir!r}")


def snapshot_epochs(c) -> tuple[int, ...]:
    """Epochs whose policy samples are kept (section 8 figure): sorted, always with 0 (the initial
    policy) and the last epoch."""
    e = c.num_epochs
    chosen = c.snapshot_epochs or (0, e // 8, e // 4, e // 2, e)
    return tuple(sorted(set(int(x) for x in chosen) | {0, e}))


def load_experiment_config(path: str, overrides: dict[str, Any]) -> ml_collections.ConfigDict:
    """Section 8 protocol config from a file's ``get_experiment_config()`` (or
    ``experiment_config(get_config())`` when it has none), with ``--config.x=v`` overrides applied and validated."""
    module = load_module(path)
    if hasattr(module, "get_experiment_config"):
        cfg = call_config_function(module, path, "get_experiment_config")
    else:
        cfg = experiment_config(call_config_function(module, path))
    cfg = apply_overrides(cfg, overrides)
    validate_experiment(cfg)
    return cfg


# ------------------------------------------------------------------------------------ runner
@dataclasses.dataclass(frozen=True, eq=False)
class Runner:
    """Pure functions of one configured bandit experiment (docs/algorithm.md section 8).

    ``run_one(key, omega)`` is one seed; ``run_seeds(keys, omega)`` is ``vmap(run_one)`` jitted,
    the seeds' analogue of PureJaxRL's ``make_train``. Both return a dict of arrays:
    ``snapshots`` (S, P, 2) policy samples at ``epochs`` and ``mean_reward``, ``best_reward``,
    ``weight`` and ``entropy_coef`` per epoch (E,). A leading seed axis is added by run_seeds.
    """
    cfg: Any
    model: NoiseModel
    epochs: tuple[int, ...]
    reward: Callable[[jax.Array], jax.Array]
    run_one: Callable[[jax.Array, jax.Array], dict]
    run_seeds: Callable[[jax.Array, jax.Array], dict]


def make_runner(cfg) -> Runner:
    """Build the per-seed run and its seed-vmapped, jitted version (docs/algorithm.md sections 1, 3, 4, 8)."""
    b = cfg.bandit
    centers = jnp.asarray(b.centers, jnp.float32)
    heights = jnp.asarray(b.heights, jnp.float32)
    widths = jnp.asarray(b.widths, jnp.float32)
    reward = lambda a: bandit_reward(a, centers, heights, widths)  # noqa: E731
    model = NoiseModel(obs_size=1, action_size=2, hidden=tuple(cfg.network.actor_hidden),
                       time_dim=cfg.network.time_dim, time_hidden=cfg.network.time_hidden,
                       precision=cfg.matmul_precision)
    sched = diffusion.make_schedule(cfg.diffusion_steps, cfg.beta_schedule)
    opt = optax.chain(optax.clip_by_global_norm(cfg.grad_clip),
                      optax.adam(cfg.actor_lr, eps=cfg.adam_eps))
    qadv = get_q_transform("qadv")
    obs = jnp.zeros((1, 1), jnp.float32)          # the constant state
    k, n_e, num_epochs = cfg.samples_per_epoch, cfg.num_entropy_samples, cfg.num_epochs
    epochs = snapshot_epochs(cfg)

    def loss_fn(params, actions, weights, key):
        """Weighted VLO over the chosen row and the N_e entropy rows, mean over all rows."""
        s_feat = model.state_features(params, obs)                         # (1, H)
        rows = diffusion.vlo_row_losses(model, sched, params, actions, s_feat, key)
        return jnp.mean(weights * rows)

    def epoch_step(carry, epoch, omega):
        params, opt_state, key = carry
        key, k_sample, k_uniform, k_vlo = jax.random.split(key, 4)
        cands = diffusion.sample(model, sched, params, obs, k_sample, k)[0]   # (K, 2)
        r = reward(cands)
        best = jnp.argmax(r)
        # qadv with the true reward as Q: the sampled mean plays V(s) (section 3, step 4).
        w, _ = qadv(r[best][None, None], r[None, :], QStats.create(), QTransformParams())
        w = w[0, 0]
        omega_t = (entropy_coef_schedule(omega, epoch, num_epochs) if cfg.anneal_entropy
                   else jnp.asarray(omega, jnp.float32))
        uniform = jax.random.uniform(k_uniform, (n_e, 2), minval=-1.0, maxval=1.0)
        actions = jnp.concatenate([cands[best][None], uniform], axis=0)   # (1 + N_e, 2)
        weights = jnp.concatenate([w[None], jnp.full((n_e,), omega_t * w)])
        grads = jax.grad(loss_fn)(params, actions, weights, k_vlo)
        updates, opt_state = opt.update(grads, opt_state)
        params = optax.apply_updates(params, updates)
        metrics = {"mean_reward": jnp.mean(r), "best_reward": r[best], "weight": w,
                   "entropy_coef": omega_t}
        return (params, opt_state, key), metrics

    def run_one(key, omega):
        k_init, k_run, k_snap = jax.random.split(key, 3)
        params = model.init(k_init)
        carry = (params, opt.init(params), k_run)
        snaps, curves, start = [], [], 0
        # The scan is cut at the snapshot epochs (static), so the samples of intermediate policies
        # come out of the same compiled call without storing every epoch's parameters.
        for stop in epochs:
            if stop > start:
                carry, m = jax.lax.scan(lambda c, e: epoch_step(c, e, omega), carry,
                                        jnp.arange(start, stop))
                curves.append(m)
            snaps.append(diffusion.sample(model, sched, carry[0], obs,
                                          jax.random.fold_in(k_snap, stop),
                                          cfg.num_plot_samples)[0])
            start = stop
        out = jax.tree.map(lambda *x: jnp.concatenate(x), *curves)
        out["snapshots"] = jnp.stack(snaps)
        return out

    run_seeds = jax.jit(jax.vmap(run_one, in_axes=(0, None)))
    return Runner(cfg=cfg, model=model, epochs=epochs, reward=reward, run_one=run_one,
                  run_seeds=run_seeds)


def seed_keys(cfg) -> jax.Array:
    """Key of experiment seed i: fold_in(PRNGKey(cfg.seed), i); shared by both variants of
    section 8, so each seed compares entropy on/off from the same initial network."""
    base = jax.random.PRNGKey(cfg.seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(cfg.num_seeds))


# ----------------------------------------------------------------------------------- summary
def summarize_samples(samples: np.ndarray, cfg) -> dict:
    """Where one seed's final samples ended (docs/algorithm.md section 8; the issue's summary fields).

    ``nearest_bump``: index of the bump nearest to the samples' mean; ``fraction_near``: fraction
    of samples within one width of each bump; ``dominant_bump``: the bump holding the largest such
    fraction (differs from nearest_bump when the samples are split between bumps).
    """
    c = np.asarray(cfg.bandit.centers, np.float64)
    w = np.asarray(cfg.bandit.widths, np.float64)
    h = np.asarray(cfg.bandit.heights, np.float64)
    mean = samples.mean(axis=0)
    dist = np.linalg.norm(samples[:, None, :] - c[None], axis=-1)          # (P, nb)
    near = (dist <= w).mean(axis=0)
    r = (h * np.exp(-np.square(dist) / (2 * np.square(w)))).sum(-1)
    return {"sample_mean": mean.round(4).tolist(),
            "nearest_bump": int(np.argmin(np.linalg.norm(c - mean, axis=-1))),
            "fraction_near": near.round(4).tolist(),
            "dominant_bump": int(np.argmax(near)),
            "final_mean_reward": round(float(r.mean()), 5)}


def uniform_mean_reward(cfg) -> float:
    """E[r(a)] for a ~ U([-1, 1]^2): the uniform policy's reward, the baseline of section 8
    (exact, via erf)."""
    total = 0.0
    for (cx, cy), hh, ww in zip(cfg.bandit.centers, cfg.bandit.heights, cfg.bandit.widths):
        f = lambda m: (math.sqrt(math.pi / 2) * ww * (  # noqa: E731
            math.erf((1 - m) / (math.sqrt(2) * ww)) + math.erf((1 + m) / (math.sqrt(2) * ww))))
        total += hh * f(cx) * f(cy) / 4.0
    return total


def summarize(cfg, results: dict[str, dict], epochs: Sequence[int]) -> dict:
    """The ``summary.json`` of the issue: per variant and seed where the policy ended, and per
    variant the number of seeds on the highest bump (docs/algorithm.md section 8)."""
    h = np.asarray(cfg.bandit.heights)
    highest = [int(i) for i in np.flatnonzero(h == h.max())]
    out = {"bumps": {"centers": [list(p) for p in cfg.bandit.centers],
                     "heights": list(cfg.bandit.heights), "widths": list(cfg.bandit.widths)},
           "highest_bumps": highest, "num_seeds": cfg.num_seeds, "num_epochs": cfg.num_epochs,
           "uniform_policy_mean_reward": round(uniform_mean_reward(cfg), 5),
           "snapshot_epochs": list(epochs), "variants": {}}
    for name, res in results.items():
        snaps = np.asarray(res["snapshots"])                     # (seeds, S, P, 2)
        seeds = [summarize_samples(snaps[i, -1], cfg) for i in range(snaps.shape[0])]
        nearest = [s["nearest_bump"] for s in seeds]
        # Bumps "covered" at each snapshot: >= 5% of the samples within one width of the bump.
        covered = np.array([[sum(f >= 0.05 for f in summarize_samples(snaps[i, j], cfg)
                                 ["fraction_near"]) for j in range(snaps.shape[1])]
                            for i in range(snaps.shape[0])])
        out["variants"][name] = {
            "entropy_coef": float(res["omega"]),
            "seeds_on_highest_bump": int(sum(n in highest for n in nearest)),
            "seeds_per_nearest_bump": [int(nearest.count(i)) for i in range(len(h))],
            "final_mean_reward_mean": round(float(np.mean([s["final_mean_reward"]
                                                           for s in seeds])), 5),
            "mean_bumps_covered_per_snapshot": covered.mean(axis=0).round(3).tolist(),
            "seeds": seeds,
        }
    return out


# -------------------------------------------------------------------------------------- plots
def plot(cfg, results: dict[str, dict], epochs: Sequence[int], path: str) -> None:
    """Reward contours with seed 0's samples at each snapshot epoch, one row per variant; the
    last column shows the final sample mean of every seed (docs/algorithm.md section 8)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = np.linspace(-1, 1, 201)
    xx, yy = np.meshgrid(g, g)
    zz = np.asarray(bandit_reward(np.stack([xx, yy], -1).astype(np.float32),
                                  cfg.bandit.centers, cfg.bandit.heights, cfg.bandit.widths))
    ncol = len(epochs) + 1
    fig, axes = plt.subplots(len(results), ncol, figsize=(2.6 * ncol, 2.7 * len(results)),
                             squeeze=False)
    for row, (name, res) in enumerate(results.items()):
        snaps = np.asarray(res["snapshots"])
        for col in range(ncol):
            ax = axes[row, col]
            ax.contour(xx, yy, zz, levels=8, cmap="viridis", linewidths=0.8)
            if col < len(epochs):
                s = snaps[0, col]
                ax.scatter(s[:, 0], s[:, 1], s=2, c="crimson", alpha=0.5)
                ax.set_title(f"epoch {epochs[col]}", fontsize=9)
            else:
                means = snaps[:, -1].mean(axis=1)
                ax.scatter(means[:, 0], means[:, 1], s=14, c="black", marker="x")
                ax.set_title(f"final mean, {len(means)} seeds", fontsize=9)
            ax.set_xlim(-1, 1)
            ax.set_ylim(-1, 1)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(f"{name}\n(omega={float(res['omega']):g})", fontsize=9)
    fig.suptitle(f"bandit: heights {tuple(cfg.bandit.heights)}; samples of seed 0", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(results: dict[str, dict], path: str) -> None:
    """Section 8 learning curves: mean reward of each epoch's samples, mean over seeds and the
    10-90% band."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, res in results.items():
        r = np.asarray(res["mean_reward"])                        # (seeds, E)
        x = np.arange(r.shape[1])
        ax.plot(x, r.mean(0), label=name)
        ax.fill_between(x, np.percentile(r, 10, 0), np.percentile(r, 90, 0), alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean reward of sampled actions")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------ running
def run_experiment(cfg, log: Callable[[str], None] = print) -> dict:
    """Run both section 8 variants over all seeds, write the figure and summary; returns it."""
    runner = make_runner(cfg)
    keys = seed_keys(cfg)
    results = {}
    for name in VARIANTS:
        omega = float(cfg.entropy_coef) if name == "entropy" else 0.0
        t = time.perf_counter()
        res = jax.device_get(runner.run_seeds(keys, jnp.float32(omega)))
        res["omega"] = omega
        results[name] = res
        log(f"{name}: {cfg.num_seeds} seeds x {cfg.num_epochs} epochs in "
            f"{time.perf_counter() - t:.1f} s (first variant includes compilation)")
    os.makedirs(cfg.workdir, exist_ok=True)
    summary = summarize(cfg, results, runner.epochs)
    summary["command"] = "python -m mjx_qvpo.experiments.bandit " + " ".join(sys.argv[1:])
    with open(os.path.join(cfg.workdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(cfg.workdir, "config.json"), "w") as f:
        json.dump(cfg.to_dict(), f, indent=1, default=list)
    plot(cfg, results, runner.epochs, os.path.join(cfg.workdir, "bandit.png"))
    plot_curves(results, os.path.join(cfg.workdir, "curves.png"))
    for name, v in summary["variants"].items():
        log(f"{name}: {v['seeds_on_highest_bump']}/{cfg.num_seeds} seeds on the highest bump "
            f"{summary['highest_bumps']}, per bump {v['seeds_per_nearest_bump']}, final mean "
            f"reward {v['final_mean_reward_mean']:.3f} (uniform policy "
            f"{summary['uniform_policy_mean_reward']:.3f})")
    log(f"wrote {cfg.workdir}/bandit.png, curves.png, summary.json")
    return summary


def parse_cli(argv: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """``--config FILE`` and ``--config.x=v`` overrides (parsed as by mjx_qvpo.train) of the
    section 8 experiment."""
    path, overrides, _ = cli.parse_args(argv, flag_names=(), usage=USAGE, aliases=ALIASES)
    return path, overrides


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of the section 8 bandit; bad input is one line on stderr and exit status 2."""
    argv = sys.argv[1:] if argv is None else argv
    if cli.wants_help(argv):
        print(HELP)
        return 0
    try:
        path, overrides = parse_cli(argv)
        cfg = load_experiment_config(path, overrides)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    run_experiment(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
