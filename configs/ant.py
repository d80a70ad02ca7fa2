"""ant on MJX with the paper's learner (docs/algorithm.md section 6), sized for one GPU.

num_envs=1024 environments and updates_per_step=128 gradient updates per training step: an
update-to-data ratio of 128 / 1024 = 1/8 (the paper uses 1 env and 1 update per env step, ratio 1;
set updates_per_step=1024 for that).
"""
from mjx_qvpo.config import base_config


def get_config():
    c = base_config()
    c.task = "ant"
    c.num_envs = 1024
    c.updates_per_step = 128
    c.num_eval_envs = 16
    return c
