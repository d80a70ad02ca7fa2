"""The continuous bandit of docs/algorithm.md section 8 trained with the full QVPO learner.

Each episode is one step from a constant state, so Q(s, a) is the bump reward r(a): the critic has
a known target (a probe) and the policy should end on the highest bump. Small and CPU-friendly.
"""
from mjx_qvpo.config import base_config


def get_config():
    c = base_config()
    c.task = "bandit"
    c.episode_length = 1
    c.num_envs = 64
    c.updates_per_step = 4             # update-to-data ratio 4 / 64 = 1/16
    c.total_env_steps = 64_000
    c.warmup_env_steps = 1_024
    c.buffer_size = 20_000
    c.network.actor_hidden = (64, 64, 64)
    c.network.critic_hidden = (64, 64, 64)
    c.network.time_hidden = 64
    c.eval_every_env_steps = 8_192
    c.num_eval_envs = 64
    c.log_every_env_steps = 4_096
    c.checkpoint_every_env_steps = 32_768
    return c


def get_experiment_config():
    """The bandit experiment's protocol (``python -m mjx_qvpo.experiments.bandit``,
    docs/algorithm.md section 8): these bumps and networks plus num_seeds, num_epochs, samples_per_epoch, the entropy
    settings, snapshot epochs and workdir. Kept apart from ``get_config()`` so that the trainer's
    schema stays unchanged."""
    from mjx_qvpo.experiments.bandit import experiment_config
    return experiment_config(get_config())
