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


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> Transition:
    """Uniformly sample ``batch_size`` stored transitions (with replacement)."""
    k_step, k_env = jax.random.split(key)
    step = jax.random.randint(k_step, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    env = jax.random.randint(k_env, (batch_size,), 0, buffer.num_envs)
    return jax.tree.map(lambda d: d[step, env], buffer.data)
