"""Continuous multi-modal bandit (QVPO rebuttal experiment), pure JAX.

The state is constant (a size-1 vector of zeros), the action is 2-D in ``[-1, 1]^2`` and the reward
is a sum of Gaussian bumps::

    r(a) = sum_i h_i * exp(-||a - c_i||^2 / (2 w_i^2))

Every episode lasts exactly one step and ends by *termination* (``done == 1``), so there is never a
bootstrap target. The environment is a :class:`brax.envs.base.Env` so the same vectorized training
wrapper (:class:`envs.wrappers.VecEnv`) serves it and the MJX tasks alike.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from envs.quiet import import_mjx_quietly

import_mjx_quietly()  # before brax imports mujoco.mjx (drops its "Failed to import warp")
from brax.envs.base import Env, State  # noqa: E402

DEFAULT_CENTERS: tuple[tuple[float, float], ...] = ((-0.5, -0.5), (0.5, -0.5), (0.0, 0.6))
DEFAULT_HEIGHTS: tuple[float, ...] = (1.0, 1.0, 1.0)
DEFAULT_WIDTHS: tuple[float, ...] = (0.15, 0.15, 0.15)

OBSERVATION_SIZE = 1
ACTION_SIZE = 2


def bandit_reward(actions: jax.Array, centers, heights, widths) -> jax.Array:
    """Reward of the bump bandit. ``actions`` (..., 2) -> rewards (...,).

    ``centers`` (K, 2), ``heights`` (K,), ``widths`` (K,) (arrays or nested sequences). Pure and
    differentiable; no clipping of the action is done here.
    """
    actions = jnp.asarray(actions)
    dtype = actions.dtype if jnp.issubdtype(actions.dtype, jnp.floating) else jnp.float32
    actions = actions.astype(dtype)
    c = jnp.asarray(centers, dtype)
    h = jnp.asarray(heights, dtype)
    w = jnp.asarray(widths, dtype)
    sq = jnp.sum(jnp.square(actions[..., None, :] - c), axis=-1)  # (..., K)
    return jnp.sum(h * jnp.exp(-sq / (2.0 * jnp.square(w))), axis=-1)


def _validate(centers, heights, widths):
    """Checks the bump parameters; returns them as tuples of python floats (hashable, static)."""
    try:
        c = np.asarray(centers, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"bandit kwarg 'centers' must be a sequence of (x, y) pairs, got {centers!r}") from e
    try:
        h = np.asarray(heights, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"bandit kwarg 'heights' must be a sequence of numbers, got {heights!r}") from e
    try:
        w = np.asarray(widths, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"bandit kwarg 'widths' must be a sequence of numbers, got {widths!r}") from e
    if c.ndim != 2 or c.shape[1] != 2 or c.shape[0] == 0:
        raise ValueError(f"bandit kwarg 'centers' must have shape (K, 2) with K >= 1, got shape {c.shape}")
    if h.ndim != 1:
        raise ValueError(f"bandit kwarg 'heights' must be 1-D, got shape {h.shape}")
    if w.ndim != 1:
        raise ValueError(f"bandit kwarg 'widths' must be 1-D, got shape {w.shape}")
    k = c.shape[0]
    if h.shape[0] != k:
        raise ValueError(f"bandit kwarg 'heights' has {h.shape[0]} entries but 'centers' has {k}")
    if w.shape[0] != k:
        raise ValueError(f"bandit kwarg 'widths' has {w.shape[0]} entries but 'centers' has {k}")
    if not np.all(np.isfinite(c)) or np.any(np.abs(c) > 1.0):
        raise ValueError(f"bandit kwarg 'centers' must lie inside [-1, 1]^2, got {c.tolist()}")
    if not np.all(np.isfinite(h)):
        raise ValueError(f"bandit kwarg 'heights' must be finite, got {h.tolist()}")
    if not np.all(np.isfinite(w)) or np.any(w <= 0.0):
        raise ValueError(f"bandit kwarg 'widths' must be finite and > 0, got {w.tolist()}")
    return (tuple(tuple(float(x) for x in row) for row in c), tuple(float(x) for x in h),
            tuple(float(x) for x in w))


class ContinuousBandit(Env):
    """One-step continuous bandit with Gaussian bumps (a brax ``Env``; ``pipeline_state`` is None)."""

    def __init__(self, centers: Sequence[Sequence[float]] = DEFAULT_CENTERS,
                 heights: Sequence[float] = DEFAULT_HEIGHTS,
                 widths: Sequence[float] = DEFAULT_WIDTHS):
        self.centers, self.heights, self.widths = _validate(centers, heights, widths)

    # -- brax Env interface -------------------------------------------------------------------
    def reset(self, rng: jax.Array) -> State:
        del rng  # the state is constant
        zero = jnp.zeros((), jnp.float32)
        return State(pipeline_state=None, obs=jnp.zeros((OBSERVATION_SIZE,), jnp.float32),
                     reward=zero, done=zero, metrics={}, info={})

    def step(self, state: State, action: jax.Array) -> State:
        reward = bandit_reward(jnp.asarray(action, jnp.float32), self.centers, self.heights,
                               self.widths)
        return state.replace(obs=jnp.zeros((OBSERVATION_SIZE,), jnp.float32),
                             reward=reward.astype(jnp.float32),
                             done=jnp.ones((), jnp.float32))

    @property
    def observation_size(self) -> int:
        return OBSERVATION_SIZE

    @property
    def action_size(self) -> int:
        return ACTION_SIZE

    @property
    def backend(self) -> str:
        return "jax"

    # -- helpers ------------------------------------------------------------------------------
    def reward(self, actions: jax.Array) -> jax.Array:
        """``bandit_reward`` with this bandit's bumps."""
        return bandit_reward(actions, self.centers, self.heights, self.widths)

    def max_reward_upper_bound(self) -> float:
        """A cheap upper bound on max_a r(a) (sum of positive heights)."""
        return float(sum(max(h, 0.0) for h in self.heights))

    def __repr__(self) -> str:
        return (f"ContinuousBandit(centers={self.centers}, heights={self.heights}, "
                f"widths={self.widths})")


def reward_at(action, centers=DEFAULT_CENTERS, heights=DEFAULT_HEIGHTS, widths=DEFAULT_WIDTHS) -> float:
    """Reference (pure python, float64) reward of a single action, for tests and reports."""
    total = 0.0
    for (cx, cy), h, w in zip(centers, heights, widths):
        d2 = (action[0] - cx) ** 2 + (action[1] - cy) ** 2
        total += h * math.exp(-d2 / (2.0 * w * w))
    return total
