"""Tests of the environment suite (envs/): registry, auto-reset wrapper, action scaling, bandit.

MJX compilation on CPU is slow, so every MJX env is built and jitted at most once per test session
(``_compiled`` cache) with 2 environments. Always run: inverted_pendulum (cheap, scales its own
actions), inverted_double_pendulum (cheap, scaled by the wrapper) and the pure-JAX bandit/fake envs;
the other MJX tasks are ``slow`` (the humanoid CLI smoke test covers one of the paper's tasks).
"""

import functools
import inspect
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.envs.base import Env, State

import envs
from envs import bandit as bandit_mod
from envs.wrappers import SELF_SCALING_BRAX_ENVS, VecEnv, evaluate_returns, scale_action

N = 2
FAST_TASKS = ("inverted_pendulum", "inverted_double_pendulum", "bandit")
# episode_length used for the shared compiled env of each task (pendulum: short, to test truncation)
EPISODE_LENGTH = {"inverted_pendulum": 3}
# brax's own sizes (obs, act) with the default constructor arguments
BRAX_SIZES = {"humanoid": (244, 17), "ant": (27, 8), "halfcheetah": (17, 6), "hopper": (11, 3),
              "walker2d": (17, 6), "inverted_pendulum": (4, 1), "inverted_double_pendulum": (8, 1),
              "reacher": (11, 2), "bandit": (1, 2)}


@functools.lru_cache(maxsize=None)
def _compiled(task):
    """(env, jitted reset(key) -> EnvState of N envs, jitted step): compiled once per session."""
    env = envs.make(task, episode_length=EPISODE_LENGTH.get(task, 1000))
    reset = jax.jit(lambda key: env.reset(key, N))
    step = jax.jit(env.step)
    return env, reset, step


def _task_param(task):
    return task if task in FAST_TASKS else pytest.param(task, marks=pytest.mark.slow)


# ------------------------------------------------------------------------------------ registry
def test_tasks_registry():
    assert envs.TASKS == ("humanoid", "ant", "halfcheetah", "hopper", "walker2d", "inverted_pendulum",
                          "inverted_double_pendulum", "reacher", "bandit")


def test_unknown_task_message_suggests_nearest_and_lists_all():
    with pytest.raises(ValueError) as info:
        envs.make("humanoyd")
    msg = str(info.value)
    assert "'humanoyd'" in msg
    assert "did you mean 'humanoid'?" in msg
    for task in envs.TASKS:
        assert task in msg
    with pytest.raises(ValueError, match="did you mean 'halfcheetah'"):
        envs.make("half_cheetah")
    with pytest.raises(ValueError, match="unknown task 'zzzz'; known tasks: humanoid, ant"):
        envs.make("zzzz")


def test_unknown_task_is_cheap_and_import_does_not_load_brax():
    """In a fresh interpreter: `import envs` and a bad task name never import brax."""
    code = ("import sys, envs\n"
            "try:\n    envs.make('hoper')\nexcept ValueError as e:\n    assert \"'hopper'\" in str(e)\n"
            "else:\n    raise SystemExit('no error')\n"
            "assert 'brax' not in sys.modules, 'brax imported'\n")
    root = __file__.rsplit("/tests/", 1)[0]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_make_validates_and_forwards_kwargs():
    with pytest.raises(ValueError, match="episode_length"):
        envs.make("bandit", episode_length=0)
    # kwargs reach the brax constructor; building does not trace or compile anything
    env = envs.make("hopper", reset_noise_scale=0.0, episode_length=7)
    assert env.env._reset_noise_scale == 0.0 and env.episode_length == 7
    assert env.env.backend == "mjx"
    assert "state_template" not in env.__dict__  # lazy
    with pytest.raises(AttributeError):
        env.episode_length = 3  # immutable
    b = envs.make("bandit", centers=((0.0, 0.0),), heights=(2.0,), widths=(0.5,))
    assert b.env.centers == ((0.0, 0.0),) and b.env.heights == (2.0,)
    assert hash(b) == hash(b) and b != envs.make("bandit")  # hashable by identity


def test_ls_iterations_sets_mjx_line_search_cap():
    """``ls_iterations`` sets MJX's ``opt.ls_iterations`` (0 keeps hopper's own 50); bad values
    and a cap on the bandit (no physics) are errors naming the field. Building compiles
    nothing."""
    with pytest.raises(ValueError, match="ls_iterations must be an integer >= 0"):
        envs.make("hopper", ls_iterations=-1)
    with pytest.raises(ValueError, match="'bandit' has no physics"):
        envs.make("bandit", ls_iterations=8)
    assert int(envs.make("hopper").env.sys.opt.ls_iterations) == 50
    assert int(envs.make("hopper", ls_iterations=8).env.sys.opt.ls_iterations) == 8


@pytest.mark.slow
def test_ls_iterations_8_keeps_hopper_the_same():
    """Capped at 8 line-search steps, 60 steps of 8 hopper envs under uniform random actions
    (with falls, resets and ground contacts) are bit for bit those of the uncapped physics: the
    CPU probe behind the option (results/bench/ls_iterations/) in small (about a minute, most
    of it compiling two rollouts)."""
    uncapped, capped = envs.make("hopper", episode_length=40), envs.make(
        "hopper", episode_length=40, ls_iterations=8)

    def rollout(env):
        def body(state, key):
            action = jax.random.uniform(key, (8, env.action_size), minval=-1.0, maxval=1.0)
            state, out = env.step(state, action)
            return state, (out.next_obs, out.reward, out.done)
        state = env.reset(jax.random.PRNGKey(0), 8)
        return jax.lax.scan(body, state, jax.random.split(jax.random.PRNGKey(1), 60))[1]
    obs, reward, done = jax.jit(lambda: rollout(uncapped))()
    obs8, reward8, done8 = jax.jit(lambda: rollout(capped))()
    assert float(done.sum()) > 0    # episodes ended (falls or the time limit) and restarted
    np.testing.assert_array_equal(obs8, obs)
    np.testing.assert_array_equal(reward8, reward)
    np.testing.assert_array_equal(done8, done)


# ------------------------------------------------------------------------ reset / step per task
@pytest.mark.parametrize("task", [_task_param(t) for t in envs.TASKS])
def test_reset_step_shapes_and_finite(task):
    env, reset, step = _compiled(task)
    obs_dim, act_dim = BRAX_SIZES[task]
    assert (env.observation_size, env.action_size) == (obs_dim, act_dim)
    if task != "bandit":  # sizes agree with brax's own env (brax's observation_size runs an eager
        assert env.action_size == env.env.action_size  # reset, so compare with its abstract reset)
        assert env.observation_size == jax.eval_shape(env.env.reset, jax.random.PRNGKey(0)).obs.shape[-1]
    state = reset(jax.random.PRNGKey(0))
    assert state.obs.shape == (N, obs_dim) and state.obs.dtype == jnp.float32
    assert state.steps.shape == (N,) and state.steps.dtype == jnp.int32
    assert state.episode_return.shape == (N,) and state.episode_return.dtype == jnp.float32
    assert state.key.shape == (N, 2) and state.key.dtype == jnp.uint32
    assert np.all(np.isfinite(state.obs))
    actions = jax.random.uniform(jax.random.PRNGKey(1), (N, act_dim), minval=-1.0, maxval=1.0)
    state2, res = step(state, actions)
    assert res.reward.shape == (N,) and res.reward.dtype == jnp.float32
    assert res.next_obs.shape == (N, obs_dim) and res.next_obs.dtype == jnp.float32
    for f in (res.terminated, res.truncated, res.done, res.episode_return):
        assert f.shape == (N,) and f.dtype == jnp.float32
    assert res.episode_length.shape == (N,) and res.episode_length.dtype == jnp.int32
    assert state2.obs.shape == (N, obs_dim)
    for x in (state2.obs, res.next_obs, res.reward):
        assert np.all(np.isfinite(x))
    # the carried state keeps exactly the structure/dtypes of the reset state (scan/cond-safe)
    assert jax.tree.structure(state2) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(state2)):
        assert a.shape == b.shape and a.dtype == b.dtype
    assert not np.any((res.terminated == 1) & (res.truncated == 1))
    np.testing.assert_array_equal(res.done, np.maximum(res.terminated, res.truncated))


# ------------------------------------------------------------------------------- auto-reset
def test_truncation_autoreset_inverted_pendulum():
    env, reset, step = _compiled("inverted_pendulum")
    assert env.episode_length == 3
    state = reset(jax.random.PRNGKey(3))
    first_obs = np.asarray(state.obs)
    rewards = []
    zero = jnp.zeros((N, 1))
    for t in range(1, 4):
        state, res = step(state, zero)  # action 0: the pole stays up for 3 steps
        rewards.append(np.asarray(res.reward))
        np.testing.assert_array_equal(res.terminated, 0.0)
        if t < 3:
            np.testing.assert_array_equal(res.done, 0.0)
            np.testing.assert_array_equal(res.episode_return, 0.0)
            np.testing.assert_array_equal(res.episode_length, 0)
            np.testing.assert_array_equal(state.steps, t)
            # no reset: bit for bit, which replay.sample_n_step relies on to chain steps
            np.testing.assert_array_equal(state.obs, res.next_obs)
    np.testing.assert_array_equal(res.truncated, 1.0)
    np.testing.assert_array_equal(res.done, 1.0)
    np.testing.assert_array_equal(state.steps, 0)
    np.testing.assert_array_equal(state.episode_return, 0.0)
    np.testing.assert_array_equal(res.episode_length, 3)
    np.testing.assert_allclose(res.episode_return, np.sum(rewards, axis=0), rtol=1e-6)
    # next_obs is the true final obs; state.obs is a FRESH reset (not brax's first-state trick),
    # which is how replay.sample_n_step sees a time limit without a stored flag
    assert np.all(np.any(np.asarray(res.next_obs) != np.asarray(state.obs), axis=-1))
    assert np.all(np.any(np.asarray(state.obs) != first_obs, axis=-1))
    assert np.all(np.abs(state.obs) <= 0.01 + 1e-6)  # within brax's reset noise
    # the fresh episode carries on normally
    state, res = step(state, zero)
    np.testing.assert_array_equal(state.steps, 1)
    np.testing.assert_array_equal(res.done, 0.0)


def test_termination_is_not_truncation_inverted_pendulum():
    env, reset, step = _compiled("inverted_pendulum")
    state = reset(jax.random.PRNGKey(4))
    ended = np.zeros(N, bool)
    for t in range(1, env.episode_length + 1):
        state, res = step(state, jnp.ones((N, 1)))  # full push: the pole falls within 2 steps
        done = np.asarray(res.done) == 1
        new = done & ~ended
        if new.any():
            np.testing.assert_array_equal(res.terminated[new], 1.0)
            np.testing.assert_array_equal(res.truncated[new], 0.0)
            assert np.all(np.abs(np.asarray(res.next_obs)[new, 1]) > 0.2)  # the fallen pole
            np.testing.assert_array_equal(res.episode_length[new], t)
            np.testing.assert_allclose(res.episode_return[new], float(t))  # reward 1 per step
            np.testing.assert_array_equal(state.steps[new], 0)
        ended |= done
    assert ended.all(), "the pendulum did not fall within its 3-step episode"


@pytest.mark.slow
def test_termination_hopper_falls():
    env, reset, step = _compiled("hopper")
    state = reset(jax.random.PRNGKey(5))
    ret = np.zeros(N)
    for t in range(1, 201):
        state, res = step(state, jnp.ones((N, 3)))
        ret += np.asarray(res.reward)
        if np.asarray(res.done).any():
            break
    idx = np.asarray(res.done) == 1
    assert idx.any(), "hopper never fell under a constant full action"
    np.testing.assert_array_equal(res.terminated[idx], 1.0)
    np.testing.assert_array_equal(res.truncated[idx], 0.0)
    np.testing.assert_array_equal(res.episode_length[idx], t)
    np.testing.assert_allclose(res.episode_return[idx], ret[idx], rtol=1e-5)
    np.testing.assert_array_equal(state.steps[idx], 0)
    assert np.all(np.isfinite(state.obs))


def test_bandit_always_terminates():
    env, reset, step = _compiled("bandit")
    state = reset(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(state.obs, 0.0)
    for _ in range(2):
        state, res = step(state, jnp.zeros((N, 2)))
        np.testing.assert_array_equal(res.terminated, 1.0)
        np.testing.assert_array_equal(res.truncated, 0.0)
        np.testing.assert_array_equal(res.episode_length, 1)
        np.testing.assert_array_equal(state.steps, 0)
    # episode_length=1 still reports a termination, never a truncation
    env1 = envs.make("bandit", episode_length=1)
    _, res = env1.step(env1.reset(jax.random.PRNGKey(0), N), jnp.zeros((N, 2)))
    np.testing.assert_array_equal(res.terminated, 1.0)
    np.testing.assert_array_equal(res.truncated, 0.0)


def test_resets_are_fresh_and_keyed():
    env, reset, step = _compiled("inverted_pendulum")
    s0 = reset(jax.random.PRNGKey(0))
    s1 = reset(jax.random.PRNGKey(1))
    assert np.any(np.asarray(s0.obs[0]) != np.asarray(s0.obs[1]))  # envs differ within a batch
    assert np.any(np.asarray(s0.obs) != np.asarray(s1.obs))        # different keys differ
    np.testing.assert_array_equal(reset(jax.random.PRNGKey(0)).obs, s0.obs)  # deterministic
    assert np.any(np.asarray(s0.key[0]) != np.asarray(s0.key[1]))
    # new-style typed keys are accepted too (checked on the bandit: an eager MJX reset is slow)
    s2 = envs.make("bandit").reset(jax.random.key(0), N)
    assert s2.key.dtype == jnp.uint32 and s2.key.shape == (N, 2)


# ---------------------------------------------------------------------------- action scaling
def test_scale_action_mapping():
    low, high = np.array([-0.4, 0.0]), np.array([0.4, 2.0])
    a = jnp.array([[1.0, 1.0], [-1.0, -1.0], [0.0, 0.0], [5.0, -5.0], [0.5, 0.5]])
    np.testing.assert_allclose(scale_action(a, low, high),
                               [[0.4, 2.0], [-0.4, 0.0], [0.0, 1.0], [0.4, 0.0], [0.2, 1.5]], atol=1e-6)


def test_humanoid_ctrlrange_mapping_without_compiling():
    env = envs.make("humanoid")
    np.testing.assert_allclose(env.ctrl_low, -0.4, rtol=1e-6)
    np.testing.assert_allclose(env.ctrl_high, 0.4, rtol=1e-6)
    np.testing.assert_allclose(env.ctrl_high, np.asarray(env.env.sys.actuator.ctrl_range)[:, 1])
    one = jnp.ones((1, 17))
    np.testing.assert_allclose(env.scale_action(one), 0.4, rtol=1e-6)
    np.testing.assert_allclose(env.scale_action(-2 * one), -0.4, rtol=1e-6)
    # brax's Humanoid.step maps [-1, 1] onto ctrl_range itself: the wrapper must only clip
    assert env.inner_scales
    inner = env._inner_action(3 * one)
    np.testing.assert_allclose(inner, 1.0)
    lo, hi = env.ctrl_low, env.ctrl_high
    np.testing.assert_allclose((inner + 1) * (hi - lo) * 0.5 + lo, 0.4, rtol=1e-6)  # brax's map
    assert "state_template" not in env.__dict__  # nothing traced


def test_self_scaling_set_matches_brax_sources():
    """The wrapper's list of brax envs that rescale actions in `step` matches the installed brax."""
    from brax import envs as brax_envs
    for name, cls in brax_envs._envs.items():
        scales = "ctrl_range" in inspect.getsource(cls.step)
        assert scales == (cls.__name__ in SELF_SCALING_BRAX_ENVS), name


def test_action_reaches_actuators_as_ctrlrange():
    """End to end: the control MJX sees equals the affine map of the clipped normalized action."""
    for task, high in (("inverted_pendulum", 3.0), ("inverted_double_pendulum", 1.0)):
        env, reset, step = _compiled(task)
        state = reset(jax.random.PRNGKey(0))
        act = np.zeros((N, env.action_size), np.float32)
        act[0], act[1] = 5.0, -0.5  # 5 is clipped to 1
        state, res = step(state, jnp.asarray(act))
        ctrl = np.asarray(state.inner.pipeline_state.ctrl)
        np.testing.assert_allclose(ctrl[0], high, rtol=1e-6)
        np.testing.assert_allclose(ctrl[1], -0.5 * high, rtol=1e-6)


# ------------------------------------------------------------------------------------ bandit
def test_bandit_reward_at_center_hand_computed():
    c, h, w = bandit_mod.DEFAULT_CENTERS, bandit_mod.DEFAULT_HEIGHTS, bandit_mod.DEFAULT_WIDTHS
    # at (-0.5,-0.5): own bump 1, (0.5,-0.5) at squared distance 1, (0,0.6) at 0.25 + 1.21 = 1.46
    expected = 1.0 + math.exp(-1.0 / (2 * 0.15 ** 2)) + math.exp(-1.46 / (2 * 0.15 ** 2))
    r = envs.bandit_reward(jnp.array([-0.5, -0.5]), c, h, w)
    assert r.shape == ()
    assert float(r) == pytest.approx(expected, rel=1e-6)
    # batched, and with non-default heights
    acts = jnp.array([[[-0.5, -0.5], [0.0, 0.6]], [[1.0, 1.0], [0.5, -0.5]]])
    r = bandit_mod.bandit_reward(acts, c, (1.0, 2.0, 3.0), w)
    assert r.shape == (2, 2)
    for idx in np.ndindex(2, 2):
        assert float(r[idx]) == pytest.approx(
            bandit_mod.reward_at(np.asarray(acts[idx], np.float64), c, (1.0, 2.0, 3.0), w), rel=1e-5, abs=1e-12)
    assert float(r[0, 1]) == pytest.approx(3.0, rel=1e-6)


@pytest.mark.parametrize("kwargs, name", [
    (dict(centers=((0.0, 0.0), (0.5, 0.5))), "heights"),
    (dict(widths=(0.1, 0.0, 0.1)), "widths"),
    (dict(centers=((0.0, 0.0), (1.5, 0.0), (0.0, 0.0))), "centers"),
    (dict(centers=((0.0, 0.0, 0.0),) * 3), "centers"),
    (dict(widths=(0.1, 0.1)), "widths"),
])
def test_bandit_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        envs.make("bandit", **kwargs)


def test_evaluate_returns_bandit_constant_policy():
    env, _, _ = _compiled("bandit")
    a = jnp.array([0.0, 0.6])
    policy = lambda obs, key: jnp.broadcast_to(a, (obs.shape[0], 2))  # noqa: E731
    ev = jax.jit(evaluate_returns, static_argnums=(0, 1, 3, 4))
    returns, lengths = ev(env, policy, jax.random.PRNGKey(0), 3, 4)
    expected = bandit_mod.reward_at((0.0, 0.6))
    np.testing.assert_allclose(returns, expected, rtol=1e-6)  # only the first episode counts
    np.testing.assert_array_equal(lengths, 1)
    assert returns.shape == (3,) and returns.dtype == jnp.float32 and lengths.dtype == jnp.int32


# ------------------------------------------------------------------------ pure-JAX fake env
class _CounterEnv(Env):
    """obs = [t, flag]; reward = python float 1.0 (weak type); terminates at t == 2 where the
    random reset flag is set; step adds an info key absent from reset; obs turns NaN on a full
    negative action."""

    def reset(self, rng):
        flag = jax.random.bernoulli(rng).astype(jnp.float32)
        return State(pipeline_state=None, obs=jnp.array([0.0, flag]), reward=jnp.zeros(()),
                     done=jnp.zeros(()), metrics={}, info={})

    def step(self, state, action):
        t = state.obs[0] + 1.0
        flag = state.obs[1]
        obs = jnp.array([t, flag])
        obs = jnp.where(action[0] < -0.99, jnp.nan, obs)  # blow up on a full negative action
        done = jnp.where((flag > 0.5) & (t >= 2), 1.0, 0.0)
        return state.replace(obs=obs, reward=1.0, done=done, info={"extra": t})

    observation_size = property(lambda self: 2)
    action_size = property(lambda self: 1)
    backend = property(lambda self: "jax")


def test_wrapper_structure_masking_and_nan_passthrough():
    env = VecEnv("counter", _CounterEnv(), episode_length=3)
    assert env.observation_size == 2
    state = env.reset(jax.random.PRNGKey(0), 8)
    assert set(state.inner.info) == {"extra"}  # reset conformed to the step structure
    flags = np.asarray(state.obs[:, 1]) > 0.5
    assert flags.any() and (~flags).any()

    # lax.scan over steps works although the inner reward is a weak-typed python float
    def body(s, _):
        s, r = env.step(s, jnp.zeros((8, 1)))
        return s, r
    _, rs = jax.jit(lambda s: jax.lax.scan(body, s, None, 4))(state)
    # flagged envs terminate at t=2, others truncate at t=3
    np.testing.assert_array_equal(rs.terminated[1], flags.astype(np.float32))
    np.testing.assert_array_equal(rs.truncated[2], (~flags).astype(np.float32))
    np.testing.assert_array_equal(rs.truncated[1], 0.0)

    # evaluate_returns: only the first episode counts
    flags = np.asarray(env.reset(jax.random.split(jax.random.PRNGKey(0))[0], 8).obs[:, 1]) > 0.5
    returns, lengths = jax.jit(evaluate_returns, static_argnums=(0, 1, 3, 4))(
        env, lambda obs, k: jnp.zeros((obs.shape[0], 1)), jax.random.PRNGKey(0), 8, 7)
    np.testing.assert_array_equal(lengths, np.where(flags, 2, 3))
    np.testing.assert_array_equal(returns, np.where(flags, 2.0, 3.0))

    # non-finite observations are passed through, not hidden
    _, res = env.step(state, -jnp.ones((8, 1)))
    assert np.all(np.isnan(res.next_obs))
