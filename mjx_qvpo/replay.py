"""On-device FIFO replay buffer of fixed capacity (QVPO.md section 7).

A ring buffer of ``Transition`` arrays with a static capacity, so insertion and uniform sampling are
shape-stable and live inside the compiled training step. Insertion of N transitions writes N
consecutive slots (mod capacity) with one scatter.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from mjx_qvpo.losses import Transition


@flax.struct.dataclass
class ReplayBuffer:
    """Storage (leading axis = capacity), next write position and number of valid rows."""
    data: Transition
    position: jax.Array
    size: jax.Array

    @property
    def capacity(self) -> int:
        return self.data.reward.shape[0]


def init(capacity: int, obs_size: int, action_size: int) -> ReplayBuffer:
    """An empty buffer holding ``capacity`` transitions."""
    z = lambda *s: jnp.zeros((capacity, *s), jnp.float32)  # noqa: E731
    data = Transition(obs=z(obs_size), action=z(action_size), reward=z(), next_obs=z(obs_size),
                      terminated=z())
    return ReplayBuffer(data=data, position=jnp.zeros((), jnp.int32), size=jnp.zeros((), jnp.int32))


def insert(buffer: ReplayBuffer, batch: Transition) -> ReplayBuffer:
    """Append N transitions (leading axis N), overwriting the oldest once full."""
    n = batch.reward.shape[0]
    idx = (buffer.position + jnp.arange(n)) % buffer.capacity
    data = jax.tree.map(lambda d, x: d.at[idx].set(x), buffer.data, batch)
    return ReplayBuffer(data=data, position=(buffer.position + n) % buffer.capacity,
                        size=jnp.minimum(buffer.size + n, buffer.capacity))


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> Transition:
    """Uniformly sample ``batch_size`` stored transitions (with replacement)."""
    idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return jax.tree.map(lambda d: d[idx], buffer.data)
