"""How long a checkpoint stalls training, at a config's real state size (issue 13, item 6).

``python scripts/checkpoint_stall.py --config configs/humanoid.py [--config.FIELD=VALUE ...]
[--dir DIR]`` builds the config's ``TrainingState`` with ``trainer.init`` (nothing is trained),
then times a synchronous ``checkpoint.save`` and a ``BackgroundSaver.submit`` (the part the
training loop waits for: the copy into host memory) plus its write in the background.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

from mjx_qvpo import checkpoint  # noqa: E402
from mjx_qvpo.train import load_run_config, parse_args  # noqa: E402
from mjx_qvpo.config import resolve  # noqa: E402


def main(argv=None) -> int:
    """Print the state size, the synchronous save time and the background saver's stall."""
    argv = list(sys.argv[1:] if argv is None else argv)
    directory = None
    if "--dir" in argv:
        i = argv.index("--dir")
        directory = argv[i + 1]
        del argv[i:i + 2]
    path, overrides, _ = parse_args(argv, flag_names=())
    cfg = resolve(load_run_config(path, overrides))
    from mjx_qvpo.training import make_trainer
    trainer = make_trainer(cfg, single_device=True)
    t = time.perf_counter()
    state = jax.block_until_ready(jax.jit(trainer.init)(jax.random.PRNGKey(0)))
    init_s = time.perf_counter() - t
    nbytes = sum(x.nbytes for x in jax.tree.leaves(state))
    root = tempfile.mkdtemp(prefix="ckpt_stall_", dir=directory)
    try:
        t = time.perf_counter()
        checkpoint.save(os.path.join(root, "sync"), state, 1)
        sync_s = time.perf_counter() - t
        saver = checkpoint.BackgroundSaver(os.path.join(root, "async"))
        stall_s, total_s = [], []
        for step in (1, 2):  # the second save reuses the first one's host arrays
            t = time.perf_counter()
            saver.submit(state, step)
            stall_s.append(time.perf_counter() - t)
            saver.wait()
            total_s.append(time.perf_counter() - t)
        size = os.path.getsize(checkpoint.list_checkpoints(os.path.join(root, "sync"))[0][1])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"task {cfg.task}, num_envs {cfg.num_envs}, buffer_size {cfg.buffer_size}: state "
          f"{nbytes / 2**30:.2f} GiB in memory, checkpoint file {size / 2**30:.2f} GiB "
          f"(init {init_s:.1f} s)")
    print(f"synchronous checkpoint.save: {sync_s:.2f} s")
    for i, (stall, total) in enumerate(zip(stall_s, total_s)):
        print(f"BackgroundSaver, save {i + 1}: training stalls {stall:.2f} s (host copy), the "
              f"write finishes after {total:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
