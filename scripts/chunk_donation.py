"""The fused training chunk timed with and without its state donated, interleaved in one process
(session 24): ``python scripts/chunk_donation.py OUT.json --config configs/cpu/hopper.py
[--quick] [--config.field=value ...]`` (the bench's options, so the chunk is the bench's).

``train`` and ``race`` donate the state to the compiled chunk (docs/algorithm.md section 7's
training steps, scanned), so XLA updates the replay buffer in place. A chunk compiled without
donation writes a new copy of the whole state on every call; this measures what that copy costs,
i.e. how far the bench's fused-step figures before ``bench.chained_chunk`` were from training.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from mjx_qvpo import bench  # noqa: E402
from mjx_qvpo.config import derive  # noqa: E402
from mjx_qvpo.training import make_trainer  # noqa: E402


def main(argv):
    """Write OUT.json with per-step medians (ms) and env steps/s of both chunks."""
    out_path, argv = argv[0], argv[1:]
    cfg, _ = bench.parse_bench_args(argv)
    trainer = make_trainer(cfg, single_device=True)
    steps = derive(cfg).steps_per_chunk
    state = bench.prefilled_state(trainer, cfg, jax.random.PRNGKey(cfg.seed))
    plain = jax.jit(trainer.chunk).lower(state).compile()
    _, donated = bench.chained_chunk(trainer, state)
    jax.block_until_ready(plain(state))
    jax.block_until_ready(donated())
    times = {"not_donated": [], "donated": []}
    for _ in range(7):  # interleaved, so both see the same machine
        t = time.perf_counter()
        jax.block_until_ready(plain(state))
        times["not_donated"].append(time.perf_counter() - t)
        t = time.perf_counter()
        jax.block_until_ready(donated())
        times["donated"].append(time.perf_counter() - t)
    buffer_mb = sum(x.nbytes for x in jax.tree.leaves(state.buffer)) / 1e6
    report = {"command": "python scripts/chunk_donation.py " + " ".join([out_path, *argv]),
              "jax": jax.__version__, "device": jax.devices()[0].device_kind,
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "steps_per_chunk": steps, "num_envs": cfg.num_envs, "buffer_mb": buffer_mb}
    for name, ts in times.items():
        med = float(np.median(ts)) / steps
        report[name] = {"ms_per_step": 1e3 * med, "env_steps_per_s": cfg.num_envs / med,
                        "seconds_per_call": ts}
    report["ratio_donated_over_not"] = (report["donated"]["env_steps_per_s"]
                                        / report["not_donated"]["env_steps_per_s"])
    with open(out_path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"{steps} training step(s) per chunk, buffer {buffer_mb:,.0f} MB: not donated "
          f"{report['not_donated']['env_steps_per_s']:,.1f} env steps/s, donated "
          f"{report['donated']['env_steps_per_s']:,.1f} "
          f"({report['ratio_donated_over_not']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
