"""Checkpoints of the whole ``TrainingState`` (networks, targets, optimizer states, normalizer,
environment states, replay buffer, PRNG key, counters) as one ``.npz`` file per save.

A save writes to a temporary file in the same directory, flushes it to disk and renames it into
place, so a crash mid-write never leaves something that looks like a checkpoint. The last
``keep`` checkpoints are kept. Restoring needs a template state of the same structure (built by
``Trainer.init`` under ``jax.eval_shape``), against which every leaf's shape and dtype is checked:
a mismatch is a ``LayoutError`` (the checkpoint belongs to another config), never taken for a
corrupt file. Leaves are matched by path, so fields added to the state later can be filled with
defaults when an older checkpoint lacks them.

``BackgroundSaver`` writes from a thread: the state is copied into host memory first (so the
next chunk may reuse the device buffers), then written with the same atomic rename and pruning.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys
import tempfile
import threading

import jax
import numpy as np

_NAME = re.compile(r"ckpt_(\d+)\.npz$")


class CheckpointError(OSError):
    """A checkpoint could not be written (the message says why and that older ones are intact)."""


class LayoutError(ValueError):
    """A readable checkpoint whose state layout (leaf paths, shapes, dtypes) is not the
    template's: it was written by a different config or version."""


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


def host_arrays(state, skip: tuple[str, ...] = (), staging: dict | None = None
                ) -> dict[str, np.ndarray]:
    """The ``.npz`` entries of ``state``: one array per leaf not under ``skip``, plus metadata.

    With ``staging`` (a dict, kept by the caller between saves) every array is an independent
    host copy: on a CPU backend ``device_get`` returns views of device buffers that a later
    donated chunk overwrites. Copies go into the previous save's arrays when shapes match,
    because filling fresh memory costs a page fault per 4 KiB: a fresh 2 GiB copy took 47 s on
    this project's loaded CPU, a copy into memory already touched 3.4 s.
    """
    names = _paths(state)
    kept = [(i, n, x) for i, (n, x) in enumerate(zip(names, jax.tree.leaves(state)))
            if not n.startswith(skip)]
    host = jax.device_get([x for _, _, x in kept])
    arrays = {}
    for (i, _, leaf), x in zip(kept, host):
        x, key = np.asarray(x), f"leaf_{i}"
        if staging is not None:
            old = staging.get(key)
            if old is not None and old.shape == x.shape and old.dtype == x.dtype:
                np.copyto(old, x)
                x = old
            elif isinstance(leaf, jax.Array) and all(
                    d.platform != "cpu" for d in leaf.devices()):
                pass  # a transfer from an accelerator is already a host copy of our own
            else:
                x = np.array(x, copy=True)
            staging[key] = x
        arrays[key] = x
    arrays["__meta__"] = np.asarray(json.dumps({"paths": names, "skipped": list(skip)}))
    return arrays


def write(directory: str, arrays: dict[str, np.ndarray], step: int, keep: int = 3) -> str:
    """Write ``host_arrays`` output as ``ckpt_<step>.npz`` atomically; prune all but ``keep``."""
    os.makedirs(directory, exist_ok=True)
    meta = json.loads(str(arrays["__meta__"]))
    meta["step"] = int(step)
    arrays = {**arrays, "__meta__": np.asarray(json.dumps(meta))}
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


def save(directory: str, state, step: int, keep: int = 3, skip: tuple[str, ...] = ()) -> str:
    """Write ``state`` as ``ckpt_<step>.npz`` atomically and prune all but the newest ``keep``.

    Leaves whose path starts with one of ``skip`` (e.g. ``".buffer"``) are not written; they are
    restored from the template instead.
    """
    return write(directory, host_arrays(state, skip), step, keep)


class BackgroundSaver:
    """Checkpoints written by a background thread, one at a time.

    ``submit`` waits for the previous write, copies the state into host memory (the only part
    that stalls training; the host arrays are reused from save to save), then starts writing.
    ``wait`` joins the current write and re-raises its error (a ``CheckpointError``); call it
    before exiting so that the last checkpoint is complete. Atomicity and pruning are those of
    ``write``.
    """

    def __init__(self, directory: str, keep: int = 3, skip: tuple[str, ...] = ()):
        self.directory, self.keep, self.skip = directory, keep, skip
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._staging: dict[str, np.ndarray] = {}

    def submit(self, state, step: int) -> None:
        """Copy ``state`` to the host now and write it as the checkpoint of ``step`` in a thread."""
        self.wait()  # the staging arrays are the previous write's: it must be finished
        arrays = host_arrays(state, self.skip, staging=self._staging)

        def run():
            try:
                write(self.directory, arrays, step, self.keep)
            except BaseException as e:  # noqa: BLE001 -- re-raised by wait() in the main thread
                self._error = e
        self._thread = threading.Thread(target=run, name=f"checkpoint-{step}", daemon=False)
        self._thread.start()

    def wait(self) -> None:
        """Block until the pending write (if any) is on disk; re-raise its error."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            err, self._error = self._error, None
            raise err


def load(path: str, template, defaults: dict | None = None):
    """Read one checkpoint into the structure of ``template`` (checks paths, shapes, dtypes).

    ``defaults`` maps a leaf-path prefix to a fill value for template leaves an older checkpoint
    lacks (state fields added since). Any other difference is a ``LayoutError``; an unreadable
    file raises whatever numpy raises.
    """
    defaults = defaults or {}
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["__meta__"]))
        names = _paths(template)
        saved = {name: i for i, name in enumerate(meta["paths"])}
        missing = [n for n in names if n not in saved]
        unfilled = [n for n in missing if not n.startswith(tuple(defaults))]
        extra = [n for n in saved if n not in set(names)]
        if unfilled or extra:
            diff = (unfilled + extra)[:3]
            raise LayoutError(f"{path}: its state layout does not match this config's (leaves "
                              f"{', '.join(diff)} differ; was it written by a different config "
                              f"or version?)")
        flat, treedef = jax.tree.flatten(template)
        leaves = []
        for name, t in zip(names, flat):
            if name not in saved:
                fill = next(v for p, v in defaults.items() if name.startswith(p))
                leaves.append(np.full(t.shape, fill, t.dtype))
                continue
            key = f"leaf_{saved[name]}"
            if key not in f.files:
                if not name.startswith(tuple(meta["skipped"])):
                    raise ValueError(f"{path}: leaf {name} is missing")
                leaves.append(np.zeros(t.shape, t.dtype))
                continue
            x = f[key]
            if x.shape != tuple(t.shape) or x.dtype != t.dtype:
                raise LayoutError(f"{path}: leaf {name} has shape {x.shape} {x.dtype}, "
                                  f"expected {tuple(t.shape)} {t.dtype}")
            leaves.append(x)
    if missing:
        shown = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
        print(f"note: {path} predates the state leaves {shown}; filled with defaults",
              file=sys.stderr)
    return jax.tree.unflatten(treedef, leaves), meta["step"]


def restore_latest(directory: str, template, defaults: dict | None = None):
    """Load the newest readable checkpoint; a corrupt newest one is reported and skipped.

    A checkpoint that reads but does not fit ``template`` raises ``LayoutError`` (falling back to
    an older one would hide that the config changed). Returns (state, step), or (None, None) when
    the directory holds no checkpoint.
    """
    for step, path in reversed(list_checkpoints(directory)):
        try:
            return load(path, template, defaults)
        except LayoutError:
            raise
        except Exception as e:  # a truncated or corrupt file: fall back to the previous one
            print(f"warning: checkpoint {path} is unreadable ({e}); trying the previous one",
                  file=sys.stderr)
    return None, None
