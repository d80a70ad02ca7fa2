"""Reading a finished or running run directory: its config, metrics and checkpoints.

A run directory (``workdir``) holds ``config.json`` (the resolved config), ``metrics.jsonl`` (one
JSON object per chunk) and ``checkpoints/ckpt_<env_step>.npz``. Evaluation, rendering and plotting
go through these functions so that every tool reads a run the same way.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax

from mjx_qvpo import checkpoint
from mjx_qvpo.config import ConfigError, from_json

CONFIG_FILE, METRICS_FILE, CKPT_DIR = "config.json", "metrics.jsonl", "checkpoints"


def load_config(workdir: str):
    """The resolved config a run was started with."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise ConfigError(f"{workdir!r} is not a run directory (no {CONFIG_FILE})")
    with open(path) as f:
        return from_json(f.read())


def read_metrics(workdir: str) -> list[dict[str, Any]]:
    """All rows of the run's metrics file, in order (an empty list if there is none yet)."""
    path = os.path.join(workdir, METRICS_FILE)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def load_state(workdir: str, step: int | None = None):
    """Build the run's trainer and load a checkpoint (the newest readable one by default, or the
    one saved at env step ``step``). Returns ``(cfg, trainer, state, step)``."""
    from mjx_qvpo.training import make_trainer  # brax/mjx import is slow; only when needed

    cfg = load_config(workdir)
    trainer = make_trainer(cfg, single_device=True)  # checkpoints load on any device count
    template = jax.eval_shape(trainer.init, jax.random.PRNGKey(cfg.seed))
    ckpt_dir = os.path.join(workdir, CKPT_DIR)
    if step is None:
        state, step = checkpoint.restore_latest(ckpt_dir, template)
        if state is None:
            raise ConfigError(f"{workdir!r} holds no checkpoint yet")
    else:
        found = dict(checkpoint.list_checkpoints(ckpt_dir))
        if step not in found:
            raise ConfigError(f"no checkpoint at env step {step} in {workdir!r}; available: "
                              f"{sorted(found) or 'none'}")
        state, step = checkpoint.load(found[step], template)
    return cfg, trainer, jax.device_put(state), step
