"""Reference checks of the learner's pieces against hand-computed values (docs/algorithm.md sections 1-5)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mjx_qvpo import acting, diffusion, replay
from mjx_qvpo.losses import LossConfig, Transition, entropy_coef_schedule, make_losses, td_target
from mjx_qvpo.networks import Critic, NoiseModel, matmul, mish, sinusoidal_embedding
from mjx_qvpo.q_transforms import QStats, QTransformParams, get_q_transform
from mjx_qvpo.training import polyak


# ------------------------------------------------------------------------------ schedules
def test_cosine_schedule_matches_hand_computation():
    s, T = 0.008, 2
    f = lambda x: math.cos((x / 3 + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    abar = [f(i) / f(0) for i in (0, 1.5, 3)]
    expected = [1 - abar[1] / abar[0], min(1 - abar[2] / abar[1], 0.999)]
    np.testing.assert_allclose(diffusion.cosine_betas(T), expected, rtol=1e-12)
    # The last beta of the cosine schedule is clipped at 0.999.
    assert diffusion.cosine_betas(T)[-1] == pytest.approx(0.999)


def test_linear_and_vp_schedules():
    np.testing.assert_allclose(diffusion.linear_betas(3), [1e-4, (1e-4 + 2e-2) / 2, 2e-2])
    T = 4
    t = 2
    alpha = math.exp(-0.1 / T - 0.5 * (10 - 0.1) * (2 * t - 1) / T ** 2)
    assert diffusion.vp_betas(T)[t - 1] == pytest.approx(1 - alpha)
    with pytest.raises(ValueError, match="beta_schedule must be one of"):
        diffusion.make_schedule(5, "sigmoid")


def test_schedule_derived_constants():
    sched = diffusion.make_schedule(20, "cosine")
    betas = diffusion.cosine_betas(20)
    abar = np.cumprod(1 - betas)
    np.testing.assert_allclose(sched.alphas_cumprod, abar, rtol=1e-5)
    t = 5
    abar_prev = abar[t - 1]
    var = betas[t] * (1 - abar_prev) / (1 - abar[t])
    assert sched.posterior_log_variance_clipped[t] == pytest.approx(math.log(var), rel=1e-4)
    # At t = 0 the posterior variance is 0, so the log is clipped at log(1e-20).
    assert sched.posterior_log_variance_clipped[0] == pytest.approx(math.log(1e-20), rel=1e-5)
    assert sched.posterior_mean_coef1[t] == pytest.approx(
        betas[t] * math.sqrt(abar_prev) / (1 - abar[t]), rel=1e-4)
    assert sched.posterior_mean_coef2[t] == pytest.approx(
        (1 - abar_prev) * math.sqrt(1 - betas[t]) / (1 - abar[t]), rel=1e-4)


def test_one_posterior_step_by_hand():
    sched = diffusion.make_schedule(5, "linear")
    a_t, eps, z = np.array([0.3, -0.2]), np.array([0.5, 0.1]), np.array([1.0, -2.0])
    t = 3
    ab = np.cumprod(1 - diffusion.linear_betas(5))
    a0 = np.sqrt(1 / ab[t]) * a_t - np.sqrt(1 / ab[t] - 1) * eps
    a0 = np.clip(a0, -1, 1)
    beta = diffusion.linear_betas(5)[t]
    c1 = beta * np.sqrt(ab[t - 1]) / (1 - ab[t])
    c2 = (1 - ab[t - 1]) * np.sqrt(1 - beta) / (1 - ab[t])
    sigma = np.sqrt(beta * (1 - ab[t - 1]) / (1 - ab[t]))
    expected = c1 * a0 + c2 * a_t + sigma * z
    got = diffusion.posterior_step(sched, t, jnp.array(a_t), jnp.array(eps), jnp.array(z))
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    # At t = 0 no noise is added.
    got0 = diffusion.posterior_step(sched, 0, jnp.array(a_t), jnp.array(eps), jnp.array(z))
    got0_nz = diffusion.posterior_step(sched, 0, jnp.array(a_t), jnp.array(eps), jnp.zeros(2))
    np.testing.assert_allclose(got0, got0_nz)


def test_posterior_clips_the_predicted_clean_action():
    sched = diffusion.make_schedule(5, "linear")
    t = 4
    a_t, eps = jnp.array([3.0]), jnp.array([-3.0])  # a0_hat far above 1
    got = diffusion.posterior_step(sched, t, a_t, eps, jnp.zeros(1))
    expected = sched.posterior_mean_coef1[t] * 1.0 + sched.posterior_mean_coef2[t] * 3.0
    np.testing.assert_allclose(got, [expected], rtol=1e-5)


# ------------------------------------------------------------------------------- networks
def _concat_mlp_eps(model, params, a_t, t, obs, T):
    """The reference network written plainly: one dense layer on concat[a_t, emb(t), s]."""
    emb = sinusoidal_embedding(t, model.time_dim)
    l1, l2 = params["time"]
    emb = mish(emb @ l1["w"] + l1["b"]) @ l2["w"] + l2["b"]
    first = params["first"]
    w = jnp.concatenate([first["w_a"], first["w_t"], first["w_s"]], axis=0)
    h = mish(jnp.concatenate([a_t, emb, obs], -1) @ w + first["b"])
    trunk = params["trunk"]
    for layer in trunk[:-1]:
        h = mish(h @ layer["w"] + layer["b"])
    return h @ trunk[-1]["w"] + trunk[-1]["b"]


def test_mish_matches_its_definition():
    x = jnp.concatenate([jnp.linspace(-30, 30, 601), jnp.array([-1e4, 1e4])])
    ref = x * jnp.tanh(jax.nn.softplus(x))
    np.testing.assert_allclose(mish(x), ref, rtol=2e-6, atol=1e-6)
    g = jax.vmap(jax.grad(mish))(x[:-2])
    g_ref = jax.vmap(jax.grad(lambda v: v * jnp.tanh(jax.nn.softplus(v))))(x[:-2])
    np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-5)


def test_split_first_layer_equals_concat_mlp():
    model = NoiseModel(5, 3, (16, 16, 16), 8, 12, "float32")
    params = model.init(jax.random.PRNGKey(0))
    k1, k2 = jax.random.split(jax.random.PRNGKey(1))
    a_t, obs = jax.random.normal(k1, (7, 3)), jax.random.normal(k2, (7, 5))
    t = jnp.arange(7) % 4
    with jax.default_matmul_precision("highest"):
        ref = _concat_mlp_eps(model, params, a_t, t, obs, 4)
    np.testing.assert_allclose(model.apply(params, a_t, t, obs, 4), ref, rtol=1e-5, atol=1e-6)


def test_layer_norm_critic_matches_a_plain_numpy_mlp():
    """Both heads of the LayerNorm critic equal [s, a] -> (affine, LayerNorm, Mish) x 2 -> affine,
    written out in float64 numpy, with non-trivial scales and biases; without the option the
    parameters have no LayerNorm entries."""
    assert "ln" not in Critic(5, 3, (16, 16)).init(jax.random.PRNGKey(0))
    critic = Critic(5, 3, (16, 12), layer_norm=True)
    params = critic.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    params["ln"] = [{"scale": jnp.asarray(rng.normal(size=ln["scale"].shape), jnp.float32),
                     "bias": jnp.asarray(rng.normal(size=ln["bias"].shape), jnp.float32)}
                    for ln in params["ln"]]
    obs = rng.normal(size=(7, 5)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(7, 3)).astype(np.float32)
    p = jax.tree.map(lambda x: np.asarray(x, np.float64), params)

    def ln(h, scale, bias):
        z = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5)
        return z * scale + bias

    def np_mish(x):
        return x * np.tanh(np.log1p(np.exp(x)))

    for head in range(2):
        h = obs @ p["first"]["w_s"][head] + act @ p["first"]["w_a"][head] + p["first"]["b"][head]
        h = np_mish(ln(h, p["ln"][0]["scale"][head], p["ln"][0]["bias"][head]))
        h = h @ p["trunk"][0]["w"][head] + p["trunk"][0]["b"][head]
        h = np_mish(ln(h, p["ln"][1]["scale"][head], p["ln"][1]["bias"][head]))
        q = (h @ p["trunk"][1]["w"][head] + p["trunk"][1]["b"][head])[:, 0]
        np.testing.assert_allclose(critic.apply(params, obs, act)[head], q, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode, tol", [("float32", 1e-6), ("tensorfloat32", 1e-6),
                                       ("bfloat16", 1e-2)])
def test_matmul_modes_against_float64(mode, tol):
    """float32 products are exact to rounding on the CPU (tensorfloat32 only differs on GPUs);
    bfloat16 operands with float32 accumulation land between 1e-3 and 1e-2 relative error."""
    x = np.random.default_rng(0).normal(size=(64, 256))
    w = np.random.default_rng(1).normal(size=(256, 32))
    y = matmul(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32), mode)
    assert y.dtype == jnp.float32
    err = np.linalg.norm(np.asarray(y, np.float64) - x @ w) / np.linalg.norm(x @ w)
    assert err < tol
    if mode == "bfloat16":
        assert err > 1e-4  # operands really were rounded


def test_reference_initialization():
    model = NoiseModel(200, 17, (256, 256, 256))
    params = model.init(jax.random.PRNGKey(0))
    fan_in = 17 + 32 + 200
    w = np.concatenate([params["first"][k] for k in ("w_a", "w_t", "w_s")])
    std = 1 / (2 * math.sqrt(fan_in))
    assert np.abs(w).max() <= 2 * std + 1e-7          # truncated at 2 std
    # std of a normal truncated at +-2 sigma is 0.8796 sigma.
    assert np.std(w) == pytest.approx(0.8796 * std, rel=0.03)
    assert np.all(params["first"]["b"] == 0)
    critic = Critic(10, 2, (8, 8)).init(jax.random.PRNGKey(0))
    assert critic["first"]["w_s"].shape == (2, 10, 8)  # two heads stacked
    assert not np.allclose(critic["first"]["w_s"][0], critic["first"]["w_s"][1])


def test_sampler_shapes_and_bounds():
    nets = acting.QVPONetworks(NoiseModel(4, 3, (16, 16)), Critic(4, 3, (16, 16)),
                               diffusion.make_schedule(6))
    params = nets.actor.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (5, 4))
    a = nets.sample(params, obs, jax.random.PRNGKey(2), 7)
    assert a.shape == (5, 7, 3)
    assert float(jnp.max(jnp.abs(a))) <= 1.0
    # Different candidates of one state differ (the sampler is stochastic).
    assert float(jnp.std(a[0], axis=0).min()) > 1e-3


# ------------------------------------------------------------------------- action selection
def test_select_best_picks_the_argmax():
    cands = jnp.arange(2 * 4 * 2, dtype=jnp.float32).reshape(2, 4, 2)
    q = jnp.array([[0.1, 3.0, -1.0, 2.0], [5.0, 0.0, 0.0, 7.0]])
    best, qb = acting.select_best(cands, q)
    np.testing.assert_array_equal(best, [cands[0, 1], cands[1, 3]])
    np.testing.assert_array_equal(qb, [3.0, 7.0])


def test_best_of_k_takes_the_highest_q_candidate():
    nets = acting.QVPONetworks(NoiseModel(3, 2, (8, 8)), Critic(3, 2, (8, 8)),
                               diffusion.make_schedule(4))
    ap = nets.actor.init(jax.random.PRNGKey(0))
    cp = nets.critic.init(jax.random.PRNGKey(1))
    obs = jax.random.normal(jax.random.PRNGKey(2), (6, 3))
    key = jax.random.PRNGKey(3)
    action, q = acting.best_of_k(nets, ap, cp, obs, key, 5)
    cands = nets.sample(ap, obs, key, 5)             # same key: the same candidates
    q_all = nets.critic.min_q(cp, obs[:, None, :].repeat(5, 1), cands)
    idx = np.argmax(np.asarray(q_all), axis=1)
    np.testing.assert_allclose(action, np.asarray(cands)[np.arange(6), idx], atol=1e-6)
    np.testing.assert_allclose(q, np.asarray(q_all).max(1), atol=1e-5)


# ----------------------------------------------------------------------------- Q weights
def test_q_transforms_by_hand():
    q_all = jnp.array([[1.0, 2.0, 6.0], [0.0, 0.0, 0.0]])
    q_chosen = jnp.array([[6.0], [0.0]])
    p = QTransformParams(q_neg=-1.0, beta=2.0, cut=0.5, stats_rate=0.5)
    w, _ = get_q_transform("qadv")(q_chosen, q_all, QStats.create(), p)
    np.testing.assert_allclose(w, [[3.0], [0.0]])          # 6 - mean(1,2,6) = 3; max(0 - 0, 0)
    w, _ = get_q_transform("qrelu")(q_chosen, q_all, QStats.create(), p)
    np.testing.assert_allclose(w, [[5.0], [0.0]])
    w, _ = get_q_transform("qcut")(q_chosen, q_all, QStats.create(), p)
    np.testing.assert_allclose(w, [[6.0], [0.5]])
    w, stats = get_q_transform("qexpn")(q_chosen, q_all, QStats.create(), p)
    mean = 0.5 * float(np.mean(q_all))
    std = 1 + 0.5 * (float(np.std(q_all)) - 1)
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(w, np.exp(2 * np.clip((np.array([[6.0], [0.0]]) - mean) / std,
                                                      -8, 8)), rtol=1e-5)
    with pytest.raises(ValueError, match="qadv"):
        get_q_transform("qmax")


def test_entropy_schedule():
    total = 1000
    f = lambda s: float(entropy_coef_schedule(0.02, jnp.array(s), total))  # noqa: E731
    assert f(0) == pytest.approx(0.02)
    assert f(500) == pytest.approx(0.01)
    assert f(950) == pytest.approx(0.002)         # floor
    assert float(entropy_coef_schedule(0.001, jnp.array(0), total)) == pytest.approx(0.001)
    assert float(entropy_coef_schedule(0.0, jnp.array(0), total)) == 0.0


def test_td_target_truncation_bootstraps_termination_does_not():
    r, q = jnp.array([1.0, 1.0, 1.0]), jnp.array([10.0, 10.0, 10.0])
    terminated = jnp.array([0.0, 1.0, 0.0])  # row 2 is a time-limit truncation: terminated = 0
    np.testing.assert_allclose(td_target(r, terminated, q, 0.9), [10.0, 1.0, 10.0])


def _tiny_nets(obs=3, act=2):
    return acting.QVPONetworks(NoiseModel(obs, act, (8, 8), 4, 8, "float32"),
                               Critic(obs, act, (8, 8), "float32"),
                               diffusion.make_schedule(4))


def test_actor_loss_rows_and_weights_match_a_plain_loop():
    """The policy loss equals, row by row, mean over [chosen, N_e uniform] of w * VLO."""
    B, K, Ne = 3, 5, 2
    nets = _tiny_nets()
    cfg = LossConfig(num_train_samples=K, num_entropy_samples=Ne)
    _, actor_loss = make_losses(nets, cfg)
    ap = nets.actor.init(jax.random.PRNGKey(0))
    cp = nets.critic.init(jax.random.PRNGKey(1))
    obs = jax.random.normal(jax.random.PRNGKey(2), (B, 3))
    batch = Transition(obs, jnp.zeros((B, 2)), jnp.zeros(B), obs, jnp.zeros(B))
    key, omega = jax.random.PRNGKey(4), 0.05
    with jax.default_matmul_precision("highest"):
        loss, (m, _) = actor_loss(ap, cp, batch, jnp.float32(omega), QStats.create(), key)

        # Plain recomputation with the same random draws.
        k_sample, k_uniform, k_vlo = jax.random.split(key, 3)
        cands = np.asarray(nets.sample(ap, obs, k_sample, K))
        total, rows = 0.0, 0
        uniform = np.asarray(jax.random.uniform(k_uniform, (B, Ne, 2), minval=-1, maxval=1))
        k_t, k_eps = jax.random.split(k_vlo)
        ts = np.asarray(jax.random.randint(k_t, (B, 1 + Ne), 0, 4))
        eps = np.asarray(jax.random.normal(k_eps, (B, 1 + Ne, 2)))
        ab = nets.schedule.alphas_cumprod
        for b in range(B):
            q = [float(nets.critic.min_q(cp, obs[b], jnp.asarray(c))) for c in cands[b]]
            best = int(np.argmax(q))
            w = max(q[best] - np.mean(q), 0.0)
            for j, (a, wj) in enumerate([(cands[b, best], w)] + [(u, omega * w) for u in uniform[b]]):
                a_t = np.sqrt(ab[ts[b, j]]) * a + np.sqrt(1 - ab[ts[b, j]]) * eps[b, j]
                pred = nets.actor.apply(ap, jnp.asarray(a_t)[None], jnp.asarray([ts[b, j]]),
                                        obs[b][None], 4)[0]
                total += wj * float(np.mean((eps[b, j] - np.asarray(pred)) ** 2))
                rows += 1
    assert rows == B * (1 + Ne)
    assert float(loss) == pytest.approx(total / rows, rel=1e-4)
    assert float(m["weight_mean"]) > 0


def test_critic_loss_uses_target_networks_and_both_heads():
    nets = _tiny_nets()
    critic_loss, _ = make_losses(nets, LossConfig(gamma=0.5, num_target_samples=3))
    ap = nets.actor.init(jax.random.PRNGKey(0))
    cp = nets.critic.init(jax.random.PRNGKey(1))
    tcp = nets.critic.init(jax.random.PRNGKey(2))
    obs = jax.random.normal(jax.random.PRNGKey(3), (4, 3))
    batch = Transition(obs, jnp.zeros((4, 2)) + 0.1, jnp.arange(4.0), obs[::-1],
                       jnp.array([0.0, 1.0, 0.0, 1.0]))
    key = jax.random.PRNGKey(5)
    loss, m = critic_loss(cp, ap, tcp, batch, key)
    _, next_q = acting.best_of_k(nets, ap, tcp, batch.next_obs, key, 3)
    y = np.arange(4.0) + 0.5 * np.array([1, 0, 1, 0]) * np.asarray(next_q)
    q = np.asarray(nets.critic.apply(cp, obs, batch.action))
    assert float(loss) == pytest.approx(((q[0] - y) ** 2).mean() + ((q[1] - y) ** 2).mean(),
                                        rel=1e-5)
    assert float(m["q_target"]) == pytest.approx(y.mean(), rel=1e-5)


def test_polyak():
    t = {"w": jnp.ones(3)}
    o = {"w": jnp.zeros(3)}
    np.testing.assert_allclose(polyak(t, o, 0.005)["w"], 0.995)


# --------------------------------------------------------------------------- replay buffer
def test_replay_ring_buffer_wraps_and_samples_stored_rows():
    buf = replay.init(11, 2, 2, 1)                         # 11 // 2 = 5 step slots of 2 envs
    assert buf.capacity_steps == 5 and buf.num_envs == 2
    def step(i):
        x = jnp.array([10 * i, 10 * i + 1], jnp.float32)   # env e of step i has reward 10 i + e
        return Transition(jnp.stack([x, x], -1), x[:, None], x, jnp.stack([x, x], -1), x * 0)
    for i in range(3):
        buf = replay.insert(buf, step(i))
    assert int(buf.size) == 3 and int(buf.position) == 3 and int(buf.num_transitions()) == 6
    s = replay.sample(buf, jax.random.PRNGKey(0), 400)     # only filled slots are sampled
    assert set(np.asarray(s.reward).tolist()) == {0.0, 1.0, 10.0, 11.0, 20.0, 21.0}
    for i in range(3, 7):                                  # 7 steps into 5 slots: wraps
        buf = replay.insert(buf, step(i))
    assert int(buf.size) == 5 and int(buf.position) == 2
    np.testing.assert_array_equal(buf.data.reward[:, 0], [50, 60, 20, 30, 40])
    s = replay.sample(buf, jax.random.PRNGKey(1), 400)
    assert set(np.asarray(s.reward).tolist()) == {10.0 * i + e for i in range(2, 7) for e in (0, 1)}
    np.testing.assert_array_equal(s.obs[:, 0], s.reward)   # rows stay aligned across fields


def _episodes_into_buffer(steps: int, slots: int, num_envs: int, seed: int = 0):
    """A buffer filled by ``steps`` training steps of ``num_envs`` fake environments whose episodes
    end at random (by termination or by a time limit, i.e. a reset to a fresh observation), and
    the same history as host lists per environment, for a reference computed by walking it."""
    rng = np.random.default_rng(seed)
    buf = replay.init(slots * num_envs, num_envs, 3, 1)
    obs = rng.normal(size=(num_envs, 3)).astype(np.float32)
    history = []
    for _ in range(steps):
        reward = rng.normal(size=num_envs).astype(np.float32)
        nxt = (obs + rng.normal(size=obs.shape)).astype(np.float32)
        end = rng.random(num_envs)
        term = (end < 0.1).astype(np.float32)
        reset = end < 0.35  # terminated, or truncated by the time limit: both reset
        t = Transition(jnp.asarray(obs), jnp.asarray(rng.normal(size=(num_envs, 1)), jnp.float32),
                       jnp.asarray(reward), jnp.asarray(nxt), jnp.asarray(term))
        buf = replay.insert(buf, t)
        history.append(jax.tree.map(np.asarray, t))
        obs = np.where(reset[:, None], rng.normal(size=obs.shape), nxt).astype(np.float32)
    return buf, history[-slots:]  # the steps the buffer still holds, oldest first


def test_n_step_sample_is_the_n_step_return_of_a_reference_walk():
    """replay.sample_n_step against a plain walk over the stored history: rewards summed with
    gamma^j until the episode ends (termination or reset) or the stored steps run out, the
    bootstrap from the last step's next observation with gamma^m, a wrapped ring included."""
    n, gamma, num_envs, slots = 4, 0.9, 3, 7
    buf, hist = _episodes_into_buffer(steps=12, slots=slots, num_envs=num_envs, seed=2)  # wraps
    batch = replay.sample_n_step(buf, jax.random.PRNGKey(3), 300, n, gamma)
    truncations = sum(not h.terminated[e] and not np.array_equal(h.next_obs[e], g.obs[e])
                      for h, g in zip(hist, hist[1:]) for e in range(num_envs))
    assert truncations >= 3 and sum(h.terminated.sum() for h in hist) >= 1
    starts = {(float(h.obs[e, 0]), float(h.action[e, 0])): (i, e)
              for i, h in enumerate(hist) for e in range(num_envs)}
    seen_short = seen_full = 0
    for row in range(300):
        i, e = starts[(float(batch.obs[row, 0]), float(batch.action[row, 0]))]
        ret, j = 0.0, 0
        while True:
            h = hist[i + j]
            ret += gamma ** j * float(h.reward[e])
            if (j == n - 1 or i + j + 1 == len(hist) or h.terminated[e]
                    or not np.array_equal(h.next_obs[e], hist[i + j + 1].obs[e])):
                break
            j += 1
        seen_full += j == n - 1
        seen_short += j < n - 1
        np.testing.assert_allclose(float(batch.reward[row]), ret, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(batch.next_obs[row], hist[i + j].next_obs[e])
        # y = R + gamma (1 - terminated') Q' must be R + gamma^(j+1) (1 - terminated_last) Q'.
        np.testing.assert_allclose(gamma * (1 - float(batch.terminated[row])),
                                   gamma ** (j + 1) * (1 - float(hist[i + j].terminated[e])),
                                   rtol=1e-5)
    assert seen_full > 20 and seen_short > 20  # both kinds of windows were checked


def test_n_step_window_stops_at_the_newest_stored_step():
    """Where consecutive observations match across the ring's seam (a constant state), only the
    stored order ends the window: a row m steps from the newest sums m rewards, full or not."""
    gamma = 0.5
    for steps in (3, 8):  # 3 of 5 slots filled; 8 steps into 5 slots (wrapped)
        buf = replay.init(5, 1, 2, 1)
        for i in range(steps):
            ones = jnp.ones((1,), jnp.float32)
            buf = replay.insert(buf, Transition(jnp.ones((1, 2)), ones[:, None] * i, ones,
                                                jnp.ones((1, 2)), ones * 0))
        b = replay.sample_n_step(buf, jax.random.PRNGKey(0), 64, 4, gamma)
        m = np.minimum(4, steps - np.asarray(b.action[:, 0]))  # steps from the start to the end
        np.testing.assert_allclose(b.reward, (1 - gamma ** m) / (1 - gamma))
        np.testing.assert_allclose(1 - b.terminated, gamma ** (m - 1))
        assert len(set(m.tolist())) >= 3


def test_n_step_sample_with_n_1_is_the_one_step_sample():
    buf, _ = _episodes_into_buffer(steps=9, slots=5, num_envs=2)
    key = jax.random.PRNGKey(7)
    one, n1 = replay.sample(buf, key, 64), replay.sample_n_step(buf, key, 64, 1, 0.99)
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(n1)):
        np.testing.assert_array_equal(a, b)
