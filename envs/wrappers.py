"""Vectorized auto-reset training wrapper around a single (unwrapped) brax ``Env``.

Unlike brax's ``EpisodeWrapper``/``AutoResetWrapper``/``VmapWrapper`` (which reset a finished
environment to its *first* state and overwrite the final observation), :class:`VecEnv`

* resets every finished environment with a *fresh* random reset (its own per-env PRNG key),
* keeps the true final observation ``s'`` of the transition in ``StepResult.next_obs`` (needed to
  bootstrap on truncation), while ``EnvState.obs`` holds the new episode's first observation,
* keeps termination (the inner env's ``done``) and truncation (time limit) apart.

Actions are given in the normalized box ``[-1, 1]^act_dim``; they are clipped and mapped affinely
onto the actuator control range (``sys.actuator_ctrlrange``).  Some brax envs (humanoid,
inverted_pendulum, ...) already perform that affine map inside their ``step``; for those the
wrapper passes the clipped normalized action through so the map is applied exactly once.

This module imports only jax/flax/numpy (no brax), so ``import envs`` stays cheap.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

# brax envs whose ``step`` already maps a [-1, 1] action onto ``sys.actuator.ctrl_range``
# (checked against the installed brax sources by tests/test_envs.py).
SELF_SCALING_BRAX_ENVS = frozenset({"Humanoid", "HumanoidStandup", "InvertedPendulum", "Pusher"})


@flax.struct.dataclass
class EnvState:
    """State of N environments (leading axis N on every array)."""
    inner: Any                 # the wrapped single-env state (a brax envs.State, vmapped)
    obs: jax.Array             # (N, obs_dim) float32 observation the policy acts on (after auto-reset)
    steps: jax.Array           # (N,) int32 steps taken in the current episode
    episode_return: jax.Array  # (N,) float32 running undiscounted return of the current episode
    key: jax.Array             # (N, 2) uint32 per-env PRNG keys used for the automatic resets


@flax.struct.dataclass
class StepResult:
    """One transition of N environments."""
    reward: jax.Array          # (N,) float32
    next_obs: jax.Array        # (N, obs_dim) true s' of this transition (before any auto-reset)
    terminated: jax.Array      # (N,) float32 1 where the episode ended by a true termination
    truncated: jax.Array       # (N,) float32 1 where the time limit hit without termination
    done: jax.Array            # (N,) float32 terminated or truncated
    episode_return: jax.Array  # (N,) float32 return of the episode that ended here where done, else 0
    episode_length: jax.Array  # (N,) int32 length of the episode that ended here where done, else 0


def scale_action(action: jax.Array, low, high) -> jax.Array:
    """Clips ``action`` to [-1, 1] and maps it affinely onto [low, high] (-1 -> low, +1 -> high)."""
    action = jnp.clip(action, -1.0, 1.0)
    low = jnp.asarray(low, action.dtype)
    high = jnp.asarray(high, action.dtype)
    return low + (action + 1.0) * 0.5 * (high - low)


def _check_episode_length(episode_length) -> int:
    if isinstance(episode_length, bool) or not isinstance(episode_length, (int, np.integer)) \
            or episode_length < 1:
        raise ValueError(f"episode_length must be a positive int, got {episode_length!r}")
    return int(episode_length)


def _raw_key(key: jax.Array) -> jax.Array:
    """New-style typed keys -> raw uint32 key data; raw keys pass through."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


def _conform(x: Any, template: Any, path: str = "state") -> Any:
    """Returns ``x`` rearranged to have exactly ``template``'s pytree structure and leaf dtypes.

    ``template`` is a pytree of ``jax.ShapeDtypeStruct``. Dict entries missing from ``x`` are filled
    with zeros, extra entries dropped; leaves are cast to the template dtype (strong, not weak,
    type) and broadcast to the template shape. Needed because brax states carry ``info``/``metrics``
    dicts whose keys/dtypes may differ between ``reset`` and ``step`` (e.g. a python-float reward),
    while ``jnp.where``/``lax.cond``/``lax.scan`` over states need identical structure and types.
    """
    if isinstance(template, jax.ShapeDtypeStruct):
        if x is None:
            raise TypeError(f"{path}: missing a leaf of shape {template.shape}")
        x = jnp.asarray(x)
        if x.dtype != template.dtype or getattr(x, "weak_type", False):
            x = jax.lax.convert_element_type(x, template.dtype)
        if x.shape != template.shape:
            x = jnp.broadcast_to(x, template.shape)
        return x
    if template is None:
        return None
    if isinstance(template, dict):
        if not isinstance(x, dict):
            raise TypeError(f"{path}: expected a dict, got {type(x).__name__}")
        return {k: (_conform(x[k], t, f"{path}[{k!r}]") if k in x else
                    jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), t))
                for k, t in template.items()}
    if isinstance(template, (list, tuple)) and not hasattr(template, "_fields"):
        if not isinstance(x, (list, tuple)) or len(x) != len(template):
            raise TypeError(f"{path}: expected a sequence of length {len(template)}")
        return type(template)(_conform(a, t, f"{path}[{i}]") for i, (a, t) in enumerate(zip(x, template)))
    if jax.tree.structure(x) == jax.tree.structure(template):
        return jax.tree.map(lambda a, t: _conform(a, t, path), x, template)
    if dataclasses.is_dataclass(template) and type(x) is type(template):
        updates = {}
        for f in dataclasses.fields(template):
            if not f.metadata.get("pytree_node", True):
                continue
            updates[f.name] = _conform(getattr(x, f.name), getattr(template, f.name), f"{path}.{f.name}")
        return x.replace(**updates) if hasattr(x, "replace") else dataclasses.replace(x, **updates)
    raise TypeError(f"{path}: cannot conform {type(x).__name__} to {type(template).__name__} "
                    f"({jax.tree.structure(x)} vs {jax.tree.structure(template)})")


def _tree_where(cond: jax.Array, a: Any, b: Any) -> Any:
    """Per-env select over batched pytrees: leaf[i] = a[i] if cond[i] else b[i]."""
    def sel(x, y):
        c = jnp.reshape(cond, cond.shape + (1,) * (x.ndim - cond.ndim))
        return jnp.where(c, x, y)
    return jax.tree.map(sel, a, b)


class VecEnv:
    """N copies of a single brax ``Env`` with fresh auto-resets, time limit and action scaling.

    Immutable; hashable by identity. Close over it inside ``jit`` (or pass it as a static
    argument); never pass it as a traced argument.

    Attributes: ``task``, ``observation_size``, ``action_size``, ``episode_length``, ``env`` (the
    unwrapped single env), ``ctrl_low``/``ctrl_high`` (numpy (action_size,), the control range a
    normalized action of -1/+1 maps to; ``None`` for envs without actuators such as the bandit).
    """

    def __init__(self, task: str, env: Any, episode_length: int, *,
                 ctrl_range: np.ndarray | None = None, inner_scales: bool = False):
        episode_length = _check_episode_length(episode_length)
        d = self.__dict__
        d["task"] = task
        d["env"] = env
        d["episode_length"] = int(episode_length)
        d["action_size"] = int(env.action_size)
        if ctrl_range is not None:
            ctrl_range = np.asarray(ctrl_range, np.float32)
            if ctrl_range.shape != (self.action_size, 2):
                raise ValueError(f"ctrl_range must have shape ({self.action_size}, 2), "
                                 f"got {ctrl_range.shape}")
            d["ctrl_low"], d["ctrl_high"] = ctrl_range[:, 0].copy(), ctrl_range[:, 1].copy()
        else:
            d["ctrl_low"] = d["ctrl_high"] = None
        # True when env.step itself maps [-1, 1] onto the ctrl range (then we only clip).
        d["inner_scales"] = bool(inner_scales)

    def __setattr__(self, name, value):
        raise AttributeError(f"VecEnv is immutable (tried to set {name!r})")

    def __repr__(self) -> str:
        return (f"VecEnv(task={self.task!r}, action_size={self.action_size}, "
                f"episode_length={self.episode_length})")

    # -- structure ---------------------------------------------------------------------------
    @functools.cached_property
    def state_template(self) -> Any:
        """Shape/dtype pytree (``jax.ShapeDtypeStruct`` leaves) of ONE inner env state as produced
        by the inner ``step``; every inner state this wrapper carries has exactly this structure.
        Computed lazily by abstract evaluation (tracing only, no compilation)."""
        key = jax.ShapeDtypeStruct((2,), jnp.uint32)
        act = jax.ShapeDtypeStruct((self.action_size,), jnp.float32)
        env = self.env

        def reset_then_step(k, a):
            return env.step(env.reset(k), a)

        stepped = jax.eval_shape(reset_then_step, key, act)
        # Leaves as strong-typed ShapeDtypeStructs (python-float rewards trace as weak types).
        return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype), stepped)

    @property
    def observation_size(self) -> int:
        obs = self.state_template.obs
        if not isinstance(obs, jax.ShapeDtypeStruct) or len(obs.shape) != 1:
            raise TypeError(f"task {self.task!r}: only flat vector observations are supported")
        return int(obs.shape[0])

    # -- action mapping ----------------------------------------------------------------------
    def scale_action(self, action: jax.Array) -> jax.Array:
        """Normalized action in [-1, 1] (clipped) -> control applied to the actuators."""
        action = jnp.asarray(action, jnp.float32)
        if self.ctrl_low is None:
            return jnp.clip(action, -1.0, 1.0)
        return scale_action(action, self.ctrl_low, self.ctrl_high)

    def _inner_action(self, action: jax.Array) -> jax.Array:
        """What to hand to the inner env's ``step`` so the actuators see ``scale_action(action)``."""
        action = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
        if self.ctrl_low is None or self.inner_scales:
            return action
        return scale_action(action, self.ctrl_low, self.ctrl_high)

    # -- single env --------------------------------------------------------------------------
    def _reset_one(self, key: jax.Array) -> Any:
        return _conform(self.env.reset(key), self.state_template)

    def _step_one(self, state: Any, action: jax.Array) -> Any:
        return _conform(self.env.step(state, action), self.state_template)

    # -- public API --------------------------------------------------------------------------
    def reset(self, key: jax.Array, num_envs: int) -> EnvState:
        """Fresh random initial states of ``num_envs`` (static int) environments."""
        num_envs = int(num_envs)
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        keys = jax.random.split(_raw_key(key), num_envs)
        pair = jax.vmap(jax.random.split)(keys)          # (N, 2, 2)
        carry_keys, reset_keys = pair[:, 0], pair[:, 1]
        inner = jax.vmap(self._reset_one)(reset_keys)
        return EnvState(inner=inner,
                        obs=inner.obs.astype(jnp.float32),
                        steps=jnp.zeros((num_envs,), jnp.int32),
                        episode_return=jnp.zeros((num_envs,), jnp.float32),
                        key=carry_keys)

    def step(self, state: EnvState, action: jax.Array) -> tuple[EnvState, StepResult]:
        """Steps all N envs with normalized actions (N, action_size); auto-resets finished ones."""
        n = state.steps.shape[0]
        action = jnp.asarray(action, jnp.float32)
        if action.shape != (n, self.action_size):
            raise ValueError(f"action must have shape ({n}, {self.action_size}), got {action.shape}")
        nxt = jax.vmap(self._step_one)(state.inner, self._inner_action(action))

        reward = nxt.reward.astype(jnp.float32)
        next_obs = nxt.obs.astype(jnp.float32)
        steps = state.steps + 1
        terminated = nxt.done > 0.5
        truncated = jnp.logical_and(steps >= self.episode_length, jnp.logical_not(terminated))
        done = jnp.logical_or(terminated, truncated)
        episode_return = state.episode_return + reward

        pair = jax.vmap(jax.random.split)(state.key)     # (N, 2, 2)
        carry_keys, reset_keys = pair[:, 0], pair[:, 1]

        def with_resets(_):
            fresh = jax.vmap(self._reset_one)(reset_keys)
            return _tree_where(done, fresh, nxt)

        # Skip the (physics) reset work entirely on steps where no env finished.
        inner = jax.lax.cond(jnp.any(done), with_resets, lambda _: nxt, None)

        new_state = EnvState(
            inner=inner,
            obs=inner.obs.astype(jnp.float32),
            steps=jnp.where(done, 0, steps).astype(jnp.int32),
            episode_return=jnp.where(done, 0.0, episode_return).astype(jnp.float32),
            key=carry_keys,
        )
        f32 = lambda b: b.astype(jnp.float32)
        result = StepResult(
            reward=reward,
            next_obs=next_obs,
            terminated=f32(terminated),
            truncated=f32(truncated),
            done=f32(done),
            episode_return=jnp.where(done, episode_return, 0.0).astype(jnp.float32),
            episode_length=jnp.where(done, steps, 0).astype(jnp.int32),
        )
        return new_state, result


def evaluate_returns(env: VecEnv, policy_fn: Callable[[jax.Array, jax.Array], jax.Array],
                     key: jax.Array, num_envs: int, num_steps: int | None = None
                     ) -> tuple[jax.Array, jax.Array]:
    """Undiscounted return and length of the FIRST episode of each of ``num_envs`` fresh envs.

    ``policy_fn(obs (N, obs_dim), key) -> actions (N, act_dim)`` in [-1, 1]. Runs ``num_steps``
    (default ``env.episode_length``) steps in a ``lax.scan``; rewards after an env's first ``done``
    are masked out (an episode still running at the end contributes its partial return/length).
    Returns ``(returns (N,) float32, lengths (N,) int32)``. Jittable when ``policy_fn`` is.
    """
    num_steps = env.episode_length if num_steps is None else int(num_steps)
    key = _raw_key(key)
    k_reset, k_run = jax.random.split(key)
    state = env.reset(k_reset, num_envs)

    def body(carry, k):
        state, ret, length, active = carry
        action = policy_fn(state.obs, k)
        state, res = env.step(state, action)
        ret = ret + jnp.where(active, res.reward, 0.0)  # where, not *, so later NaNs can't leak in
        length = length + active.astype(jnp.int32)
        active = jnp.logical_and(active, res.done < 0.5)
        return (state, ret, length, active), None

    init = (state, jnp.zeros((num_envs,), jnp.float32), jnp.zeros((num_envs,), jnp.int32),
            jnp.ones((num_envs,), bool))
    (_, returns, lengths, _), _ = jax.lax.scan(body, init, jax.random.split(k_run, num_steps))
    return returns, lengths
