"""inverted_pendulum on MJX, tuned to learn on a CPU in minutes.

Smaller than the paper's setting on purpose (see the README's CPU results): 64 environments with
16 updates per training step (update-to-data ratio 16 / 64 = 1/4), 64-unit networks, K = 16
training candidates, T = 10 denoising steps. QVPO's structure (best-of-K, Q-weighted VLO, entropy
term) is unchanged.
"""
from mjx_qvpo.config import base_config


def get_config():
    c = base_config()
    c.task = "inverted_pendulum"
    c.num_envs = 64
    c.updates_per_step = 16
    c.total_env_steps = 100_000
    c.warmup_env_steps = 2_048
    c.buffer_size = 200_000
    c.batch_size = 256
    c.diffusion_steps = 10
    c.num_train_samples = 16
    c.num_eval_samples = 16
    c.network.actor_hidden = (64, 64, 64)
    c.network.critic_hidden = (64, 64, 64)
    c.network.time_hidden = 64
    c.eval_every_env_steps = 10_000
    c.num_eval_envs = 8
    c.log_every_env_steps = 4_096
    c.checkpoint_every_env_steps = 20_000
    return c
