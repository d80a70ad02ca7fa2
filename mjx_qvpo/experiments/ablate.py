"""Ablations of the real trainer: a grid of variants x seeds on one task (docs/algorithm.md sections 4, 5, 8).

``python -m mjx_qvpo.experiments.ablate --config configs/inverted_pendulum.py
--grid entropy_coef=0.02,0 --grid num_behavior_samples=1,4,16 --seeds 3 --out DIR
[--variant "diffusion_steps=20 entropy_coef=0"] [--cross] [--config.field=value ...]``

Grid syntax:

* ``--grid FIELD=V1,V2,...``: one axis. By default each axis is varied *alone* from the base config
  (one factor at a time), so ``--grid entropy_coef=0.02,0 --grid num_behavior_samples=1,4,16`` makes
  the variants base, entropy_coef=0, num_behavior_samples=1 and num_behavior_samples=16 (a value
  equal to the base's is the base itself). Values are Python literals, split at top-level commas, so
  ``--grid "network.actor_hidden=(32, 32),(64, 64)"`` works.
* ``--cross``: the full product of the axes instead.
* ``--variant "F1=V1 F2=V2"``: one extra variant that changes several fields together (for example
  T = 20 without entropy against T = 5 with it).
* ``--config.FIELD=VALUE``: changes the base config for every variant (for example the budget).

Fields are the trainer's own (``mjx_qvpo/config.py``): ``entropy_coef`` (0 switches the entropy term
off), ``diffusion_steps`` (T), ``num_behavior_samples`` (K_b), ``num_target_samples`` (K_t),
``num_train_samples`` (K), ``q_transform``, and any other.

Seeds only change PRNG keys, so the seeds of one variant share every shape: they run as one
``vmap`` over ``trainer.init`` and ``trainer.chunk`` (one compilation per variant). Seed s uses the
keys ``python -m mjx_qvpo.train --config.seed=s`` would use. Writes to ``--out``: ``curves.png``
(evaluation and training returns against env steps, mean over seeds with a min-max band),
``table.md`` (final returns) and ``results.json`` (every number, per seed and chunk).
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mjx_qvpo import cli
from mjx_qvpo.config import ConfigError, apply_overrides, derive, resolve

USAGE = ("usage: python -m mjx_qvpo.experiments.ablate --config CONFIG.py --grid FIELD=V1,V2 "
         "[--grid ...] [--variant 'F=V F=V'] [--cross] [--seeds N] [--seed S] [--out DIR] "
         "[--config.FIELD=VALUE ...]")
HELP = cli.help_text(
    "python -m mjx_qvpo.experiments.ablate",
    "Ablations of the real trainer: a grid of config variants x seeds on one task (seeds of a "
    "variant are vmapped,\none compilation per variant). Writes curves.png, table.md and "
    "results.json to --out.", USAGE,
    [*cli.CONFIG_OPTIONS,
     ("--grid FIELD=V1,V2", "one axis; each axis is varied alone from the base config (repeatable)"),
     ("--cross", "the full product of the axes instead"),
     ("--variant 'F=V F=V'", "one extra variant changing several fields together (repeatable)"),
     ("--seeds N", "seeds per variant (default 1); seed s uses train --seed s's keys"),
     ("--seed S", "first seed (= --config.seed); the seeds are S .. S+N-1"),
     ("--out DIR", "output folder (--workdir DIR also works; default runs/ablate-<task>)")],
    "python -m mjx_qvpo.experiments.ablate --config configs/inverted_pendulum.py "
    "--grid entropy_coef=0.02,0 --seeds 3 --out runs/ablate-ip")


# ------------------------------------------------------------------------------- grid parsing
def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Grid syntax helper (section 8 ablations): split at ``sep`` outside brackets and quotes,
    "(1, 2),(3, 4)" -> ["(1, 2)", "(3, 4)"]."""
    parts, depth, quote, cur = [], 0, None, ""
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def parse_grid(spec: str) -> tuple[str, list[Any]]:
    """One ablation axis (section 8): ``FIELD=V1,V2,...`` -> (field, [values]), values parsed
    like ``mjx_qvpo.train``."""
    from mjx_qvpo.train import parse_value
    if "=" not in spec:
        raise ConfigError(f"--grid {spec!r}: expected FIELD=V1,V2,...")
    name, values = spec.split("=", 1)
    name = name.strip()
    items = split_top_level(values)
    if not name or not values.strip() or any(not v for v in items):
        raise ConfigError(f"--grid {spec!r}: expected FIELD=V1,V2,... with non-empty values")
    return name, [parse_value(v) for v in items]


def parse_variant(spec: str) -> dict[str, Any]:
    """``"F1=V1 F2=V2"`` -> {F1: V1, F2: V2}: one variant changing several fields (for the
    "T = 20 with entropy vs larger T without" claim of section 8)."""
    from mjx_qvpo.train import parse_value
    out = {}
    for item in split_top_level(spec.strip(), " "):
        if not item:
            continue
        if "=" not in item:
            raise ConfigError(f"--variant {spec!r}: expected FIELD=VALUE items separated by spaces")
        name, value = item.split("=", 1)
        out[name.strip()] = parse_value(value)
    if not out:
        raise ConfigError(f"--variant {spec!r}: no FIELD=VALUE given")
    return out


def parse_cli(argv: Sequence[str]) -> dict:
    """Parse the ablation command line (section 8) into {config, overrides, grids, variants,
    cross, seeds, out}; ``out`` is None when not given (main fills the default)."""
    from mjx_qvpo.train import parse_value
    a = {"config": None, "overrides": {}, "grids": [], "variants": [], "cross": False,
         "seeds": None, "out": None}
    args = list(argv)

    def value_of(flag):
        if not args:
            raise ConfigError(f"{flag}: missing value; {USAGE}")
        return args.pop(0)

    while args:
        x = args.pop(0)
        flag, eq, inline = x.partition("=")
        if x.startswith("--config."):
            name, value = cli.pop_override(x, args, "--config.", USAGE)
            a["overrides"][name] = value
        elif flag in ("--config", "--grid", "--variant", "--seeds", "--seed", "--out",
                      "--workdir"):
            v = inline if eq else value_of(flag)
            flag = "--out" if flag == "--workdir" else flag  # the shared spelling of a run dir
            if flag == "--config":
                a["config"] = v
            elif flag == "--grid":
                a["grids"].append(parse_grid(v))
            elif flag == "--variant":
                a["variants"].append(parse_variant(v))
            elif flag == "--seed":
                a["overrides"]["seed"] = parse_value(v)
            elif flag == "--seeds":
                try:
                    a["seeds"] = int(v)
                except ValueError:
                    raise ConfigError(f"--seeds must be an integer >= 1, got {v!r}") from None
            else:
                a["out"] = v
        elif x == "--cross":
            a["cross"] = True
        else:
            raise ConfigError(f"unknown argument {x!r}; {USAGE}")
    if a["config"] is None:
        raise ConfigError(f"--config is required; {USAGE}")
    if a["seeds"] is None:
        a["seeds"] = 1
    if a["seeds"] < 1:
        raise ConfigError(f"--seeds must be an integer >= 1, got {a['seeds']!r}")
    names = [g[0] for g in a["grids"]]
    if len(set(names)) != len(names):
        raise ConfigError(f"--grid: each field may appear once, got {names}")
    return a


def make_variants(grids: Sequence[tuple[str, list]], extra: Sequence[dict], cross: bool
                  ) -> list[dict[str, Any]]:
    """The section 8 ablation variants, each a dict of field changes from the base ({} is the base).

    One factor at a time by default, the full product with ``cross``; duplicates (the same
    resolved changes) are kept once, in order.
    """
    if cross and grids:
        variants = [dict(zip([g[0] for g in grids], combo))
                    for combo in itertools.product(*[g[1] for g in grids])]
    else:
        variants = [{}] + [{name: v} for name, values in grids for v in values]
    variants += [dict(v) for v in extra]
    return variants


def variant_name(changes: dict[str, Any]) -> str:
    """Short label of a section 8 variant: "base" or "f1=v1, f2=v2" (last part of each field name)."""
    if not changes:
        return "base"
    return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in changes.items())


def resolve_variants(base, variants: Sequence[dict]) -> list[tuple[str, dict, Any]]:
    """Apply and validate every section 8 variant up front (bad values fail before anything compiles);
    variants identical to an earlier one once resolved are dropped."""
    out, seen = [], {}
    for changes in variants:
        cfg = resolve(apply_overrides(base, changes))
        # Record the changes that actually differ from the base (a grid value equal to the base's
        # value is the base itself).
        flat_base = {k: _get(base, k) for k in changes}
        real = {k: v for k, v in changes.items() if _norm(flat_base[k]) != _norm(v)}
        key = json.dumps(sorted((k, _norm(v)) for k, v in real.items()), default=str)
        if key in seen:
            continue
        seen[key] = True
        out.append((variant_name(real), real, cfg))
    return out


def _get(cfg, dotted: str):
    node = cfg
    for p in dotted.split("."):
        node = node[p]
    return node


def _norm(v):
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return v


# ------------------------------------------------------------------------------------ running
def run_variant(cfg, num_seeds: int, log: Callable[[str], None] = print) -> dict:
    """Train ``num_seeds`` seeds of one config as one vmapped run (docs/algorithm.md section 7 trainer).

    Seed s uses PRNGKey(cfg.seed + s) split into (init, eval) keys exactly as ``mjx_qvpo.train``
    does; evaluation follows ``eval_every_env_steps`` and always happens after the last chunk.
    Returns per-chunk env steps, per-seed train and eval returns (NaN where absent), timings.
    """
    from mjx_qvpo.training import make_trainer  # brax/mjx import is slow; only when running

    trainer = make_trainer(cfg, single_device=True)  # seeds are vmapped on one device
    derived = derive(cfg)
    keys = jax.vmap(lambda s: jax.random.split(jax.random.PRNGKey(s)))(
        jnp.arange(cfg.seed, cfg.seed + num_seeds))
    k_init, k_eval = keys[:, 0], keys[:, 1]
    t0 = time.perf_counter()
    state = jax.jit(jax.vmap(trainer.init))(k_init)
    chunk_fn = jax.jit(jax.vmap(trainer.chunk), donate_argnums=0).lower(state).compile()
    eval_fn = jax.jit(jax.vmap(trainer.evaluate)).lower(state, k_eval).compile()
    compile_s = time.perf_counter() - t0
    rows = []
    last_eval, env_step = 0, 0
    t1 = time.perf_counter()
    for _ in range(derived.num_chunks):
        state, m = chunk_fn(state)
        m = jax.device_get(m)
        env_step = int(np.asarray(state.env_steps)[0])
        row = {"env_steps": env_step,
               "train_return": np.asarray(m["train/episode_return"], float).tolist(),
               "finite": np.asarray(m["finite/params"], bool).tolist()}
        final = env_step >= derived.total_env_steps
        if final or (cfg.eval_every_env_steps and
                     env_step - last_eval >= cfg.eval_every_env_steps):
            ek = jax.vmap(lambda k: jax.random.fold_in(k, env_step))(k_eval)
            row["eval_return"] = np.asarray(
                jax.device_get(eval_fn(state, ek))["eval/episode_return"], float).tolist()
            last_eval = env_step
        rows.append(row)
        ev = row.get("eval_return")
        log(f"  step {env_step:>8,d}  train {_fmt(row['train_return'])}"
            + (f"  eval {_fmt(ev)}" if ev is not None else ""))
    return {"rows": rows, "compile_s": compile_s, "run_s": time.perf_counter() - t1}


def _fmt(values) -> str:
    v = np.asarray(values, float)
    if not np.isfinite(v).any():
        return "   n/a"
    return f"{np.nanmean(v):8.1f}"


def summarize_variant(res: dict) -> dict:
    """Final eval return per seed, its mean/std, and the mean eval return over all evaluations
    (an area under the curve: how fast a variant learns, the K_b claim of section 8)."""
    evals = [r for r in res["rows"] if "eval_return" in r]
    final = np.asarray(evals[-1]["eval_return"], float)
    auc = np.mean([r["eval_return"] for r in evals], axis=0)
    return {"final_eval_per_seed": final.round(2).tolist(),
            "final_eval_mean": float(np.mean(final)), "final_eval_std": float(np.std(final)),
            "mean_eval_over_training": float(np.mean(auc)),
            "all_finite": all(all(r["finite"]) for r in res["rows"])}


# ---------------------------------------------------------------------------------- reporting
def write_table(results: list[dict], path: str, command: str, num_seeds: int, steps: int) -> str:
    """Markdown table of the section 8 ablation's final returns (mean +- std over seeds)."""
    lines = [f"Final evaluation return after {steps:,} env steps, {num_seeds} seeds per variant "
             f"(mean +- std over seeds; per-seed values; mean of all evaluations during training "
             f"as a learning-speed measure).", "",
             f"Command: `{command}`", "",
             "| variant | final eval return | per seed | mean eval over training | compile s | "
             "run s |", "|---|---|---|---|---|---|"]
    for r in results:
        s = r["summary"]
        lines.append(f"| {r['name']} | {s['final_eval_mean']:.1f} +- {s['final_eval_std']:.1f} | "
                     f"{', '.join(f'{x:.0f}' for x in s['final_eval_per_seed'])} | "
                     f"{s['mean_eval_over_training']:.1f} | {r['compile_s']:.0f} | "
                     f"{r['run_s']:.0f} |")
    text = "\n".join(lines) + "\n"
    with open(path, "w") as f:
        f.write(text)
    return text


def plot_curves(results: list[dict], path: str, title: str) -> None:
    """Section 8 ablation learning curves: eval and train return against env steps, mean over
    seeds with a min-max band."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for r in results:
        for ax, key in zip(axes, ("eval_return", "train_return")):
            rows = [row for row in r["rows"] if key in row]
            x = np.array([row["env_steps"] for row in rows])
            y = np.array([row[key] for row in rows], float)            # (points, seeds)
            ok = np.isfinite(y).any(axis=1)
            if not ok.any():
                continue
            x, y = x[ok], y[ok]
            line, = ax.plot(x, np.nanmean(y, axis=1), label=r["name"])
            ax.fill_between(x, np.nanmin(y, axis=1), np.nanmax(y, axis=1),
                            color=line.get_color(), alpha=0.15)
    axes[0].set_title("evaluation return (best-of-K_eval)")
    axes[1].set_title("training episode return (completed episodes)")
    for ax in axes:
        ax.set_xlabel("env steps")
        ax.set_ylabel("return")
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None, log: Callable[[str], None] = print) -> int:
    """Command line of the section 8 ablations; bad input is one line on stderr and exit status 2."""
    from mjx_qvpo.train import load_run_config
    argv = sys.argv[1:] if argv is None else list(argv)
    if cli.wants_help(argv):
        print(HELP)
        return 0
    try:
        a = parse_cli(argv)
        base = load_run_config(a["config"], a["overrides"])
        if a["out"] is None:  # the default never touches the committed results/
            a["out"] = os.path.join("runs", f"ablate-{base.task}")
        variants = resolve_variants(base, make_variants(a["grids"], a["variants"], a["cross"]))
    except ConfigError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    command = "python -m mjx_qvpo.experiments.ablate " + " ".join(
        _quote(x) for x in argv)
    os.makedirs(a["out"], exist_ok=True)
    task = variants[0][2].task
    log(f"ablation on {task}: {len(variants)} variants x {a['seeds']} seeds "
        f"({', '.join(v[0] for v in variants)})")
    results = []
    for name, changes, cfg in variants:
        log(f"variant {name}")
        res = run_variant(cfg, a["seeds"], log)
        res.update(name=name, changes=changes, summary=summarize_variant(res))
        results.append(res)
        log(f"  final eval {res['summary']['final_eval_mean']:.1f} +- "
            f"{res['summary']['final_eval_std']:.1f}; compile {res['compile_s']:.0f} s, "
            f"run {res['run_s']:.0f} s")
        # Written after every variant, so a long grid that is stopped keeps what it finished.
        _write(a, base, results, command, task)
    log(open(os.path.join(a["out"], "table.md")).read())
    return 0


def _write(a, base, results, command, task) -> None:
    steps = derive(base).total_env_steps
    with open(os.path.join(a["out"], "results.json"), "w") as f:
        json.dump({"command": command, "task": task, "seeds": a["seeds"],
                   "base_config": json.loads(json.dumps(base.to_dict(), default=list)),
                   "variants": [{k: r[k] for k in ("name", "changes", "summary", "compile_s",
                                                   "run_s", "rows")} for r in results]},
                  f, indent=1, default=str)
    write_table(results, os.path.join(a["out"], "table.md"), command, a["seeds"], steps)
    plot_curves(results, os.path.join(a["out"], "curves.png"),
                f"{task}: {a['seeds']} seeds per variant (mean, min-max band)")


def _quote(x: str) -> str:
    return x if all(c.isalnum() or c in "-_.=/,:" for c in x) else "'" + x + "'"


if __name__ == "__main__":
    sys.exit(main())
