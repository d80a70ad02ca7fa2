"""QVPO losses: the double-Q critic (docs/algorithm.md section 2) and the Q-weighted VLO policy loss with
diffusion entropy regularization (sections 3 and 4).

``make_losses`` returns pure functions ``(params, ..., batch, key) -> (loss, aux)`` that the
training step differentiates; nothing here holds state.
"""

from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp

from mjx_qvpo import acting, diffusion
from mjx_qvpo.q_transforms import QStats, QTransformParams, get_q_transform


@flax.struct.dataclass
class Transition:
    """One batch of replay data. ``terminated`` is 1 only for true terminations: a time-limit
    truncation keeps terminated = 0 so that its target bootstraps (docs/algorithm.md section 2)."""
    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Static hyperparameters of the losses (shapes are static; see docs/algorithm.md section 6)."""
    gamma: float = 0.99
    reward_scale: float = 1.0
    num_train_samples: int = 64     # K
    num_target_samples: int = 4     # K_t
    num_chosen: int = 1             # top-n kept per state (paper: 1)
    num_entropy_samples: int = 10   # N_e
    q_transform: str = "qadv"
    q_transform_params: QTransformParams = QTransformParams()


def entropy_coef_schedule(omega: float, env_step: jax.Array, total_env_steps) -> jax.Array:
    """omega_t = min(omega, max(0.002, omega * (1 - env_step / total_env_steps))) (section 4).

    ``total_env_steps`` may be traced: the trainer passes the horizon stored in its state.
    """
    frac = 1.0 - jnp.asarray(env_step, jnp.float32) / jnp.asarray(total_env_steps, jnp.float32)
    return jnp.minimum(omega, jnp.maximum(0.002, omega * frac))


def td_target(reward: jax.Array, terminated: jax.Array, next_q: jax.Array, gamma: float,
              reward_scale: float = 1.0) -> jax.Array:
    """y = scale * r + gamma * (1 - terminated) * Q'(s', a'); truncations bootstrap (section 2)."""
    return reward_scale * reward + gamma * (1.0 - terminated) * next_q


def make_losses(nets: acting.QVPONetworks, cfg: LossConfig):
    """Build the critic loss and the QVPO policy loss for the given networks and settings."""
    transform = get_q_transform(cfg.q_transform)

    def critic_loss(critic_params, target_actor_params, target_critic_params, batch: Transition,
                    key):
        """MSE of both Q heads to y, with a' = best of K_t target-actor samples scored by the
        target critic (docs/algorithm.md section 2)."""
        _, next_q = acting.best_of_k(nets, target_actor_params, target_critic_params,
                                     batch.next_obs, key, cfg.num_target_samples)
        y = jax.lax.stop_gradient(
            td_target(batch.reward, batch.terminated, next_q, cfg.gamma, cfg.reward_scale))
        q = nets.critic.apply(critic_params, batch.obs, batch.action)   # (2, B)
        loss = jnp.sum(jnp.mean(jnp.square(q - y), axis=-1))
        return loss, {"critic_loss": loss, "q_data": jnp.mean(q), "q_target": jnp.mean(y)}

    def actor_loss(actor_params, critic_params, batch: Transition, omega: jax.Array,
                   q_stats: QStats, key):
        """Q-weighted VLO loss with entropy rows (docs/algorithm.md sections 3 and 4).

        1. K candidates per state from the current policy (no gradient), 2. scored by min(Q1, Q2)
        of the critic as it is after this update's critic step, 3. top-n kept, 4. weighted by the
        transform, 5. weighted VLO on (s, a*, w) plus N_e uniform actions per state weighted
        omega_t * w (w of the state's best action); the loss is the mean over all rows.
        """
        k_sample, k_uniform, k_vlo = jax.random.split(key, 3)
        obs = batch.obs
        candidates = jax.lax.stop_gradient(
            nets.sample(actor_params, obs, k_sample, cfg.num_train_samples))
        q_all = nets.score(critic_params, obs, candidates)                        # (B, K)
        q_chosen, idx = jax.lax.top_k(q_all, cfg.num_chosen)                     # (B, n)
        chosen = jnp.take_along_axis(candidates, idx[..., None], axis=-2)        # (B, n, d)
        w, new_stats = transform(q_chosen, q_all, q_stats, cfg.q_transform_params)
        w = jax.lax.stop_gradient(w)
        # Entropy rows: uniform actions, each weighted by omega_t times the best action's weight,
        # so states that are still being improved are pulled toward the uniform distribution.
        uniform = jax.random.uniform(
            k_uniform, (obs.shape[0], cfg.num_entropy_samples, nets.actor.action_size),
            minval=-1.0, maxval=1.0)
        w_entropy = jnp.broadcast_to((omega * w[:, :1]), uniform.shape[:-1])
        actions = jnp.concatenate([chosen, uniform], axis=1)                      # (B, n+N_e, d)
        weights = jnp.concatenate([w, w_entropy], axis=1)                         # (B, n+N_e)
        s_feat = nets.actor.state_features(actor_params, obs)[:, None, :]
        rows = diffusion.vlo_row_losses(nets.actor, nets.schedule, actor_params, actions, s_feat,
                                        k_vlo)
        loss = jnp.mean(weights * rows)
        metrics = {
            "actor_loss": loss,
            "vlo_chosen": jnp.mean(rows[:, :cfg.num_chosen]),
            "weight_mean": jnp.mean(w),
            "weight_nonzero_frac": jnp.mean((w > 0).astype(jnp.float32)),
            "q_best": jnp.mean(q_chosen[:, 0]),
            "q_sampled_mean": jnp.mean(q_all),
            "entropy_coef": omega,
        }
        return loss, (metrics, new_stats)

    return critic_loss, actor_loss
