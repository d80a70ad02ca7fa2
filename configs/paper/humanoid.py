"""humanoid with the paper's hyperparameters exactly, "as published" (docs/algorithm.md section 6): one
environment and one gradient update per environment step, the reference learner, 1M env steps.
See mjx_qvpo.config.paper_config; configs/humanoid.py is the faster default."""
from mjx_qvpo.config import paper_config


def get_config():
    return paper_config("humanoid")
