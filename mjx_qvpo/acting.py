"""Action selection: best-of-K from the diffusion policy (docs/algorithm.md section 5).

Behavior (K_b), target (K_t) and evaluation (K_eval) actions all go through ``best_of_k``: draw K
candidates from the diffusion policy, score them with min(Q1, Q2), execute the argmax.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from envs.quiet import import_mjx_quietly

import_mjx_quietly()  # before brax imports mujoco.mjx (drops its "Failed to import warp")
from brax.training.acme import running_statistics  # noqa: E402

from mjx_qvpo import diffusion
from mjx_qvpo.networks import Critic, NoiseModel, Params


@dataclasses.dataclass(frozen=True, eq=False)
class QVPONetworks:
    """The static parts of the learner's networks: shapes, schedule and how observations are fed."""
    actor: NoiseModel
    critic: Critic
    schedule: diffusion.Schedule
    normalize_observations: bool = False
    scan_unroll: int = 1
    sampler: str = "reference"        # diffusion.SAMPLERS: every draw below goes through it
    bf16_activations: bool = False    # pallas sampler in bfloat16 matmul mode only

    def normalize(self, obs: jax.Array, normalizer: Any) -> jax.Array:
        """Observations as the networks see them: standardized when normalization is on."""
        if not self.normalize_observations:
            return obs
        return running_statistics.normalize(obs, normalizer)

    def sample(self, actor_params: Params, obs: jax.Array, key: jax.Array, k: int) -> jax.Array:
        """K candidate actions per (already normalized) state: (B, obs) -> (B, K, d), from the
        configured sampler (docs/algorithm.md sections 1 and 5; see ``diffusion.sample``)."""
        return diffusion.sample(self.actor, self.schedule, actor_params, obs, key, k,
                                unroll=self.scan_unroll, sampler=self.sampler,
                                bf16_activations=self.bf16_activations)

    def score(self, critic_params: Params, obs: jax.Array, candidates: jax.Array) -> jax.Array:
        """min(Q1, Q2) of K candidates per state: (B, obs), (B, K, d) -> (B, K).

        The state's share of the critic's first layer is computed once per state.
        """
        feats = self.critic.state_features(critic_params, obs)[..., None, :]
        return jnp.min(self.critic.apply_features(critic_params, candidates, feats), axis=0)


def select_best(candidates: jax.Array, q: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The argmax-Q candidate of each state and its Q: (B, K, d), (B, K) -> (B, d), (B,)."""
    idx = jnp.argmax(q, axis=-1)
    best = jnp.take_along_axis(candidates, idx[..., None, None], axis=-2)[..., 0, :]
    return best, jnp.take_along_axis(q, idx[..., None], axis=-1)[..., 0]


def best_of_k(nets: QVPONetworks, actor_params: Params, critic_params: Params, obs: jax.Array,
              key: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """Draw k candidates per state and keep the one with the highest min(Q1, Q2).

    Returns (actions (B, d), Q of the chosen actions (B,)). With k = 1 this is plain sampling
    (the single candidate is still scored, for logging).
    """
    candidates = nets.sample(actor_params, obs, key, k)
    return select_best(candidates, nets.score(critic_params, obs, candidates))


def make_inference_fn(nets: QVPONetworks, num_samples: int
                      ) -> Callable[[tuple[Params, Params, Any]], Callable]:
    """Brax-style inference factory: ``make_inference_fn(nets, K)((actor, critic, normalizer))``
    returns ``policy(obs, key) -> actions`` in [-1, 1] (best of K). Evaluation, rendering and
    export all act through this one function."""
    def make_policy(params):
        actor_params, critic_params, normalizer = params

        def policy(obs: jax.Array, key: jax.Array) -> jax.Array:
            obs_n = nets.normalize(obs, normalizer)
            return best_of_k(nets, actor_params, critic_params, obs_n, key, num_samples)[0]
        return policy
    return make_policy
