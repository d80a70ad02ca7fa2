"""Shared defaults of every task (the paper's hyperparameters, docs/algorithm.md section 6).

The defaults live in ``mjx_qvpo.config.base_config`` and each field's meaning in
``mjx_qvpo.config.SCHEMA`` (``python -m mjx_qvpo.train --config configs/base.py --print-config``);
task files start from it and change only what differs.
"""
from mjx_qvpo.config import base_config


def get_config():
    return base_config()
