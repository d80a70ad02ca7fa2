"""Q-weight transforms of docs/algorithm.md section 3, step 4, chosen by name from a registry.

Each transform maps the Q-values of the chosen actions ``q_chosen`` (B, n) and of all K sampled
candidates ``q_all`` (B, K) to non-negative weights (B, n). ``qexpn`` keeps a running mean and std of
Q in ``QStats``; the others pass it through unchanged, so every transform has one signature.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class QStats:
    """Running mean and std of Q for ``qexpn`` (exponential moving averages)."""
    mean: jax.Array
    std: jax.Array

    @classmethod
    def create(cls) -> "QStats":
        return cls(mean=jnp.zeros((), jnp.float32), std=jnp.ones((), jnp.float32))


class QTransformParams(NamedTuple):
    """Hyperparameters of the transforms (config group ``q_transform_params``)."""
    q_neg: float = 0.0     # qrelu: w = max(Q + q_neg, 0)
    beta: float = 1.0      # qexpn: w = exp(beta * clip((Q - mu) / sigma, -8, 8))
    cut: float = 0.0       # qcut: w = max(Q, cut)
    stats_rate: float = 1e-3  # qexpn: rate of the running mean/std


Transform = Callable[[jax.Array, jax.Array, QStats, QTransformParams], tuple[jax.Array, QStats]]


def qadv(q_chosen, q_all, stats, p):
    """Paper default: w = max(Q(s, a*) - mean_k Q(s, a_k), 0); the sampled mean plays V(s)."""
    return jnp.maximum(q_chosen - jnp.mean(q_all, axis=-1, keepdims=True), 0.0), stats


def qrelu(q_chosen, q_all, stats, p):
    """w = max(Q + q_neg, 0)."""
    return jnp.maximum(q_chosen + p.q_neg, 0.0), stats


def qexpn(q_chosen, q_all, stats, p):
    """w = exp(beta * clip((Q - mu) / sigma, -8, 8)) with running mean/std of all sampled Q.

    The running statistics are updated with this batch first (rate ``stats_rate``), then used.
    """
    mean = stats.mean + p.stats_rate * (jnp.mean(q_all) - stats.mean)
    std = stats.std + p.stats_rate * (jnp.std(q_all) - stats.std)
    z = jnp.clip((q_chosen - mean) / jnp.maximum(std, 1e-6), -8.0, 8.0)
    return jnp.exp(p.beta * z), QStats(mean=mean, std=std)


def qcut(q_chosen, q_all, stats, p):
    """w = max(Q, cut)."""
    return jnp.maximum(q_chosen, p.cut), stats


Q_TRANSFORMS: dict[str, Transform] = {"qadv": qadv, "qrelu": qrelu, "qexpn": qexpn, "qcut": qcut}


def get_q_transform(name: str) -> Transform:
    """Look a transform up by name; unknown names raise a ValueError listing the known ones."""
    if name not in Q_TRANSFORMS:
        raise ValueError(f"q_transform must be one of {sorted(Q_TRANSFORMS)}, got {name!r}")
    return Q_TRANSFORMS[name]
