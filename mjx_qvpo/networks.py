"""Networks of QVPO as pure init/apply functions (docs/algorithm.md sections 1 and 2).

Both networks are MLPs whose first layer reads a concatenation (``[a_t, emb(t), s]`` for the noise
model, ``[s, a]`` for the critic). A dense layer on a concatenation equals the sum of dense layers on
its parts, so the first-layer weight is stored split by input part. That is the same function with the
same initialization as the reference, but it lets the sampler compute the state's share of the first
layer once per state (not once per candidate and denoising step) and the time embedding once per step
(not once per row). Parameters are plain dicts of arrays, so they checkpoint and tree-map trivially.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp

Params = Any


def mish(x: jax.Array) -> jax.Array:
    """Mish activation x * tanh(softplus(x)), the reference networks' nonlinearity.

    Computed as x * n / (n + 2) with n = e^x (e^x + 2), the same function with one exp instead of
    exp, log1p and tanh: at small widths the activations, not the matmuls, dominate sampling cost.
    The clamp avoids overflow; above x = 20 the ratio is 1 in float32 anyway.
    """
    e = jnp.exp(jnp.minimum(x, 20.0))
    n = e * (e + 2.0)
    return x * n / (n + 2.0)


def _dense_weight(key: jax.Array, fan_in: int, fan_out: int) -> jax.Array:
    """Reference init (docs/algorithm.md section 1): normal, std 1/(2 sqrt(fan_in)), truncated at 2 std."""
    std = 1.0 / (2.0 * math.sqrt(fan_in))
    return std * jax.random.truncated_normal(key, -2.0, 2.0, (fan_in, fan_out), jnp.float32)


def _init_split_first_layer(key: jax.Array, part_sizes: dict[str, int], width: int) -> Params:
    """First layer on a concatenation of named parts, initialised as one matrix then split by part."""
    fan_in = sum(part_sizes.values())
    w = _dense_weight(key, fan_in, width)
    out, start = {}, 0
    for name, size in part_sizes.items():
        out[f"w_{name}"] = w[start:start + size]
        start += size
    out["b"] = jnp.zeros((width,), jnp.float32)
    return out


def _init_mlp(key: jax.Array, sizes: Sequence[int]) -> list[Params]:
    """Dense layers sizes[0] -> sizes[1] -> ... with the reference init and zero biases."""
    keys = jax.random.split(key, len(sizes) - 1)
    return [{"w": _dense_weight(k, i, o), "b": jnp.zeros((o,), jnp.float32)}
            for k, i, o in zip(keys, sizes[:-1], sizes[1:])]


MATMUL_MODES = ("float32", "tensorfloat32", "bfloat16")


def matmul(x: jax.Array, w: jax.Array, mode: str = "float32") -> jax.Array:
    """x @ w in the config's ``matmul_precision``; the result is float32 in every mode.

    float32: full float32 products (Precision.HIGHEST), the default. tensorfloat32: the backend's
    fast float32 path (TF32 tensor cores on NVIDIA GPUs; the same as float32 on the CPU).
    bfloat16: operands rounded to bfloat16, products accumulated in float32. Parameters, optimizer
    states and every non-matmul operation stay float32 in all modes.
    """
    if mode == "bfloat16":
        return jnp.dot(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16),
                       preferred_element_type=jnp.float32)
    precision = jax.lax.Precision.DEFAULT if mode == "tensorfloat32" else jax.lax.Precision.HIGHEST
    return jnp.dot(x, w, precision=precision)


def cast_weights(params: Params, mode: str = "float32") -> Params:
    """``params`` with every weight matrix (the leaves named ``w``, ``w_a``, ``w_s``, ``w_t``) in
    the dtype ``matmul`` rounds it to in ``mode``: bfloat16 in bfloat16 mode; unchanged (the same
    tree) in the other modes. ``matmul`` then has nothing to convert, so a loop that applies a
    network many times (the sampler's T denoising steps, docs/algorithm.md section 1) converts each
    weight once before the loop instead of once per step, as a separate GPU kernel each time (the
    H200 profile of bfloat16 sampling, results/bench/h200_profile_bf16/). Biases stay float32.
    The products are bit for bit the same: rounding a weight to bfloat16 gives the same bits
    wherever it is done."""
    if mode != "bfloat16":
        return params

    def cast(path, x):
        last = path[-1]
        is_weight = isinstance(last, jax.tree_util.DictKey) and str(last.key).startswith("w")
        return x.astype(jnp.bfloat16) if is_weight else x
    return jax.tree_util.tree_map_with_path(cast, params)


def _apply_trunk(layers: list[Params], h: jax.Array, precision: str,
                 norms: list[Params] | None = None) -> jax.Array:
    """Apply hidden layers with Mish after each but the last (the output layer is linear); with
    ``norms``, hidden layer i is LayerNorm-ed by ``norms[i]`` before its Mish."""
    for i, layer in enumerate(layers):
        h = matmul(h, layer["w"], precision) + layer["b"]
        if i < len(layers) - 1:
            h = mish(h if norms is None else layer_norm(h, norms[i]))
    return h


def layer_norm(h: jax.Array, p: Params, eps: float = 1e-5) -> jax.Array:
    """LayerNorm over the last axis with a learned scale and bias (p["scale"], p["bias"])."""
    mean = jnp.mean(h, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(h - mean), axis=-1, keepdims=True)
    return (h - mean) * jax.lax.rsqrt(var + eps) * p["scale"] + p["bias"]


def sinusoidal_embedding(t: jax.Array, dim: int) -> jax.Array:
    """Sinusoidal embedding of integer diffusion steps t (...,) -> (..., dim), as in DDPM/DIPO."""
    half = dim // 2
    freqs = jnp.exp(jnp.arange(half, dtype=jnp.float32) * -(math.log(10000.0) / (half - 1)))
    x = t.astype(jnp.float32)[..., None] * freqs
    return jnp.concatenate([jnp.sin(x), jnp.cos(x)], axis=-1)


@dataclasses.dataclass(frozen=True)
class NoiseModel:
    """eps_theta(a_t, t, s) of docs/algorithm.md section 1: MLP on [a_t, time-MLP(sinusoid(t)), s].

    Static shapes only; parameters are passed to every method. ``hidden`` is the trunk
    (reference: 3 x 256, Mish); the time MLP is sinusoid(time_dim) -> time_hidden -> Mish -> time_dim.
    """
    obs_size: int
    action_size: int
    hidden: tuple[int, ...] = (256, 256, 256)
    time_dim: int = 32
    time_hidden: int = 256
    precision: str = "float32"   # matmul mode, see matmul()

    def init(self, key: jax.Array) -> Params:
        """Initial parameters (reference init; see module docstring for the split first layer)."""
        k_time, k_first, k_trunk = jax.random.split(key, 3)
        first = _init_split_first_layer(
            k_first, {"a": self.action_size, "t": self.time_dim, "s": self.obs_size}, self.hidden[0])
        return {
            "time": _init_mlp(k_time, (self.time_dim, self.time_hidden, self.time_dim)),
            "first": first,
            "trunk": _init_mlp(k_trunk, (*self.hidden, self.action_size)),
        }

    def state_features(self, params: Params, obs: jax.Array) -> jax.Array:
        """The state's share of the first layer, s @ W_s + b: (..., obs) -> (..., hidden[0])."""
        first = params["first"]
        return matmul(obs, first["w_s"], self.precision) + first["b"]

    def time_features(self, params: Params, num_steps: int) -> jax.Array:
        """The time embedding's share of the first layer for every step t in 0..T-1: (T, hidden[0])."""
        emb = sinusoidal_embedding(jnp.arange(num_steps), self.time_dim)
        emb = _apply_trunk(params["time"], emb, self.precision)
        return matmul(emb, params["first"]["w_t"], self.precision)

    def apply_features(self, params: Params, a_t: jax.Array, features: jax.Array) -> jax.Array:
        """eps prediction given the precomputed state+time share of the first layer (broadcasting)."""
        h = matmul(a_t, params["first"]["w_a"], self.precision) + features
        return _apply_trunk(params["trunk"], mish(h), self.precision)

    def apply(self, params: Params, a_t: jax.Array, t: jax.Array, obs: jax.Array,
              num_steps: int) -> jax.Array:
        """eps_theta(a_t, t, s) for rows (..., d), integer steps (...,), states (..., obs)."""
        features = self.state_features(params, obs) + self.time_features(params, num_steps)[t]
        return self.apply_features(params, a_t, features)


@dataclasses.dataclass(frozen=True)
class Critic:
    """Double-Q critic of docs/algorithm.md section 2: two MLP heads on [s, a] (reference 3 x 256, Mish).

    The two heads' parameters are stacked on a leading axis of size 2 and evaluated with one vmap.
    ``layer_norm`` (off in the reference) puts a LayerNorm with learned scale and bias between each
    hidden layer's affine map and its Mish, as the fast parallel off-policy critics do
    (../shared/ANCHORS.md: FastTD3, FastSAC); off, the function and its parameters are the
    reference's.
    """
    obs_size: int
    action_size: int
    hidden: tuple[int, ...] = (256, 256, 256)
    precision: str = "float32"   # matmul mode, see matmul()
    layer_norm: bool = False

    def init(self, key: jax.Array) -> Params:
        """Initial parameters of both heads (independent draws, reference init; LayerNorm scale 1,
        bias 0)."""
        def one(k):
            k_first, k_trunk = jax.random.split(k)
            p = {
                "first": _init_split_first_layer(
                    k_first, {"s": self.obs_size, "a": self.action_size}, self.hidden[0]),
                "trunk": _init_mlp(k_trunk, (*self.hidden, 1)),
            }
            if self.layer_norm:
                p["ln"] = [{"scale": jnp.ones((h,), jnp.float32), "bias": jnp.zeros((h,), jnp.float32)}
                           for h in self.hidden]
            return p
        return jax.vmap(one)(jax.random.split(key, 2))

    def state_features(self, params: Params, obs: jax.Array) -> jax.Array:
        """Each head's state share of the first layer: (..., obs) -> (2, ..., hidden[0])."""
        return jax.vmap(lambda p: matmul(obs, p["first"]["w_s"], self.precision)
                        + p["first"]["b"])(params)

    def apply_features(self, params: Params, actions: jax.Array, features: jax.Array) -> jax.Array:
        """Both heads' Q for actions (..., d) given state features (2, ..., h) that broadcast: (2, ...)."""
        def one(p, f):
            h = matmul(actions, p["first"]["w_a"], self.precision) + f
            if self.layer_norm:
                h = layer_norm(h, p["ln"][0])
            norms = p["ln"][1:] if self.layer_norm else None
            return _apply_trunk(p["trunk"], mish(h), self.precision, norms)[..., 0]
        return jax.vmap(one)(params, features)

    def apply(self, params: Params, obs: jax.Array, actions: jax.Array) -> jax.Array:
        """Q_1 and Q_2 of (s, a): (..., obs), (..., d) -> (2, ...)."""
        return self.apply_features(params, actions, self.state_features(params, obs))

    def min_q(self, params: Params, obs: jax.Array, actions: jax.Array) -> jax.Array:
        """Q = min(Q_1, Q_2), the value QVPO uses for scoring and bootstrapping."""
        return jnp.min(self.apply(params, obs, actions), axis=0)
