"""``python -m mjx_qvpo.evaluate --workdir RUN --episodes M [--out FILE.json] [--checkpoint STEP]
[--seed S] [--samples K]`` (or ``RUN`` positional, or ``--policy FILE.npz`` for a file from
``mjx_qvpo.export``)

Score a checkpoint (the newest by default): M fresh environments run one episode each, in
parallel, acting with the evaluation policy (best-of-K_eval, ``cfg.num_eval_samples``, exactly
as ``trainer.evaluate`` during training; ``--samples K`` acts best-of-K instead, e.g. to see
how much of a policy's return the argmax over the critic adds, docs/algorithm.md section 5) for
at most the run's ``episode_length`` steps. Prints the mean, standard deviation (population,
ddof=0, as in the training log), min and max of the undiscounted returns, and writes them with
the per-episode returns and lengths as JSON to ``--out`` (default ``RUN/eval_<step>.json``, or
``<FILE>_eval.json`` beside a policy file; with ``--samples K`` the name ends in ``_k<K>.json``,
so the run's own evaluation file stays).

Bad input (no run directory, no checkpoint, an unknown step, M < 1, K < 1) is one line on stderr
and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Sequence

import numpy as np

from mjx_qvpo import compile_cache
from mjx_qvpo.cli import ArgumentParser
from mjx_qvpo.config import ConfigError
from mjx_qvpo.export import is_policy_file

# Keys of the JSON summary (tests and scripts rely on these).
# num_eval_samples is the K acted with; run_num_eval_samples the run's K_eval (they differ under
# --samples).
SUMMARY_KEYS = ("workdir", "task", "checkpoint", "episodes", "num_eval_samples",
                "run_num_eval_samples", "episode_length", "seed", "return_mean", "return_std",
                "return_min", "return_max", "length_mean", "returns", "lengths", "seconds")


def check_checkpoint(workdir: str, step: int | None) -> None:
    """Fail fast (before building anything) when ``workdir`` is no run, holds no checkpoint, or
    has none at env step ``step``; raises ``ConfigError`` with one clear sentence."""
    from mjx_qvpo import checkpoint, runs

    runs.load_config(workdir)  # "... is not a run directory" when config.json is missing
    found = [s for s, _ in checkpoint.list_checkpoints(os.path.join(workdir, runs.CKPT_DIR))]
    if not found:
        raise ConfigError(f"{workdir!r} holds no checkpoint yet")
    if step is not None and step not in found:
        raise ConfigError(f"no checkpoint at env step {step} in {workdir!r}; available: {found}")


def _check_count(flag: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{flag} must be an integer >= 1, got {value!r}")


def evaluate_run(workdir: str, episodes: int, *, checkpoint: int | None = None,
                 seed: int = 0, samples: int | None = None) -> dict:
    """Returns of ``episodes`` evaluation episodes of a run's checkpoint, or of an exported policy
    file when ``workdir`` is one (``export.is_policy_file``), as the JSON summary (keys
    ``SUMMARY_KEYS``). Actions are best-of-``samples`` (docs/algorithm.md section 5); None means
    the run's ``num_eval_samples``."""
    _check_count("--episodes", episodes)
    if samples is not None:
        _check_count("--samples", samples)
    from mjx_qvpo import export

    policy_file = export.is_policy_file(workdir)
    if policy_file and checkpoint is not None:
        raise ConfigError("--checkpoint applies to a run directory, not to a policy file")
    if not policy_file:
        check_checkpoint(workdir, checkpoint)

    import jax

    import envs
    from mjx_qvpo import acting, runs

    # A policy file and a run load into the same (cfg, trainer, state, step) shape.
    cfg, trainer, state, step = (export.load_exported(workdir) if policy_file
                                 else runs.load_state(workdir, checkpoint))
    num_samples = cfg.num_eval_samples if samples is None else samples
    policy_factory = acting.make_inference_fn(trainer.nets, num_samples)

    env = trainer.env  # built here, outside the trace (a policy file builds it on first use)

    @jax.jit
    def run(params, key):
        return envs.evaluate_returns(env, policy_factory(params), key, episodes,
                                     cfg.episode_length)

    t0 = time.perf_counter()
    returns, lengths = jax.device_get(run(trainer.policy_params(state), jax.random.PRNGKey(seed)))
    returns, lengths = np.asarray(returns, np.float64), np.asarray(lengths)
    return {
        "workdir": workdir, "task": cfg.task, "checkpoint": int(step), "episodes": episodes,
        "num_eval_samples": int(num_samples), "run_num_eval_samples": int(cfg.num_eval_samples),
        "episode_length": int(cfg.episode_length),
        "seed": seed,
        "return_mean": float(returns.mean()), "return_std": float(returns.std()),
        "return_min": float(returns.min()), "return_max": float(returns.max()),
        "length_mean": float(lengths.mean()),
        "returns": [float(x) for x in returns], "lengths": [int(x) for x in lengths],
        "seconds": time.perf_counter() - t0,
    }


def default_out(workdir: str, step: int, samples: int | None = None) -> str:
    """Where the summary goes without ``--out``: ``RUN/eval_<step>.json`` (for a policy file
    ``FILE.npz``: ``FILE_eval.json``), with ``_k<samples>`` before ``.json`` under ``--samples``."""
    tail = ".json" if samples is None else f"_k{samples}.json"
    if is_policy_file(workdir):
        return os.path.splitext(workdir)[0] + "_eval" + tail
    return os.path.join(workdir, f"eval_{step}" + tail)


def write_json(path: str, summary: dict) -> None:
    """Write the summary as indented JSON (creating the folder)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")


def describe(summary: dict) -> str:
    """One line: the statistics the CLI prints."""
    return (f"{summary['task']} at env step {summary['checkpoint']:,}: return "
            f"{summary['return_mean']:.6g} ± {summary['return_std']:.4g} (min "
            f"{summary['return_min']:.6g}, max {summary['return_max']:.6g}) over "
            f"{summary['episodes']} episodes, best-of-{summary['num_eval_samples']}, mean length "
            f"{summary['length_mean']:.4g} (took {summary['seconds']:.1f} s incl. compile)")


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m mjx_qvpo.evaluate``."""
    p = ArgumentParser(prog="python -m mjx_qvpo.evaluate",
                       description="Mean, std, min and max return of a checkpoint (or an exported "
                                   "policy file) over M episodes, acting best-of-K_eval (or "
                                   "best-of-K with --samples K).",
                       example="python -m mjx_qvpo.evaluate --workdir runs/ip --episodes 16")
    p.add_argument("run", nargs="?", default=None, metavar="RUN",
                   help="run directory (the same as --workdir RUN)")
    p.add_argument("--workdir", default=None, metavar="RUN", help="run directory")
    p.add_argument("--policy", default=None, metavar="FILE.npz",
                   help="an exported policy (python -m mjx_qvpo.export) instead of a run")
    p.add_argument("--episodes", type=int, required=True, metavar="M",
                   help="episodes (fresh environments run in parallel)")
    p.add_argument("--out", default=None, metavar="FILE.json",
                   help="where to write the JSON summary (default: RUN/eval_<step>.json)")
    p.add_argument("--checkpoint", type=int, default=None, metavar="STEP",
                   help="env step of the checkpoint (default: the newest)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of the episodes")
    p.add_argument("--samples", type=int, default=None, metavar="K",
                   help="act best-of-K (default: the run's num_eval_samples, K_eval)")
    p.add_argument(compile_cache.FLAG, action="store_true",
                   help="do not use the persistent compilation cache (see mjx_qvpo.compile_cache)")
    return p


def source_of(args) -> str:
    """The one run directory or policy file of a parsed evaluate/render command line
    (``RUN``, ``--workdir RUN`` or ``--policy FILE.npz``)."""
    given = [x for x in dict.fromkeys((args.run, args.workdir, args.policy)) if x]
    if len(given) != 1:
        raise ConfigError("give exactly one of --workdir RUN (or RUN) and --policy FILE.npz"
                          + (f", got {given}" if given else ""))
    if args.policy and not args.policy.endswith(".npz"):
        raise ConfigError(f"--policy must be a .npz file from python -m mjx_qvpo.export, got "
                          f"{args.policy!r}")
    return given[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; bad input is one clear line on stderr and exit status 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
        compile_cache.enable(disabled=args.no_compile_cache)
        source = source_of(args)
        summary = evaluate_run(source, args.episodes, checkpoint=args.checkpoint, seed=args.seed,
                               samples=args.samples)
        out = args.out or default_out(source, summary["checkpoint"], args.samples)
        write_json(out, summary)
    except (ConfigError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(describe(summary))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
