"""``python -m mjx_qvpo.evaluate --workdir RUN --episodes M [--out FILE.json] [--checkpoint STEP]
[--seed S]``

Score a checkpoint (the newest by default): M fresh environments run one episode each, in
parallel, acting with the evaluation policy (best-of-K_eval, ``cfg.num_eval_samples``, exactly
as ``trainer.evaluate`` during training) for at most the run's ``episode_length`` steps. Prints the
mean, standard deviation (population, ddof=0, as in the training log), min and max of the
undiscounted returns, and writes them with the per-episode returns and lengths as JSON to
``--out`` (default ``RUN/eval_<step>.json``).

Bad input (no run directory, no checkpoint, an unknown step, M < 1) is one line on stderr and exit
status 2.
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

# Keys of the JSON summary (tests and scripts rely on these).
SUMMARY_KEYS = ("workdir", "task", "checkpoint", "episodes", "num_eval_samples", "episode_length",
                "seed", "return_mean", "return_std", "return_min", "return_max", "length_mean",
                "returns", "lengths", "seconds")


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


def evaluate_run(workdir: str, episodes: int, *, checkpoint: int | None = None,
                 seed: int = 0) -> dict:
    """Returns of ``episodes`` evaluation episodes of a run's checkpoint, as the JSON summary
    (keys ``SUMMARY_KEYS``)."""
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ConfigError(f"--episodes must be an integer >= 1, got {episodes!r}")
    check_checkpoint(workdir, checkpoint)

    import jax

    import envs
    from mjx_qvpo import acting, runs

    cfg, trainer, state, step = runs.load_state(workdir, checkpoint)
    policy_factory = acting.make_inference_fn(trainer.nets, cfg.num_eval_samples)

    @jax.jit
    def run(params, key):
        return envs.evaluate_returns(trainer.env, policy_factory(params), key, episodes,
                                     cfg.episode_length)

    t0 = time.perf_counter()
    returns, lengths = jax.device_get(run(trainer.policy_params(state), jax.random.PRNGKey(seed)))
    returns, lengths = np.asarray(returns, np.float64), np.asarray(lengths)
    return {
        "workdir": workdir, "task": cfg.task, "checkpoint": int(step), "episodes": episodes,
        "num_eval_samples": int(cfg.num_eval_samples), "episode_length": int(cfg.episode_length),
        "seed": seed,
        "return_mean": float(returns.mean()), "return_std": float(returns.std()),
        "return_min": float(returns.min()), "return_max": float(returns.max()),
        "length_mean": float(lengths.mean()),
        "returns": [float(x) for x in returns], "lengths": [int(x) for x in lengths],
        "seconds": time.perf_counter() - t0,
    }


def default_out(workdir: str, step: int) -> str:
    """Where the summary goes without ``--out``: ``RUN/eval_<step>.json``."""
    return os.path.join(workdir, f"eval_{step}.json")


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
                description="Mean, std, min and max return of a checkpoint over M episodes.")
    p.add_argument("--workdir", required=True, help="run directory")
    p.add_argument("--episodes", type=int, required=True, metavar="M",
                   help="episodes (fresh environments run in parallel)")
    p.add_argument("--out", default=None, metavar="FILE.json",
                   help="where to write the JSON summary (default: RUN/eval_<step>.json)")
    p.add_argument("--checkpoint", type=int, default=None, metavar="STEP",
                   help="env step of the checkpoint (default: the newest)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of the episodes")
    p.add_argument(compile_cache.FLAG, action="store_true",
                   help="do not use the persistent compilation cache (see mjx_qvpo.compile_cache)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; bad input is one clear line on stderr and exit status 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
        compile_cache.enable(disabled=args.no_compile_cache)
        summary = evaluate_run(args.workdir, args.episodes, checkpoint=args.checkpoint,
                               seed=args.seed)
        out = args.out or default_out(args.workdir, summary["checkpoint"])
        write_json(out, summary)
    except (ConfigError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(describe(summary))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
