"""Run in a subprocess by tests/test_multidevice.py, with XLA_FLAGS asking for several CPU devices
(the flag must be set before JAX starts, hence a separate process). Prints one JSON line.

``compare``: the same total configuration (seed, N, B, U) on 1, 2 and 4 devices; records the
losses of the first updates and the largest difference between the devices' copies of every
parameter. ``resume``: a 4-device run writes a checkpoint, a 1-device run resumes from it.
"""

import json
import sys

import jax
import numpy as np

from mjx_qvpo.config import apply_overrides, load_config_file, resolve

SMALL = {"num_envs": 64, "updates_per_step": 4, "batch_size": 1024, "warmup_env_steps": 1024,
         "buffer_size": 8192, "log_every_env_steps": 1024, "total_env_steps": 2048,
         "diffusion_steps": 5, "num_train_samples": 8, "num_eval_samples": 8, "num_eval_envs": 16,
         "normalize_observations": True, "eval_every_env_steps": 0,
         "network.actor_hidden": (16, 16), "network.critic_hidden": (16, 16),
         "network.time_hidden": 16}


def config(**overrides):
    return resolve(apply_overrides(load_config_file("configs/bandit.py"), {**SMALL, **overrides}))


def replica_spread(tree) -> float:
    """Largest |difference| between any device's copy of a replicated leaf and device 0's."""
    worst = 0.0
    for x in jax.tree.leaves(tree):
        shards = [np.asarray(s.data) for s in x.addressable_shards]
        worst = max([worst] + [float(np.max(np.abs(s - shards[0]))) for s in shards])
    return worst


def compare(devices):
    from mjx_qvpo.training import make_trainer
    out = {}
    for d in devices:
        trainer = make_trainer(config(num_devices=d))
        state = jax.jit(trainer.init, out_shardings=trainer.shardings)(jax.random.PRNGKey(0))
        chunk = jax.jit(trainer.chunk, donate_argnums=0)
        rows = []
        for _ in range(2):  # chunk 1: warm-up then 4 updates; chunk 2: 16 steps x 4 updates
            state, metrics = chunk(state)
            rows.append({k: float(v) for k, v in jax.device_get(metrics).items()})
        out[d] = {"metrics": rows, "devices": trainer.num_devices,
                  "spread": replica_spread((state.actor_params, state.critic_params,
                                            state.target_actor_params, state.actor_opt_state,
                                            state.normalizer)),
                  "env_sharding": str(getattr(state.env_state.obs.sharding, "spec", "single")),
                  "buffer_rows": int(state.buffer.num_transitions()),
                  "updates": int(state.updates)}
    return out


def resume(workdir):
    from mjx_qvpo import checkpoint
    from mjx_qvpo.train import run
    from mjx_qvpo.training import make_trainer
    cfg4 = config(num_devices=4, workdir=workdir, checkpoint_every_env_steps=1024)
    run(cfg4, log=lambda line: None)
    saved, step = checkpoint.restore_latest(f"{workdir}/checkpoints",
                                            jax.eval_shape(make_trainer(cfg4).init,
                                                           jax.random.PRNGKey(0)))
    cfg1 = config(num_devices=1, workdir=workdir, total_env_steps=3072,
                  checkpoint_every_env_steps=1024)
    last = run(cfg1, resume=True, log=lambda line: None)
    resumed, step1 = checkpoint.restore_latest(f"{workdir}/checkpoints",
                                               jax.eval_shape(make_trainer(cfg1).init,
                                                              jax.random.PRNGKey(0)))
    return {"saved_step": step, "resumed_step": step1, "final_env_steps": last["env_steps"],
            "final_critic_loss": last["train/critic_loss"],
            "updates_saved": int(saved.updates), "updates_resumed": int(resumed.updates),
            "buffer_rows_kept": bool(np.array_equal(saved.buffer.data.obs[:2],
                                                    resumed.buffer.data.obs[:2]))}


if __name__ == "__main__":
    mode = sys.argv[1]
    result = {"local_devices": jax.local_device_count()}
    if mode == "compare":
        result.update(compare([int(d) for d in sys.argv[2].split(",")]))
    elif mode == "resume":
        result.update(resume(sys.argv[2]))
    print("RESULT " + json.dumps(result))
