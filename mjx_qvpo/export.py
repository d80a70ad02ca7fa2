"""``python -m mjx_qvpo.export --workdir RUN [--checkpoint STEP] [--out policy.npz]``

Export what acting needs from a run's checkpoint, and nothing else: the actor and critic
parameters (the critic scores the best-of-K_eval candidates), the observation normalizer, and the
resolved config (from which the networks are rebuilt), in one ``.npz`` file of plain arrays (no
pickles). The replay buffer, optimizer states, target networks and environment states are left
out, so the file is small (kilobytes to a few MB where a checkpoint with its buffer is up to GBs).

``mjx_qvpo.load_policy(path)`` turns the file back into a jittable ``policy(obs, key) -> action``
(actions in [-1, 1]): best-of-K_eval through ``acting.make_inference_fn``, the very function
``evaluate``, ``render`` and the training-time evaluation act with. ``python -m mjx_qvpo.evaluate``
and ``python -m mjx_qvpo.render`` take ``--policy FILE.npz`` in place of ``--workdir RUN``.

Bad input (no run, no checkpoint, an unknown step, an unwritable output) is one line on stderr and
exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import zipfile
from typing import Any, Callable, Sequence

import numpy as np

from mjx_qvpo.cli import ArgumentParser
from mjx_qvpo.config import ConfigError

FORMAT = "mjx_qvpo.policy/1"  # bump when the file's layout changes


def default_out(workdir: str, step: int) -> str:
    """Where the policy goes without ``--out``: ``RUN/policy_<step>.npz``."""
    return os.path.join(workdir, f"policy_{step}.npz")


def _paths(tree) -> list[str]:
    import jax
    return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def export_policy(workdir: str, out: str | None = None, checkpoint: int | None = None) -> dict:
    """Write the policy of a run's checkpoint (the newest by default) to ``out`` (default
    ``RUN/policy_<step>.npz``); returns ``{path, step, task, bytes}``."""
    import jax

    from mjx_qvpo import runs
    from mjx_qvpo.config import to_json
    from mjx_qvpo.evaluate import check_checkpoint

    check_checkpoint(workdir, checkpoint)
    cfg, trainer, state, step = runs.load_state(workdir, checkpoint)
    params = jax.device_get(trainer.policy_params(state))  # (actor, critic, normalizer)
    meta = {"format": FORMAT, "step": int(step), "task": cfg.task,
            "observation_size": int(trainer.env.observation_size),
            "action_size": int(trainer.env.action_size), "paths": _paths(params),
            "source": os.path.abspath(workdir)}
    arrays = {f"leaf_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(params))}
    arrays["__meta__"] = np.asarray(json.dumps(meta))
    arrays["__config__"] = np.asarray(to_json(cfg))
    out = out or default_out(workdir, int(step))
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp_policy_", dir=folder)
    try:  # written beside the target and renamed: a crash never leaves half a policy file
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return {"path": out, "step": int(step), "task": cfg.task, "bytes": os.path.getsize(out)}


def load_exported(path: str):
    """Read an exported policy: ``(cfg, trainer, params, step)`` where ``trainer`` carries what
    acting needs (``cfg``, ``nets``, ``env``, ``policy_params``), shaped like ``runs.load_state``'s
    result so that ``evaluate`` and ``render`` treat a policy file and a run the same way; here
    the "state" is the params tuple itself."""
    import jax
    import jax.numpy as jnp

    from mjx_qvpo.config import from_json
    from mjx_qvpo.training import make_env, make_networks  # first: it silences MJX's warp lines
    from brax.training.acme import running_statistics, specs

    if not os.path.isfile(path):
        raise ConfigError(f"policy file {path!r} does not exist")
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ConfigError(f"policy file {path!r} is not a .npz file: {e}") from None
    with f:
        if "__meta__" not in f.files or "__config__" not in f.files:
            raise ConfigError(f"{path!r} is not an exported policy (make one with python -m "
                              f"mjx_qvpo.export --workdir RUN)")
        meta = json.loads(str(f["__meta__"]))
        if meta.get("format") != FORMAT:
            raise ConfigError(f"policy file {path!r} has format {meta.get('format')!r}; this "
                              f"version reads {FORMAT!r}")
        cfg = from_json(str(f["__config__"]))
        obs, act = meta["observation_size"], meta["action_size"]
        nets = make_networks(cfg, obs, act)
        key = jax.random.PRNGKey(0)
        # As Trainer.init builds them (under eval_shape every leaf gets a shape and a dtype).
        template = jax.eval_shape(lambda k: (
            nets.actor.init(k), nets.critic.init(k),
            running_statistics.init_state(specs.Array((obs,), jnp.float32))), key)
        if _paths(template) != meta["paths"]:
            raise ConfigError(f"policy file {path!r} does not match the networks its config "
                              f"describes (written by another version?)")
        flat, treedef = jax.tree.flatten(template)
        leaves = []
        for i, t in enumerate(flat):
            x = f[f"leaf_{i}"]
            if x.shape != tuple(t.shape) or x.dtype != t.dtype:
                raise ConfigError(f"policy file {path!r}: leaf {meta['paths'][i]} has shape "
                                  f"{x.shape} {x.dtype}, expected {tuple(t.shape)} {t.dtype}")
            leaves.append(jnp.asarray(x))
    params = jax.tree.unflatten(treedef, leaves)
    # The environment is built lazily: acting alone (load_policy) needs no MJX model.
    trainer = _PolicyTrainer(cfg, nets, make_env)
    return cfg, trainer, params, int(meta["step"])


class _PolicyTrainer:
    """The parts of ``training.Trainer`` that acting, evaluation and rendering read."""

    def __init__(self, cfg, nets, make_env: Callable):
        self.cfg, self.nets = cfg, nets
        self._make_env = make_env
        self._env = None

    @property
    def env(self):
        """The run's environment, built on first use."""
        if self._env is None:
            self._env = self._make_env(self.cfg)
        return self._env

    @staticmethod
    def policy_params(params):
        """The "state" of a policy file is already ``(actor, critic, normalizer)``."""
        return params


def load_policy(path: str, num_samples: int | None = None) -> Callable[[Any, Any], Any]:
    """A jittable ``policy(obs, key) -> action`` from an exported file: observations (B, obs) or
    (obs,), actions in [-1, 1]; best-of-``num_samples`` candidates (default the run's K_eval,
    ``num_eval_samples``), exactly as ``evaluate`` acts."""
    from mjx_qvpo import acting

    cfg, trainer, params, _ = load_exported(path)
    k = cfg.num_eval_samples if num_samples is None else int(num_samples)
    if k < 1:
        raise ConfigError(f"num_samples must be >= 1, got {k}")
    batched = acting.make_inference_fn(trainer.nets, k)(params)

    def policy(obs, key):
        if obs.ndim == 1:  # one observation: act as a batch of one
            return batched(obs[None], key)[0]
        return batched(obs, key)
    return policy


def is_policy_file(path: str) -> bool:
    """Whether ``path`` names an exported policy (a ``.npz`` file) rather than a run directory."""
    return path.endswith(".npz") and not os.path.isdir(path)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m mjx_qvpo.export``."""
    p = ArgumentParser(prog="python -m mjx_qvpo.export",
                       description="Export a run's policy (actor, critic, observation normalizer "
                                   "and config; no buffer, no optimizer) as one small .npz;\n"
                                   "load it with mjx_qvpo.load_policy(path) -> policy(obs, key).",
                       example="python -m mjx_qvpo.export --workdir runs/ip --out ip_policy.npz")
    p.add_argument("run", nargs="?", default=None, metavar="RUN",
                   help="run directory (the same as --workdir RUN)")
    p.add_argument("--workdir", default=None, metavar="RUN", help="run directory")
    p.add_argument("--checkpoint", type=int, default=None, metavar="STEP",
                   help="env step of the checkpoint (default: the newest)")
    p.add_argument("--out", default=None, metavar="FILE.npz",
                   help="output file (default: RUN/policy_<step>.npz)")
    return p


def run_dir(args) -> str:
    """The run directory of a parsed command line: ``--workdir RUN`` or the positional ``RUN``
    (exactly one)."""
    if args.run and args.workdir and args.run != args.workdir:
        raise ConfigError(f"give the run once: RUN {args.run!r} and --workdir {args.workdir!r} "
                          f"differ")
    workdir = args.workdir or args.run
    if not workdir:
        raise ConfigError("give the run directory: --workdir RUN (or RUN)")
    return workdir


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; bad input is one clear line on stderr and exit status 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
        if args.out is not None and not args.out.endswith(".npz"):
            raise ConfigError(f"--out must end in .npz, got {args.out!r}")
        info = export_policy(run_dir(args), args.out, args.checkpoint)
    except (ConfigError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{info['task']} at env step {info['step']:,}: wrote {info['path']} "
          f"({info['bytes']:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
