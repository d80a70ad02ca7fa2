"""inverted_double_pendulum on MJX, tuned to learn on a CPU in minutes (shared CPU settings: see
mjx_qvpo.config.cpu_task_config: 64 envs, 16 updates per training step, update-to-data ratio
1/4, 64-unit networks, K = 16, T = 10)."""
from mjx_qvpo.config import cpu_task_config


def get_config():
    return cpu_task_config("inverted_double_pendulum")
