"""Checkpoints of the whole ``TrainingState`` (networks, targets, optimizer states, normalizer,
environment states, replay buffer, PRNG key, counters) as one ``.npz`` file per save.

A save writes to a temporary file in the same directory, flushes it to disk and renames it into
place, so a crash mid-write never leaves something that looks like a checkpoint. The last
``keep`` checkpoints are kept. Restoring needs a template state of the same structure (built by
``Trainer.init`` under ``jax.eval_shape``), against which every leaf's shape and dtype is checked.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys
import tempfile

import jax
import numpy as np

_NAME = re.compile(r"ckpt_(\d+)\.npz$")


class CheckpointError(OSError):
    """A checkpoint could not be written (the message says why and that older ones are intact)."""


def _paths(tree) -> list[str]:
    return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def list_checkpoints(directory: str) -> list[tuple[int, str]]:
    """(env_step, path) of every checkpoint in ``directory``, oldest first."""
    out = []
    for path in glob.glob(os.path.join(directory, "ckpt_*.npz")):
        m = _NAME.search(os.path.basename(path))
        if m:
            out.append((int(m.group(1)), path))
    return sorted(out)


def save(directory: str, state, step: int, keep: int = 3, skip: tuple[str, ...] = ()) -> str:
    """Write ``state`` as ``ckpt_<step>.npz`` atomically and prune all but the newest ``keep``.

    Leaves whose path starts with one of ``skip`` (e.g. ``".buffer"``) are not written; they are
    restored from the template instead.
    """
    os.makedirs(directory, exist_ok=True)
    names = _paths(state)
    leaves = jax.device_get(jax.tree.leaves(state))
    arrays = {f"leaf_{i}": np.asarray(x) for i, (n, x) in enumerate(zip(names, leaves))
              if not n.startswith(skip)}
    arrays["__meta__"] = np.asarray(json.dumps({"step": int(step), "paths": names,
                                                "skipped": list(skip)}))
    final = os.path.join(directory, f"ckpt_{int(step):012d}.npz")
    fd, tmp = tempfile.mkstemp(prefix=".tmp_ckpt_", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except OSError as e:  # e.g. a full disk: the previous checkpoints are untouched
        if os.path.exists(tmp):
            os.remove(tmp)
        raise CheckpointError(f"could not write checkpoint {final}: {e.strerror or e}; the "
                              f"previous checkpoints in {directory} are intact") from e
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    for _, old in list_checkpoints(directory)[:-keep]:
        os.remove(old)
    return final


def load(path: str, template):
    """Read one checkpoint into the structure of ``template`` (checks paths, shapes, dtypes)."""
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["__meta__"]))
        names = _paths(template)
        if meta["paths"] != names:
            raise ValueError(f"{path}: its state layout does not match this config's "
                             f"(was it written by a different config or version?)")
        flat, treedef = jax.tree.flatten(template)
        leaves = []
        for i, (name, t) in enumerate(zip(names, flat)):
            key = f"leaf_{i}"
            if key not in f.files:
                if not name.startswith(tuple(meta["skipped"])):
                    raise ValueError(f"{path}: leaf {name} is missing")
                leaves.append(np.zeros(t.shape, t.dtype))
                continue
            x = f[key]
            if x.shape != tuple(t.shape) or x.dtype != t.dtype:
                raise ValueError(f"{path}: leaf {name} has shape {x.shape} {x.dtype}, "
                                 f"expected {tuple(t.shape)} {t.dtype}")
            leaves.append(x)
    return jax.tree.unflatten(treedef, leaves), meta["step"]


def restore_latest(directory: str, template):
    """Load the newest readable checkpoint; a corrupt newest one is reported and skipped.

    Returns (state, step), or (None, None) when the directory holds no checkpoint.
    """
    for step, path in reversed(list_checkpoints(directory)):
        try:
            return load(path, template)
        except Exception as e:  # a truncated or corrupt file: fall back to the previous one
            print(f"warning: checkpoint {path} is unreadable ({e}); trying the previous one",
                  file=sys.stderr)
    return None, None
