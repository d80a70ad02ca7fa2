"""hopper on MJX, sized for a 2-core CPU: the 30-minute race against Brax SAC (results/race/).

The shared CPU settings (mjx_qvpo.config.cpu_task_config: 64 envs, 16 updates per training
step, update-to-data 1/4, 64-unit networks) with the learner made cheaper in the ways measured
on inverted_double_pendulum (configs/inverted_double_pendulum.py): batch 128, T = 5 denoising
steps, K = 8 training candidates, observation normalization (mjx_qvpo.config.fast_cpu_config).
QVPO itself (best-of-K behavior and
evaluation, Q-weighted VLO, entropy term) is unchanged. Evaluations of 8 episodes of 1,000 steps.

It still loses. With gamma 0.997 (SAC's discount; see get_config) QVPO reaches about 1,000 in
the 30-minute race by about 800 s and stays near it (1,046 and 982 at the budget on seeds 1 and
2), where gamma 0.99 stayed at about 430; Brax SAC reaches 3,156 and 3,186. The plateau is a
policy that stands still (results/train/README.md). results/race/README.md also shows that
T = 10, K = 16, B = 256, wider critics or actors, a LayerNorm critic, 4x the updates per env
step, a larger actor step size or a stronger entropy term are no better on the clock.

The GPU-sized config is configs/hopper.py; the paper's setting is configs/paper/hopper.py.
"""
from mjx_qvpo.config import fast_cpu_config


def get_config():
    c = fast_cpu_config("hopper")  # B=128, T=5, K=8, normalized observations
    # SAC's discount for hopper: episodes last 1,000 steps and the alive bonus pays for surviving
    # them; with 0.99 (a 100-step horizon) QVPO stayed at about 430 for a million env steps.
    c.gamma = 0.997
    c.total_env_steps = 1_000_000
    c.entropy_anneal_env_steps = 500_000
    c.warmup_env_steps = 8_192
    c.buffer_size = 1_000_000
    c.eval_every_env_steps = 50_000
    c.log_every_env_steps = 8_192
    c.checkpoint_every_env_steps = 100_000
    return c
