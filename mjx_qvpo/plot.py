"""``python -m mjx_qvpo.plot RUN [RUN ...] [--out FILE.png] [--x env_steps|wall_time]
[--metric KEY] [--title TEXT]``

Learning curves from run directories' ``metrics.jsonl``: the evaluation return
(``eval/episode_return``, logged at each evaluation) against environment steps or wall-clock time.
Runs whose configs are equal apart from ``seed`` and ``workdir`` form one curve: their mean, with
the band of one standard deviation across the runs shaded (runs are put on a common x grid by
linear interpolation where their x values differ, as wall-clock times do). Each distinct config
is one curve, labelled by its task and the fields in which it differs from the others.

The figure is written as PNG and SVG: ``--out FILE.png`` gives both ``FILE.png`` and ``FILE.svg``
(default ``runs/plots/<task>_<x>.png``; the committed ``results/plots/`` is written only
with an explicit ``--out``). Needs no JAX and no checkpoints, only the runs'
``config.json`` and ``metrics.jsonl``.

Bad input (a missing run, a run without rows of the metric, an unknown option) is one line on
stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from typing import Any, Sequence

import numpy as np

from mjx_qvpo.cli import ArgumentParser
from mjx_qvpo.config import ConfigError, flatten

X_AXES = ("env_steps", "wall_time")
DEFAULT_METRIC = "eval/episode_return"
# Config fields that do not change what a run learns: runs differing only here share a curve.
IGNORED_FIELDS = ("seed", "workdir", "render_every_eval")
_METRIC_LABELS = {
    "eval/episode_return": "evaluation return (best-of-K_eval)",
    "train/episode_return": "training episode return (behavior policy)",
}


def load_curve(workdir: str, metric: str = DEFAULT_METRIC, x: str = "env_steps"
               ) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of one run: the rows of ``metrics.jsonl`` that hold a finite ``metric``, by x."""
    from mjx_qvpo import runs

    if not os.path.isdir(workdir):
        raise ConfigError(f"run directory {workdir!r} does not exist")
    try:
        rows = runs.read_metrics(workdir)
    except json.JSONDecodeError:  # a line being written by a live run: skip unreadable lines
        with open(os.path.join(workdir, runs.METRICS_FILE)) as f:
            rows = [_parse(line) for line in f]
        print(f"warning: skipped unreadable lines of {workdir}/{runs.METRICS_FILE}",
              file=sys.stderr)
        rows = [r for r in rows if r is not None]
    pts = [(float(r[x]), float(r[metric])) for r in rows
           if r.get(metric) is not None and x in r and np.isfinite(r[metric])]
    if not pts:
        keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float))})
        if rows and metric not in keys:  # a misspelled key: suggest, and list what there is
            close = difflib.get_close_matches(metric, keys, n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ConfigError(f"--metric {metric!r}: run {workdir!r} has no such key{hint} "
                              f"(its keys: {', '.join(keys)})")
        raise ConfigError(f"{workdir!r} has no {metric!r} values in its metrics yet")
    pts.sort()
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])


def _parse(line: str) -> dict | None:
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) else None


def config_key(workdir: str) -> tuple[dict[str, Any], str]:
    """A run's flattened config without the ``IGNORED_FIELDS``, and that dict as a hashable key."""
    from mjx_qvpo import runs

    # Tuples as lists, so that a config saved as JSON and one built in Python give the same key.
    flat = {k: list(v) if isinstance(v, tuple) else v
            for k, v in flatten(runs.load_config(workdir).to_dict()).items()}
    for name in IGNORED_FIELDS:
        flat.pop(name, None)
    return flat, json.dumps(flat, sort_keys=True, default=list)


def group_runs(workdirs: Sequence[str]) -> list[dict[str, Any]]:
    """Runs grouped by config (ignoring ``IGNORED_FIELDS``), in order of first appearance.

    Each group is ``{"config": flat config, "runs": [workdir, ...], "label": str}``; the label is
    the task plus the fields that differ between groups (``field=value``).
    """
    groups: dict[str, dict[str, Any]] = {}
    for w in workdirs:
        flat, key = config_key(w)
        groups.setdefault(key, {"config": flat, "runs": []})["runs"].append(w)
    out = list(groups.values())
    varying = sorted(k for k in set().union(*(g["config"] for g in out))
                     if k != "task" and len({json.dumps(g["config"].get(k), default=list)
                                             for g in out}) > 1)
    for g in out:
        parts = [str(g["config"].get("task", "?"))]
        parts += [f"{k}={g['config'].get(k)}" for k in varying[:4]]
        if len(varying) > 4:
            parts.append("...")
        g["label"] = ", ".join(parts)
    return out


def aggregate(curves: Sequence[tuple[np.ndarray, np.ndarray]], num_points: int = 200
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof=0) across runs: (x, mean, std).

    Runs that share their x values are combined point by point; otherwise they are interpolated
    linearly onto ``num_points`` points spanning the x range that all runs cover.
    """
    xs = [c[0] for c in curves]
    if all(len(x) == len(xs[0]) and np.array_equal(x, xs[0]) for x in xs):
        grid = xs[0]
        ys = np.stack([c[1] for c in curves])
    else:
        lo, hi = max(x[0] for x in xs), min(x[-1] for x in xs)
        if hi <= lo:
            raise ConfigError("the runs of one config do not overlap in x; plot them separately")
        grid = np.linspace(lo, hi, num_points)
        ys = np.stack([np.interp(grid, x, y) for x, y in curves])
    return grid, ys.mean(axis=0), ys.std(axis=0)


def plot_runs(workdirs: Sequence[str], out: str, *, x: str = "env_steps",
              metric: str = DEFAULT_METRIC, title: str | None = None) -> list[str]:
    """Draw the learning curves of ``workdirs`` and save them as PNG and SVG next to ``out``;
    returns the paths written."""
    if x not in X_AXES:
        raise ConfigError(f"--x must be one of {list(X_AXES)}, got {x!r}")
    if not workdirs:
        raise ConfigError("give at least one run directory")
    for w in workdirs:
        if not os.path.isdir(w):
            raise ConfigError(f"run directory {w!r} does not exist")
    groups = group_runs(workdirs)
    curves = {id(g): [load_curve(w, metric, x) for w in g["runs"]] for g in groups}

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    x_max = max(float(c[0][-1]) for cs in curves.values() for c in cs)
    scale, x_label = 1.0, "environment steps"
    if x == "wall_time":
        scale, x_label = ((1 / 60, "wall-clock time (minutes)") if x_max > 600
                          else (1.0, "wall-clock time (seconds)"))
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for g in groups:
        cs = curves[id(g)]
        n = len(cs)
        grid, mean, std = aggregate(cs)
        label = f"{g['label']} ({n} seed{'s' if n > 1 else ''}{', mean ± std' if n > 1 else ''})"
        line, = ax.plot(grid * scale, mean, label=label, linewidth=1.8,
                        marker="o" if len(grid) <= 30 else None, markersize=3)
        if n > 1:
            ax.fill_between(grid * scale, mean - std, mean + std, color=line.get_color(),
                            alpha=0.25, linewidth=0)
    tasks = sorted({str(g["config"].get("task", "?")) for g in groups})
    ax.set_title(title or f"QVPO learning curve: {', '.join(tasks)}")
    ax.set_xlabel(x_label)
    ax.set_ylabel(_METRIC_LABELS.get(metric, metric))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if x == "env_steps":
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_steps_label))
    fig.tight_layout()
    stem = os.path.splitext(out)[0]
    os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
    paths = [stem + ".png", stem + ".svg"]
    for p in paths:
        fig.savefig(p)
    plt.close(fig)
    return paths


def _steps_label(value: float, _pos=None) -> str:
    """Tick label of an env-step count: 0, 500, 20k, 1.5M."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= div:
            return f"{value / div:.4g}{suffix}"
    return f"{value:.4g}"


def default_out(workdirs: Sequence[str], x: str) -> str:
    """``runs/plots/<task>_<x>.png`` (tasks joined by ``+``)."""
    from mjx_qvpo import runs

    tasks = sorted({str(runs.load_config(w).task) for w in workdirs})
    return os.path.join("runs", "plots", f"{'+'.join(tasks)}_{x}.png")


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m mjx_qvpo.plot``."""
    p = ArgumentParser(prog="python -m mjx_qvpo.plot",
                       description="Learning curves (PNG and SVG) of one or more runs; runs that "
                                   "differ only in seed are averaged with a shaded ± std band.",
                       example="python -m mjx_qvpo.plot runs/ip-seed0 runs/ip-seed1 --out "
                               "runs/ip.png")
    p.add_argument("runs", nargs="*", metavar="RUN", help="run directories")
    p.add_argument("--workdir", action="append", default=[], metavar="RUN",
                   help="a run directory (the same as a positional RUN; repeatable)")
    p.add_argument("--out", default=None, metavar="FILE.png",
                   help="output path; FILE.png and FILE.svg are written "
                        "(default: runs/plots/<task>_<x>.png)")
    p.add_argument("--x", default="env_steps", choices=X_AXES, help="x axis")
    p.add_argument("--metric", default=DEFAULT_METRIC,
                   help=f"metrics.jsonl key to plot (default {DEFAULT_METRIC})")
    p.add_argument("--title", default=None, help="figure title")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; bad input is one clear line on stderr and exit status 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
        args.runs = [*args.runs, *args.workdir]
        if not args.runs:
            raise ConfigError("give at least one run directory (RUN or --workdir RUN)")
        for w in args.runs:
            if not os.path.isdir(w):
                raise ConfigError(f"run directory {w!r} does not exist")
        out = args.out or default_out(args.runs, args.x)
        paths = plot_runs(args.runs, out, x=args.x, metric=args.metric, title=args.title)
    except (ConfigError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for p in paths:
        print(f"wrote {p} ({os.path.getsize(p):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
