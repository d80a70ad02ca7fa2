"""The whole T-step ancestral sampler of docs/algorithm.md section 1 as one Pallas kernel (``sampler="pallas"``).

The reference sampler (``diffusion.sample_reference``) is a ``lax.scan`` over the T denoising steps
whose body is a handful of small matmuls and elementwise passes; at humanoid size on a GPU every step
launches several kernels and writes the (rows, 256) activations to memory between them. This kernel
runs the whole denoising loop on one tile of candidate rows: the tile's actions and activations stay
on chip across all T steps, and only the weights, the precomputed state and time shares of the first
layer and the noise are read. It computes the same function as the reference, given the same noise
(``diffusion.draw_noise`` draws exactly the reference's random stream), which the CPU tests check in
Pallas interpret mode.

GPU lowering targets the Triton backend: every array a kernel loads is padded to power-of-two sizes
(rows to a power-of-two tile, feature widths to powers of two >= 16, which ``tl.dot`` also needs).
Zero padding is exact: padded inputs and weights are 0, Mish(0) = 0, so padded columns stay 0.
On the CPU the kernel runs in interpret mode (a correctness path, not a fast one).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from mjx_qvpo.networks import NoiseModel, Params, mish

# Rows of candidates per kernel instance. 64 keeps one tile's activations (64 x 256 float32 = 64 KiB)
# plus one 256 x 256 weight small enough for a GPU's shared memory in bfloat16; tuned on a GPU later.
DEFAULT_TILE_ROWS = 64
# Rows of a trunk weight per partial matmul (see _layer_dot); None multiplies by whole weights.
DEFAULT_K_CHUNK = 64
# Triton's pipelining depth for loads inside loops. With 2 or more stages Triton prefetches every
# load of the next loop iteration into a shared-memory buffer of its own, so all of the network's
# weights are resident at once: on an H200 (sessions 12 and 17) every variant asked for the padded
# float32 weights (589,824 bytes) plus one tile, more than the 232,448 bytes a block has. One stage
# issues each chunk's load where it is used, so its buffer can be reused by the next chunk's: on
# an H200 (session 18) every variant then launched, slower than the reference sampler.
DEFAULT_NUM_STAGES = 1


def _pow2(n: int, lo: int = 16) -> int:
    """Smallest power of two >= max(n, lo): Triton's block sizes must be powers of two and
    ``tl.dot`` needs every dimension >= 16."""
    return max(lo, 1 << max(0, math.ceil(math.log2(max(n, 1)))))


def _pad2(x: jax.Array, rows: int, cols: int) -> jax.Array:
    """Zero-pad a 2-D array to (rows, cols)."""
    return jnp.pad(x, ((0, rows - x.shape[0]), (0, cols - x.shape[1])))


def _dot(x: jax.Array, w: jax.Array, mode: str) -> jax.Array:
    """``networks.matmul`` inside a kernel: the same three precision modes, float32 results.
    HIGHEST lowers to Triton's IEEE float32 dot, DEFAULT to its TF32 dot."""
    if mode == "bfloat16":
        return jnp.dot(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16),
                       preferred_element_type=jnp.float32)
    precision = jax.lax.Precision.DEFAULT if mode == "tensorfloat32" else jax.lax.Precision.HIGHEST
    return jnp.dot(x, w, precision=precision, preferred_element_type=jnp.float32)


def _layer_dot(h: jax.Array, w_ref, mode: str, k_chunk: int | None, zero) -> jax.Array:
    """h @ W with W read from its ref in row chunks of ``k_chunk`` (summed in float32).

    Why: a whole 256 x 256 float32 weight is 256 KiB, more than a GPU's shared memory, if Triton
    stages it for one dot; chunks of 64 rows are 64 KiB. The split of h into equal power-of-two
    parts is what Triton's lowering supports. Summing partial products changes the float32
    rounding order only (tests hold the result to 1e-5 of the reference).

    ``zero`` is 0, but read from memory inside the step loop (see ``_kernel``), and every weight
    read starts at it: the reads then depend on the loop, so Triton cannot hoist them out of it
    and keep every weight of the network in shared memory for the whole kernel. On an H200 the
    kernel with hoisted reads asked for 306-352 KiB (bfloat16) and 608-640 KiB (float32) of
    shared memory, all weights plus one tile, where 227 KiB exist (results/bench/h200_profile_bf16/).
    """
    fan_in = h.shape[-1]
    if k_chunk is None or fan_in <= k_chunk:
        return _dot(h, w_ref[pl.ds(zero, fan_in), :], mode)
    acc = None
    for p, part in enumerate(jnp.split(h, fan_in // k_chunk, axis=1)):
        y = _dot(part, w_ref[pl.ds(zero + p * k_chunk, k_chunk), :], mode)
        acc = y if acc is None else acc + y
    return acc


def _act(h: jax.Array, dtype) -> jax.Array:
    """Mish of a layer's float32 pre-activation, kept in ``dtype`` between layers.

    With bfloat16 the pre-activation and the result are rounded to bfloat16 (half the on-chip
    bytes per activation); Mish itself is evaluated in float32 because Triton has no bfloat16
    division. a_t, the noise and the matmul accumulators stay float32 in every mode.
    """
    if dtype == jnp.float32:
        return mish(h)
    return mish(h.astype(dtype).astype(jnp.float32)).astype(dtype)


def _step_constants(sched) -> np.ndarray:
    """Per-step scalars as a (5, T) float32 array in loop order (column i is step t = T-1-i):
    sqrt(1/abar), sqrt(1/abar - 1), c1, c2 and sigma, the schedule's own float32 values, so the
    kernel multiplies by exactly the reference's constants. sigma is exp(0.5 log var) in float32
    (the reference computes it the same way at run time) and 0 at t = 0, where the reference
    adds 0 * z."""
    sigma = np.exp(np.float32(0.5) * sched.posterior_log_variance_clipped.astype(np.float32))
    sigma[0] = 0.0
    rows = [sched.sqrt_recip_alphas_cumprod, sched.sqrt_recipm1_alphas_cumprod,
            sched.posterior_mean_coef1, sched.posterior_mean_coef2, sigma]
    return np.stack([np.asarray(r, np.float32)[::-1] for r in rows])


def _kernel(c_ref, a_ref, z_ref, s_ref, tf_ref, wa_ref, *refs, num_steps, mode,
            bf16_activations, k_chunk, num_hidden=0):
    """One tile of rows through all T denoising steps (docs/algorithm.md section 1).

    Refs: the step constants (5, T') in loop order (see _step_constants), a_T (tile, d), noise
    (T, tile, d), state share (tile, H0), time shares (T', H0) in loop order, w_a (d, H0), then
    (w, b) of each trunk layer, then the output (tile, d). The step loop is a ``fori_loop``
    (Triton's scf.for), not unrolled: on an H100 the kernel with T Python-unrolled steps was still
    compiling after 100 s, and the loop's body is one step's code whatever T is.

    With ``num_hidden`` > 0 (``stack_hidden`` of ``denoise_rows``) the refs after w_a are the
    trunk's ``num_hidden`` equal hidden layers stacked (weights (num_hidden x fan, fan), biases
    one row each), then the output layer's (w, b): the hidden layers run as an inner loop whose
    weight reads are one load site per chunk, so Triton's pipelining (``num_stages`` >= 2)
    buffers one layer's chunks, not every layer's.
    """
    *layer_refs, out_ref = refs
    layers = list(zip(layer_refs[0::2], layer_refs[1::2]))
    stacked = layers.pop(0) if num_hidden else None
    act_dtype = jnp.bfloat16 if bf16_activations else jnp.float32
    s = s_ref[...]

    def step(i, a):
        sr, srm1, c1, c2, sigma = (c_ref[j, i] for j in range(5))
        # Row 5 of the constants is all zeros: an offset of 0 that the compiler cannot see
        # through, so the weight reads stay inside the loop (see _layer_dot).
        zero = c_ref[5, i].astype(jnp.int32)
        # Same association as the reference: (a W_a) + (state share + time share).
        h = _layer_dot(a, wa_ref, mode, None, zero) + (s + tf_ref[pl.ds(i, 1), :])
        h = _act(h, act_dtype)
        if stacked is not None:
            wh_ref, bh_ref = stacked
            fan = wh_ref.shape[1]

            def hidden(l, h):
                h = _layer_dot(h, wh_ref, mode, k_chunk, zero + l * fan) + bh_ref[pl.ds(l, 1), :]
                return _act(h, act_dtype)
            h = jax.lax.fori_loop(0, num_hidden, hidden, h)
        for j, (w_ref, b_ref) in enumerate(layers):
            h = _layer_dot(h, w_ref, mode, k_chunk, zero) + b_ref[...]
            if j < len(layers) - 1:
                h = _act(h, act_dtype)
        h = h.astype(jnp.float32)
        a0 = jnp.clip(sr * a - srm1 * h, -1.0, 1.0)
        # sigma is 0 at the last step (t = 0): the reference's 0 * z there, the same number.
        return c1 * a0 + c2 * a + sigma * z_ref[i, :, :]

    a = jax.lax.fori_loop(0, num_steps, step, a_ref[...])
    out_ref[...] = jnp.clip(a, -1.0, 1.0)


def denoise_rows(model: NoiseModel, sched, params: Params, s_feat: jax.Array, t_feat: jax.Array,
                 a_T: jax.Array, noise: jax.Array, *, tile_rows: int = DEFAULT_TILE_ROWS,
                 interpret: bool | None = None, bf16_activations: bool = False,
                 num_warps: int = 4, k_chunk: int | None = DEFAULT_K_CHUNK,
                 num_stages: int = DEFAULT_NUM_STAGES, stack_hidden: bool = False) -> jax.Array:
    """Ancestral sampling of docs/algorithm.md section 1 for R independent rows with given noise.

    ``s_feat`` (R, H0) is each row's state share of the first layer (bias included), ``t_feat``
    (T, H0) the time embedding's share per step, ``a_T`` (R, d) the initial noise and ``noise``
    (T, R, d) the noise of each step in the reference's order (index i is step t = T-1-i).
    Returns a_0 clipped to [-1, 1], (R, d). Not differentiable (sampled actions never are in QVPO:
    the policy update stops their gradient), so the inputs are stop-gradiented.
    ``interpret`` defaults to True off the GPU. ``bf16_activations`` (bfloat16 matmul mode only)
    keeps activations between layers in bfloat16, not only matmul operands. ``num_stages`` is
    Triton's software-pipelining depth (see ``DEFAULT_NUM_STAGES``). ``stack_hidden`` runs the
    trunk's equal hidden layers (all but the output layer; at least two, all of one padded
    shape) as an inner loop over one stacked weight, the same arithmetic in the same order, so
    that pipelining can be turned on within shared memory (an experiment: not measured on a
    GPU yet).
    """
    if interpret is None:
        interpret = jax.default_backend() != "gpu"
    s_feat, t_feat, a_T, noise, params = jax.lax.stop_gradient((s_feat, t_feat, a_T, noise, params))
    rows, d = a_T.shape
    num_steps = sched.num_steps
    widths = [s_feat.shape[-1], *model.hidden[1:], d]
    padded = [_pow2(w) for w in widths]
    dp, h0 = _pow2(d), padded[0]
    tile = min(_pow2(tile_rows, lo=16), _pow2(rows))
    rows_p = tile * math.ceil(rows / tile)

    steps_p = _pow2(num_steps, lo=1)
    # 8 rows (5 used, row 5 the kernel's opaque zero offset): block dimensions powers of two.
    c_in = _pad2(jnp.asarray(_step_constants(sched)), 8, steps_p)
    a_in = _pad2(a_T, rows_p, dp)
    z_in = jnp.pad(noise, ((0, 0), (0, rows_p - rows), (0, dp - d)))
    s_in = _pad2(s_feat, rows_p, h0)
    tf_in = _pad2(t_feat[::-1], steps_p, h0)   # loop order: row i is step t = T-1-i
    # Weights in the dtype _dot rounds them to (bfloat16 in bfloat16 mode: the same bits, half the
    # bytes to load and to stage in shared memory); biases stay float32.
    w_dtype = jnp.bfloat16 if model.precision == "bfloat16" else jnp.float32
    wa_in = _pad2(params["first"]["w_a"], dp, h0).astype(w_dtype)
    layer_in = []
    for layer, fan_in, fan_out in zip(params["trunk"], padded[:-1], padded[1:]):
        layer_in += [_pad2(layer["w"], fan_in, fan_out).astype(w_dtype),
                     _pad2(layer["b"][None, :], 1, fan_out)]
    num_hidden = 0
    if stack_hidden:
        num_hidden = len(params["trunk"]) - 1
        if num_hidden < 2 or len(set(padded[:-1])) != 1:
            raise ValueError(f"stack_hidden needs at least two hidden trunk layers of one padded "
                             f"width, got widths {widths}")
        fan = padded[0]
        # Rows padded to a power of two (Triton's block sizes); the padding is never read.
        wh = jnp.concatenate(layer_in[0:2 * num_hidden:2], axis=0)
        bh = jnp.concatenate(layer_in[1:2 * num_hidden:2], axis=0)
        wh = jnp.pad(wh, ((0, _pow2(num_hidden, lo=1) * fan - wh.shape[0]), (0, 0)))
        bh = jnp.pad(bh, ((0, _pow2(num_hidden, lo=1) - num_hidden), (0, 0)))
        layer_in = [wh, bh, *layer_in[2 * num_hidden:]]

    full = lambda shape: pl.BlockSpec(shape, lambda i: (0,) * len(shape))  # noqa: E731
    in_specs = [full(c_in.shape), pl.BlockSpec((tile, dp), lambda i: (i, 0)),
                pl.BlockSpec((num_steps, tile, dp), lambda i: (0, i, 0)),
                pl.BlockSpec((tile, h0), lambda i: (i, 0)),
                full(tf_in.shape), full(wa_in.shape)] + [full(x.shape) for x in layer_in]
    kernel = functools.partial(_kernel, num_steps=num_steps, mode=model.precision,
                               k_chunk=None if k_chunk is None else _pow2(k_chunk),
                               bf16_activations=bf16_activations and model.precision == "bfloat16",
                               num_hidden=num_hidden)
    out = pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((rows_p, dp), jnp.float32),
        grid=(rows_p // tile,),
        in_specs=in_specs,
        out_specs=pl.BlockSpec((tile, dp), lambda i: (i, 0)),
        interpret=interpret,
        name="qvpo_sampler",   # the kernel's name in profiles (profiling.py classes it by this)
        # Triton, not the Mosaic GPU backend that recent JAX picks by default: this kernel is
        # written for Triton's model (one program per tile, whole blocks as values).
        compiler_params=None if interpret else pltriton.CompilerParams(num_warps=num_warps,
                                                                       num_stages=num_stages),
    )(c_in, a_in, z_in, s_in, tf_in, wa_in, *layer_in)
    return out[:rows, :d]


__all__ = ["DEFAULT_TILE_ROWS", "DEFAULT_K_CHUNK", "DEFAULT_NUM_STAGES", "denoise_rows"]
