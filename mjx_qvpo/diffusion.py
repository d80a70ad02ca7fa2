"""DDPM noise schedules, the ancestral sampler and the VLO loss (docs/algorithm.md section 1).

The schedule constants are computed once in float64 NumPy (as the reference does in PyTorch double
precision before casting) and stored as float32 arrays in a static ``Schedule``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from mjx_qvpo.networks import NoiseModel, Params, cast_weights

BETA_SCHEDULES = ("cosine", "linear", "vp")


def cosine_betas(num_steps: int, s: float = 0.008) -> np.ndarray:
    """Cosine schedule (Nichol & Dhariwal) with offset s, betas clipped to [0, 0.999]."""
    steps = num_steps + 1
    x = np.linspace(0, steps, steps)
    abar = np.cos(((x / steps) + s) / (1 + s) * np.pi * 0.5) ** 2
    abar = abar / abar[0]
    return np.clip(1.0 - abar[1:] / abar[:-1], 0.0, 0.999)


def linear_betas(num_steps: int, beta_start: float = 1e-4, beta_end: float = 2e-2) -> np.ndarray:
    """Linear schedule of DDPM."""
    return np.linspace(beta_start, beta_end, num_steps, dtype=np.float64)


def vp_betas(num_steps: int, b_min: float = 0.1, b_max: float = 10.0) -> np.ndarray:
    """Variance-preserving SDE discretisation used by Diffusion-QL and DIPO."""
    t = np.arange(1, num_steps + 1)
    alpha = np.exp(-b_min / num_steps - 0.5 * (b_max - b_min) * (2 * t - 1) / num_steps ** 2)
    return 1.0 - alpha


_BETAS = {"cosine": cosine_betas, "linear": linear_betas, "vp": vp_betas}


@dataclasses.dataclass(frozen=True, eq=False)
class Schedule:
    """All per-step constants of a DDPM with T steps (index t = 0..T-1)."""
    num_steps: int
    betas: np.ndarray
    alphas_cumprod: np.ndarray
    sqrt_alphas_cumprod: np.ndarray
    sqrt_one_minus_alphas_cumprod: np.ndarray
    sqrt_recip_alphas_cumprod: np.ndarray
    sqrt_recipm1_alphas_cumprod: np.ndarray
    posterior_mean_coef1: np.ndarray
    posterior_mean_coef2: np.ndarray
    posterior_log_variance_clipped: np.ndarray


def make_schedule(num_steps: int, kind: str = "cosine") -> Schedule:
    """Schedule constants of docs/algorithm.md section 1 for ``kind`` in BETA_SCHEDULES."""
    if kind not in _BETAS:
        raise ValueError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {kind!r}")
    betas = _BETAS[kind](num_steps).astype(np.float64)
    alphas = 1.0 - betas
    abar = np.cumprod(alphas)
    abar_prev = np.concatenate([[1.0], abar[:-1]])
    post_var = betas * (1.0 - abar_prev) / (1.0 - abar)
    f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
    return Schedule(
        num_steps=num_steps,
        betas=f32(betas),
        alphas_cumprod=f32(abar),
        sqrt_alphas_cumprod=f32(np.sqrt(abar)),
        sqrt_one_minus_alphas_cumprod=f32(np.sqrt(1.0 - abar)),
        sqrt_recip_alphas_cumprod=f32(np.sqrt(1.0 / abar)),
        sqrt_recipm1_alphas_cumprod=f32(np.sqrt(1.0 / abar - 1.0)),
        posterior_mean_coef1=f32(betas * np.sqrt(abar_prev) / (1.0 - abar)),
        posterior_mean_coef2=f32((1.0 - abar_prev) * np.sqrt(alphas) / (1.0 - abar)),
        # log clipped at 1e-20 because the posterior variance at t = 0 is exactly 0.
        posterior_log_variance_clipped=f32(np.log(np.maximum(post_var, 1e-20))),
    )


def posterior_step(sched: Schedule, t: int | jax.Array, a_t: jax.Array, eps: jax.Array,
                   noise: jax.Array) -> jax.Array:
    """One ancestral step a_t -> a_{t-1} given the predicted eps (docs/algorithm.md section 1).

    a0_hat = sqrt(1/abar_t) a_t - sqrt(1/abar_t - 1) eps, clipped to [-1, 1]; the posterior mean
    c1_t a0_hat + c2_t a_t plus exp(0.5 log var_t) * noise, with no noise at t = 0.
    """
    c = lambda x: jnp.asarray(x)[t]  # noqa: E731
    a0_hat = c(sched.sqrt_recip_alphas_cumprod) * a_t - c(sched.sqrt_recipm1_alphas_cumprod) * eps
    a0_hat = jnp.clip(a0_hat, -1.0, 1.0)
    mean = c(sched.posterior_mean_coef1) * a0_hat + c(sched.posterior_mean_coef2) * a_t
    std = jnp.where(t == 0, 0.0, jnp.exp(0.5 * c(sched.posterior_log_variance_clipped)))
    return mean + std * noise


SAMPLERS = ("reference", "pallas")


def draw_noise(sched: Schedule, key: jax.Array, shape: tuple[int, ...]
               ) -> tuple[jax.Array, jax.Array]:
    """The reference sampler's random draws, made up front: a_T (shape) and the noise of every
    step (T, *shape), index i belonging to step t = T-1-i (docs/algorithm.md section 1).

    The keys are split exactly as ``sample_reference`` splits them and each step's draw is
    ``normal(keys[i], shape)``, so a sampler fed these arrays sees the reference's random stream.
    """
    key_init, key_steps = jax.random.split(key)
    a_T = jax.random.normal(key_init, shape, jnp.float32)
    keys = jax.random.split(key_steps, sched.num_steps)
    noise = jax.vmap(lambda k: jax.random.normal(k, shape, jnp.float32))(keys)
    return a_T, noise


def sample_reference(model: NoiseModel, sched: Schedule, params: Params, obs: jax.Array,
                     key: jax.Array, num_samples: int, unroll: int = 1) -> jax.Array:
    """Ancestral sampling of docs/algorithm.md section 1 as a ``lax.scan`` over the T steps:
    (B, obs) -> (B, K, d). The default sampler, and the one the others are tested against.

    The state's and each step's share of the first layer are computed once and broadcast over
    the K candidates (see networks.py), which removes most first-layer work at humanoid sizes.
    Each step draws its own noise inside the scan (no (T, B, K, d) array is materialized).
    In bfloat16 matmul mode the weights are rounded to bfloat16 once, before the scan
    (``cast_weights``: the same bits, T times fewer conversions).
    """
    batch = obs.shape[:-1]
    shape = (*batch, num_samples, model.action_size)
    s_feat = model.state_features(params, obs)[..., None, :]          # (B, 1, H)
    t_feat = model.time_features(params, sched.num_steps)             # (T, H)
    key_init, key_steps = jax.random.split(key)
    a_T = jax.random.normal(key_init, shape, jnp.float32)
    step_params = cast_weights(params, model.precision)

    def step(a_t, inputs):
        t, k = inputs
        eps = model.apply_features(step_params, a_t, s_feat + t_feat[t])
        return posterior_step(sched, t, a_t, eps, jax.random.normal(k, shape, jnp.float32)), None

    ts = jnp.arange(sched.num_steps - 1, -1, -1)
    keys = jax.random.split(key_steps, sched.num_steps)
    a_0, _ = jax.lax.scan(step, a_T, (ts, keys), unroll=unroll)
    return jnp.clip(a_0, -1.0, 1.0)


def sample_pallas(model: NoiseModel, sched: Schedule, params: Params, obs: jax.Array,
                  key: jax.Array, num_samples: int, *, tile_rows: int | None = None,
                  bf16_activations: bool = False, **kernel_options) -> jax.Array:
    """The same ancestral sampler (docs/algorithm.md section 1) as one Pallas kernel over tiles of the
    B x K candidate rows (see pallas_sampler.py): (B, obs) -> (B, K, d).

    Draws the reference's noise with ``draw_noise`` (same key, same numbers), so it returns the
    reference's actions up to float32 rounding. Not differentiable. ``kernel_options``
    (``k_chunk``, ``num_warps``, ``num_stages``, ``interpret``) go to
    ``pallas_sampler.denoise_rows``.
    """
    from mjx_qvpo import pallas_sampler  # Pallas is imported only when this sampler is chosen
    batch = obs.shape[:-1]
    shape = (*batch, num_samples, model.action_size)
    rows = math.prod(shape[:-1])
    s_feat = model.state_features(params, obs)[..., None, :]          # (B, 1, H)
    s_feat = jnp.broadcast_to(s_feat, (*shape[:-1], s_feat.shape[-1])).reshape(rows, -1)
    t_feat = model.time_features(params, sched.num_steps)             # (T, H)
    a_T, noise = draw_noise(sched, key, shape)
    a_0 = pallas_sampler.denoise_rows(
        model, sched, params, s_feat, t_feat, a_T.reshape(rows, -1),
        noise.reshape(sched.num_steps, rows, -1),
        tile_rows=tile_rows or pallas_sampler.DEFAULT_TILE_ROWS,
        bf16_activations=bf16_activations, **kernel_options)
    return a_0.reshape(shape)


def sample(model: NoiseModel, sched: Schedule, params: Params, obs: jax.Array, key: jax.Array,
           num_samples: int, unroll: int = 1, sampler: str = "reference",
           bf16_activations: bool = False) -> jax.Array:
    """Draw ``num_samples`` actions per state by ancestral sampling (docs/algorithm.md sections 1 and 5):
    (B, obs) -> (B, K, d). Every draw from the diffusion policy (behavior, evaluation, the
    policy update's K candidates, the K_t target candidates) goes through here.

    ``sampler`` (config field ``sampler``): "reference", the ``lax.scan`` of ``sample_reference``
    (``unroll`` is its scan unroll), or "pallas", the fused kernel of ``sample_pallas``; both give
    the same actions for the same key. ``bf16_activations`` applies to "pallas" in bfloat16
    matmul mode only.
    """
    if sampler == "reference":
        return sample_reference(model, sched, params, obs, key, num_samples, unroll=unroll)
    if sampler == "pallas":
        return sample_pallas(model, sched, params, obs, key, num_samples,
                             bf16_activations=bf16_activations)
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")


def vlo_row_losses(model: NoiseModel, sched: Schedule, params: Params, actions: jax.Array,
                   state_features: jax.Array, key: jax.Array) -> jax.Array:
    """Per-row variational (noise-prediction) loss mean_d (eps - eps_theta(a_t, t, s))^2.

    ``actions`` (..., d) are clean actions a; ``state_features`` broadcast against them (see
    NoiseModel.state_features). t ~ U{0..T-1}, eps ~ N(0, I), a_t = sqrt(abar_t) a +
    sqrt(1 - abar_t) eps (docs/algorithm.md section 1). Returns (...,): the caller applies the weights.
    """
    k_t, k_eps = jax.random.split(key)
    t = jax.random.randint(k_t, actions.shape[:-1], 0, sched.num_steps)
    eps = jax.random.normal(k_eps, actions.shape, jnp.float32)
    sa = jnp.asarray(sched.sqrt_alphas_cumprod)[t][..., None]
    s1a = jnp.asarray(sched.sqrt_one_minus_alphas_cumprod)[t][..., None]
    a_t = sa * actions + s1a * eps
    t_feat = model.time_features(params, sched.num_steps)[t]
    pred = model.apply_features(params, a_t, state_features + t_feat)
    return jnp.mean(jnp.square(eps - pred), axis=-1)


def sample_flops(model: NoiseModel, num_rows: int, num_steps: int) -> float:
    """Matmul FLOPs of sampling ``num_rows`` candidates through ``num_steps`` steps (for MFU)."""
    sizes = (*model.hidden, model.action_size)
    per_row = model.action_size * model.hidden[0] + sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return 2.0 * per_row * num_rows * num_steps


__all__ = ["BETA_SCHEDULES", "SAMPLERS", "Schedule", "make_schedule", "posterior_step", "sample",
           "sample_reference", "sample_pallas", "draw_noise",
           "vlo_row_losses", "cosine_betas", "linear_betas", "vp_betas", "sample_flops"]
