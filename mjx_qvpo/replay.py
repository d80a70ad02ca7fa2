"""On-device FIFO replay buffer of fixed capacity (docs/algorithm.md section 7).

The buffer stores whole training steps: every leaf has shape ``(S, N, ...)``, S step slots (a ring)
by N environments. Insertion writes the N transitions of one training step into one slot (a
dynamic-update-slice, no scatter); uniform sampling draws a step slot among the filled ones and an
environment index independently, which is uniform over all stored transitions.

This layout does not depend on how many devices share the work: with D devices each device holds
the ``(S, N / D, ...)`` block of its own environments and samples from it, and the global array
has the same shape for every D, so a checkpoint written on 4 devices loads on 1.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from mjx_qvpo.losses import Transition


@flax.struct.dataclass
class ReplayBuffer:
    """Storage (leading axes = step slot, environment), next slot to write and filled slots."""
    data: Transition
    position: jax.Array
    size: jax.Array

    @property
    def capacity_steps(self) -> int:
        """Number of step slots S."""
        return self.data.reward.shape[0]

    @property
    def num_envs(self) -> int:
        """Environments per slot (the local share N / D inside a sharded step)."""
        return self.data.reward.shape[1]

    def num_transitions(self) -> jax.Array:
        """Transitions stored (in this block)."""
        return self.size * self.num_envs


def capacity_steps(capacity: int, num_envs: int) -> int:
    """Step slots of a buffer of ``capacity`` transitions filled N at a time (rounded down)."""
    return max(1, capacity // num_envs)


def init(capacity: int, num_envs: int, obs_size: int, action_size: int) -> ReplayBuffer:
    """An empty buffer for ``capacity`` transitions (rounded down to whole steps of N)."""
    s = capacity_steps(capacity, num_envs)
    z = lambda *shape: jnp.zeros((s, num_envs, *shape), jnp.float32)  # noqa: E731
    data = Transition(obs=z(obs_size), action=z(action_size), reward=z(), next_obs=z(obs_size),
                      terminated=z())
    return ReplayBuffer(data=data, position=jnp.zeros((), jnp.int32), size=jnp.zeros((), jnp.int32))


def insert(buffer: ReplayBuffer, batch: Transition) -> ReplayBuffer:
    """Store one training step's transitions (leading axis N), overwriting the oldest step once
    the buffer is full."""
    data = jax.tree.map(
        lambda d, x: jax.lax.dynamic_update_index_in_dim(d, x.astype(d.dtype), buffer.position, 0),
        buffer.data, batch)
    return ReplayBuffer(data=data, position=(buffer.position + 1) % buffer.capacity_steps,
                        size=jnp.minimum(buffer.size + 1, buffer.capacity_steps))


def _draw(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """Step slots and environment indices of ``batch_size`` uniform draws (with replacement)."""
    k_step, k_env = jax.random.split(key)
    step = jax.random.randint(k_step, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    env = jax.random.randint(k_env, (batch_size,), 0, buffer.num_envs)
    return step, env


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> Transition:
    """Uniformly sample ``batch_size`` stored transitions (with replacement)."""
    step, env = _draw(buffer, key, batch_size)
    return jax.tree.map(lambda d: d[step, env], buffer.data)


def sample_n_step(buffer: ReplayBuffer, key: jax.Array, batch_size: int, n: int,
                  gamma: float) -> Transition:
    """Uniformly sample ``batch_size`` stored transitions as n-step transitions (not in the paper;
    the n-step returns FastTD3 uses, ``n_step`` in the config; docs/algorithm.md section 2).

    A row starting at step t of environment e sums the rewards of steps t .. t+m-1 of e,
    discounted, R = sum_j gamma^j r_{t+j}, where m <= n stops early at the end of the episode
    (termination or time limit) or at the newest stored step, and bootstraps from the next
    observation of step t+m-1. It is returned as a one-step ``Transition`` whose target
    ``losses.td_target`` computes unchanged: ``reward`` = R and ``1 - terminated`` =
    gamma^(m-1) (1 - terminated_{t+m-1}), so y = R + gamma^m (1 - terminated) Q'(s_{t+m}, a').
    With n = 1 it is exactly ``sample`` (same keys, same rows).

    The buffer stores no time-limit flag; an episode ended at step t+j when it terminated or when
    its stored next observation differs from the observation stored at step t+j+1 (the
    environments reset automatically, so a new episode starts from a fresh observation; within
    an episode the two are the same array, bit for bit). An environment whose first observation
    can equal, bit for bit, the last one of the episode before it without a termination would
    have such episodes chained; the MJX tasks draw their initial states at random. The rewards
    are the behavior policy's, uncorrected, as in FastTD3.
    """
    if n == 1:
        return sample(buffer, key, batch_size)
    s = buffer.capacity_steps
    slot, env = _draw(buffer, key, batch_size)  # the same draws as ``sample``
    # Age of the start step (0 = oldest stored step); step t+j exists iff age + j < size.
    age = (slot - (buffer.position - buffer.size)) % s
    win = jax.tree.map(lambda d: jnp.stack([d[(slot + j) % s, env] for j in range(n)]),
                       buffer.data)  # leaves (n, B, ...)
    ends = ((win.terminated[:-1] > 0)
            | jnp.any(win.next_obs[:-1] != win.obs[1:], axis=-1)
            | (age[None] + jnp.arange(1, n)[:, None] >= buffer.size))  # (n - 1, B)
    # include[j]: step t+j belongs to the sampled episode and is stored.
    include = jnp.concatenate([jnp.ones((1, batch_size), bool),
                               jnp.cumprod(~ends, axis=0).astype(bool)])
    discounts = gamma ** jnp.arange(n, dtype=jnp.float32)[:, None]
    ret = jnp.sum(jnp.where(include, discounts * win.reward, 0.0), axis=0)
    last = jnp.sum(include, axis=0) - 1  # m - 1
    pick = lambda x: jnp.take_along_axis(  # noqa: E731  x[last[b], b]
        x, last.reshape(1, -1, *([1] * (x.ndim - 2))), axis=0)[0]
    continuation = gamma ** last.astype(jnp.float32) * (1.0 - pick(win.terminated))
    return Transition(obs=win.obs[0], action=win.action[0], reward=ret,
                      next_obs=pick(win.next_obs), terminated=1.0 - continuation)
