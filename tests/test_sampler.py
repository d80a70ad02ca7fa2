"""The sampler interface (issue 11): the fused Pallas sampler computes the reference sampler's
function (docs/algorithm.md section 1) given the same key, and every draw of the learner goes through the
configured sampler. On the CPU the kernel runs in Pallas interpret mode."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mjx_qvpo import acting, diffusion
from mjx_qvpo.config import ConfigError, apply_overrides, base_config, validate
from mjx_qvpo.losses import LossConfig, Transition, make_losses
from mjx_qvpo.networks import Critic, NoiseModel
from mjx_qvpo.q_transforms import QStats


def _model(obs, act, hidden, precision="float32"):
    return NoiseModel(obs, act, hidden, 8, 16, precision)


def test_draw_noise_is_the_reference_stream():
    """A plain loop of posterior steps fed ``draw_noise`` reproduces ``sample_reference``."""
    sched = diffusion.make_schedule(4)
    model = _model(3, 2, (16, 16))
    params = model.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (4, 3))
    key = jax.random.PRNGKey(2)
    a, noise = diffusion.draw_noise(sched, key, (4, 5, 2))
    assert noise.shape == (4, 4, 5, 2)
    for i, t in enumerate(range(3, -1, -1)):
        eps = model.apply(params, a, jnp.full((4, 5), t), obs[:, None, :].repeat(5, 1), 4)
        a = diffusion.posterior_step(sched, t, a, eps, noise[i])
    ref = diffusion.sample_reference(model, sched, params, obs, key, 5)
    np.testing.assert_allclose(jnp.clip(a, -1, 1), ref, atol=1e-5)


def _scan_body_weight_converts(fn, *args) -> int:
    """Conversions to bfloat16 of 2-D arrays (weight matrices) inside the jaxpr's scan bodies."""
    def count(jaxpr) -> int:
        n = 0
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "scan":
                n += sum(1 for e in eqn.params["jaxpr"].jaxpr.eqns
                         if e.primitive.name == "convert_element_type"
                         and e.params["new_dtype"] == jnp.bfloat16 and e.invars[0].aval.ndim == 2)
            for sub in jax.core.jaxprs_in_params(eqn.params):
                n += count(sub)
        return n
    return count(jax.make_jaxpr(fn)(*args).jaxpr)


def test_bfloat16_weights_are_rounded_once_before_the_denoising_loop(monkeypatch):
    """bfloat16 mode: the reference sampler rounds the weights before its scan, not in each of
    the T steps (one GPU kernel per weight and step, H200 profile), with the same result."""
    sched = diffusion.make_schedule(5)
    model = _model(3, 4, (32, 32), "bfloat16")
    params = model.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (6, 3))
    key = jax.random.PRNGKey(2)
    sample = jax.jit(lambda p, o, k: diffusion.sample_reference(model, sched, p, o, k, 8))
    hoisted = sample(params, obs, key)
    assert _scan_body_weight_converts(sample, params, obs, key) == 0
    monkeypatch.setattr(diffusion, "cast_weights", lambda p, mode: p)   # the per-step path
    per_step = jax.jit(lambda p, o, k: diffusion.sample_reference(model, sched, p, o, k, 8))
    assert _scan_body_weight_converts(per_step, params, obs, key) >= 3   # w_a and the trunk
    np.testing.assert_array_equal(hoisted, per_step(params, obs, key))
    # float32 mode converts nothing and passes the parameters through untouched.
    from mjx_qvpo.networks import cast_weights
    assert cast_weights(params, "float32") is params
    cast = cast_weights(params, "bfloat16")
    assert cast["trunk"][0]["w"].dtype == jnp.bfloat16 and cast["first"]["w_a"].dtype == jnp.bfloat16
    assert cast["trunk"][0]["b"].dtype == jnp.float32 and cast["first"]["b"].dtype == jnp.float32


@pytest.mark.parametrize("obs, act, hidden, batch, k, steps, tile", [
    (7, 17, (32, 24, 32), 5, 3, 5, 16),    # 15 rows in one padded tile; widths padded to 32
    (4, 6, (64, 64), 9, 8, 6, 16),         # 72 rows: 4 full tiles and a padded fifth
    (2, 1, (20,), 3, 4, 20, 64),           # act 1, T = 20, a single layer trunk
    (3, 17, (128, 128), 4, 4, 3, 16),      # fan-in 128: trunk matmuls in two 64-row chunks
])
def test_pallas_sampler_equals_reference(obs, act, hidden, batch, k, steps, tile):
    sched = diffusion.make_schedule(steps)
    model = _model(obs, act, hidden)
    params = model.init(jax.random.PRNGKey(0))
    states = jax.random.normal(jax.random.PRNGKey(1), (batch, obs))
    key = jax.random.PRNGKey(3)
    ref = diffusion.sample_reference(model, sched, params, states, key, k)
    got = diffusion.sample_pallas(model, sched, params, states, key, k, tile_rows=tile)
    assert got.shape == (batch, k, act)
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
    # The draws really are random (padding rows did not leak zeros into the result).
    assert float(jnp.std(got)) > 0.05


@pytest.mark.parametrize("precision, hidden", [("float32", (32, 32, 32)),
                                               ("bfloat16", (24, 32, 32, 32))])
def test_pallas_stacked_hidden_layers_compute_the_same(precision, hidden):
    """``stack_hidden`` (the equal hidden layers as an inner loop over one stacked weight, so
    that Triton can pipeline their loads in bounded shared memory) gives bit for bit the
    kernel's actions without it (interpret mode), so the reference's to 1e-5; three hidden
    layers pad their stack to four. A trunk without two equal hidden layers is refused."""
    from mjx_qvpo import pallas_sampler
    sched = diffusion.make_schedule(4)
    model = NoiseModel(5, 3, hidden, 16, 16, precision)
    params = model.init(jax.random.PRNGKey(0))
    states = jax.random.normal(jax.random.PRNGKey(1), (6, 5))
    key = jax.random.PRNGKey(2)
    plain = diffusion.sample_pallas(model, sched, params, states, key, 4, tile_rows=16)
    stacked = diffusion.sample_pallas(model, sched, params, states, key, 4, tile_rows=16,
                                      stack_hidden=True)
    np.testing.assert_array_equal(stacked, plain)
    if precision == "float32":
        ref = diffusion.sample_reference(model, sched, params, states, key, 4)
        np.testing.assert_allclose(stacked, ref, atol=1e-5, rtol=0)
    # one hidden trunk layer (32 -> 64), then two of unequal shapes (32 -> 64 and 64 -> 64)
    for widths in ((32, 64), (32, 64, 64)):
        bad = NoiseModel(5, 3, widths, 16, 16, precision)
        with pytest.raises(ValueError, match="stack_hidden needs at least two hidden trunk"):
            diffusion.sample_pallas(bad, sched, bad.init(jax.random.PRNGKey(0)), states, key, 4,
                                    stack_hidden=True)
    assert pallas_sampler.DEFAULT_NUM_STAGES == 1


def test_pallas_sampler_under_jit_and_vmap():
    """The bandit experiment vmaps the learner over seeds; the kernel batches like the scan."""
    sched = diffusion.make_schedule(3)
    model = _model(2, 3, (16, 16))
    params = jax.vmap(model.init)(jax.random.split(jax.random.PRNGKey(0), 2))
    obs = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 2))
    keys = jax.random.split(jax.random.PRNGKey(2), 2)
    f = lambda s: jax.jit(jax.vmap(  # noqa: E731
        lambda p, o, kk: diffusion.sample(model, sched, p, o, kk, 5, sampler=s)))
    np.testing.assert_allclose(f("pallas")(params, obs, keys), f("reference")(params, obs, keys),
                               atol=1e-5)


def _nets(sampler, precision="float32", bf16_activations=False):
    return acting.QVPONetworks(_model(3, 2, (16, 16), precision), Critic(3, 2, (16, 16), precision),
                               diffusion.make_schedule(4), sampler=sampler,
                               bf16_activations=bf16_activations)


def test_best_of_k_is_the_same_through_either_sampler():
    ref, fast = _nets("reference"), _nets("pallas")
    ap = ref.actor.init(jax.random.PRNGKey(0))
    cp = ref.critic.init(jax.random.PRNGKey(1))
    obs = jax.random.normal(jax.random.PRNGKey(2), (6, 3))
    key = jax.random.PRNGKey(3)
    a_ref, q_ref = acting.best_of_k(ref, ap, cp, obs, key, 5)
    a_fast, q_fast = acting.best_of_k(fast, ap, cp, obs, key, 5)
    np.testing.assert_allclose(a_fast, a_ref, atol=1e-5)
    np.testing.assert_allclose(q_fast, q_ref, atol=1e-5)
    policy = acting.make_inference_fn(fast, 5)((ap, cp, None))   # evaluation goes through it too
    np.testing.assert_allclose(policy(obs, key), a_ref, atol=1e-5)


def test_losses_and_gradients_through_the_pallas_sampler():
    """K candidates and K_t targets come from the configured sampler; the policy gradient (which
    never flows through sampled actions) is the same."""
    ref, fast = _nets("reference"), _nets("pallas")
    cfg = LossConfig(num_train_samples=4, num_target_samples=3, num_entropy_samples=2)
    ap = ref.actor.init(jax.random.PRNGKey(0))
    cp = ref.critic.init(jax.random.PRNGKey(1))
    obs = jax.random.normal(jax.random.PRNGKey(2), (5, 3))
    batch = Transition(obs, jnp.zeros((5, 2)) + 0.2, jnp.ones(5), obs[::-1], jnp.zeros(5))
    key = jax.random.PRNGKey(4)
    out = {}
    for name, nets in (("ref", ref), ("fast", fast)):
        critic_loss, actor_loss = make_losses(nets, cfg)
        c = jax.value_and_grad(critic_loss, has_aux=True)(cp, ap, cp, batch, key)
        a = jax.value_and_grad(actor_loss, has_aux=True)(ap, cp, batch, jnp.float32(0.01),
                                                         QStats.create(), key)
        out[name] = (c[0][0], c[1], a[0][0], a[1])
    for x, y in zip(jax.tree.leaves(out["fast"]), jax.tree.leaves(out["ref"])):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


def test_pallas_sampler_in_bfloat16():
    """bfloat16 matmuls: the kernel matches the reference's bfloat16 mode; bfloat16 activations
    stay within bfloat16 rounding of the float32 sampler."""
    sched = diffusion.make_schedule(5)
    obs = jax.random.normal(jax.random.PRNGKey(1), (6, 4))
    key = jax.random.PRNGKey(2)
    f32 = _model(4, 6, (32, 32))
    bf16 = _model(4, 6, (32, 32), "bfloat16")
    params = f32.init(jax.random.PRNGKey(0))
    exact = diffusion.sample_reference(f32, sched, params, obs, key, 8)
    ref16 = diffusion.sample_reference(bf16, sched, params, obs, key, 8)
    fast16 = diffusion.sample_pallas(bf16, sched, params, obs, key, 8)
    act16 = diffusion.sample_pallas(bf16, sched, params, obs, key, 8, bf16_activations=True)
    np.testing.assert_allclose(fast16, ref16, atol=1e-4)
    for approx in (ref16, act16):
        err = float(jnp.max(jnp.abs(approx - exact)))
        assert 0 < err < 0.05, err
    assert float(jnp.max(jnp.abs(act16 - fast16))) > 0   # activations really were rounded


def test_sampler_config_fields():
    cfg = base_config()
    assert cfg.sampler == "reference" and cfg.activation_dtype == "float32"
    validate(apply_overrides(cfg, {"sampler": "pallas"}))
    with pytest.raises(ConfigError, match="'sampler' must be one of"):
        validate(apply_overrides(cfg, {"sampler": "triton"}))
    with pytest.raises(ConfigError, match="'activation_dtype' bfloat16 needs sampler 'pallas'"):
        validate(apply_overrides(cfg, {"activation_dtype": "bfloat16"}))
    validate(apply_overrides(cfg, {"activation_dtype": "bfloat16", "sampler": "pallas",
                                   "matmul_precision": "bfloat16"}))
    from mjx_qvpo.config import resolve
    from mjx_qvpo.training import make_networks
    nets = make_networks(resolve(apply_overrides(cfg, {
        "sampler": "pallas", "matmul_precision": "bfloat16", "activation_dtype": "bfloat16"})),
        3, 2)
    assert nets.sampler == "pallas" and nets.bf16_activations   # the trainer's networks use it
    with pytest.raises(ValueError, match="sampler must be one of"):
        diffusion.sample(_model(2, 2, (16,)), diffusion.make_schedule(2), None, jnp.zeros((1, 2)),
                         jax.random.PRNGKey(0), 1, sampler="fast")


@pytest.mark.parametrize("precision, bf16_activations, stack_hidden", [
    ("float32", False, False), ("tensorfloat32", False, False), ("bfloat16", False, False),
    ("bfloat16", True, False), ("bfloat16", False, True)])
def test_pallas_kernel_lowers_to_triton(precision, bf16_activations, stack_hidden):
    """No GPU here, but JAX lowers for CUDA on any host: the kernel at humanoid size (act 17,
    3 x 256, T = 20, 16,384 rows) passes the Pallas Triton lowering (power-of-two blocks, dot
    shapes, dtypes). Triton's own compilation (shared memory, registers) needs the GPU."""
    from mjx_qvpo import pallas_sampler
    sched = diffusion.make_schedule(20)
    model = NoiseModel(244, 17, (256, 256, 256), 32, 256, precision)
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0))
    rows, f32 = 256 * 64, jnp.float32

    def run(params, s_feat, t_feat, a_T, noise):
        return pallas_sampler.denoise_rows(model, sched, params, s_feat, t_feat, a_T, noise,
                                           interpret=False, bf16_activations=bf16_activations,
                                           stack_hidden=stack_hidden,
                                           num_stages=2 if stack_hidden else 1)
    args = (params, jax.ShapeDtypeStruct((rows, 256), f32), jax.ShapeDtypeStruct((20, 256), f32),
            jax.ShapeDtypeStruct((rows, 17), f32), jax.ShapeDtypeStruct((20, rows, 17), f32))
    text = jax.jit(run).trace(*args).lower(lowering_platforms=("cuda",)).as_text()
    call = [line for line in text.splitlines() if "__gpu$xla.gpu.triton" in line]
    assert len(call) == 1, "one Triton kernel"
    # Pipelining off (pallas_sampler.DEFAULT_NUM_STAGES): with it, Triton buffered every weight
    # load at once and the kernel asked an H200 for more shared memory than a block has.
    assert f"num_stages = {2 if stack_hidden else 1} : i32" in call[0]
    # The trunk's 256 x 256 weights reach the kernel in the dtype its dots use: bfloat16 (half
    # the bytes to load and stage) in bfloat16 mode, float32 otherwise; stacked, as one.
    operand_types = call[0].rsplit(": (", 1)[1].split(") ->")[0]
    wide = "bf16" if precision == "bfloat16" else "f32"
    narrow = "f32" if precision == "bfloat16" else "bf16"
    shape, count = ("512x256", 1) if stack_hidden else ("256x256", 2)
    assert operand_types.count(f"tensor<{shape}x{wide}>") == count
    assert f"tensor<{shape}x{narrow}>" not in operand_types
