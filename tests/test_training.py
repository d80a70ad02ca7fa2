"""The compiled training step on the pure-JAX bandit: compile-once, a probe with a known Q, and
learning (docs/algorithm.md sections 2-8)."""

import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from mjx_qvpo.config import apply_overrides, load_config_file, resolve
from mjx_qvpo.training import make_trainer


# Two-layer 16-unit networks for the tests that only need the training step's plumbing.
NETS_16X2 = {"network.actor_hidden": (16, 16), "network.critic_hidden": (16, 16),
             "network.time_hidden": 16}


def bandit_cfg(**overrides):
    base = dict(num_envs=16, updates_per_step=2, batch_size=32, warmup_env_steps=64,
                buffer_size=4096, log_every_env_steps=64, total_env_steps=4096,
                diffusion_steps=5, num_train_samples=8, num_eval_samples=8, num_eval_envs=16)
    base.update(overrides)
    return resolve(apply_overrides(load_config_file("configs/bandit.py"), base))


def test_chunk_compiles_once_and_counts_steps():
    cfg = bandit_cfg(**NETS_16X2)
    trainer = make_trainer(cfg)
    chunk = jax.jit(trainer.chunk, donate_argnums=0)
    state = jax.jit(trainer.init)(jax.random.PRNGKey(0))
    for i in range(3):
        state, metrics = chunk(state)
    assert trainer.trace_count() == 1
    assert chunk._cache_size() == 1
    # 3 chunks of 64 env steps with 16 envs = 4 training steps each.
    assert int(state.env_steps) == 3 * 64
    assert int(state.buffer.num_transitions()) == 3 * 64
    # Updates start on the training step whose collection reaches warmup_env_steps (the 4th),
    # so steps 4..12 each do 2 updates.
    assert int(state.updates) == 9 * 2
    assert float(metrics["train/update_fraction"]) == 1.0
    assert np.isfinite(float(metrics["train/critic_loss"]))


def test_probe_critic_learns_the_known_q_and_policy_improves():
    """Bandit episodes are one step and terminate, so Q(s, a) = r(a) exactly; on one broad bump the
    critic must fit it where the agent acted, and best-of-K evaluation must find the bump's top."""
    cfg = bandit_cfg(total_env_steps=16 * 400, updates_per_step=4, critic_lr=1e-3, actor_lr=3e-4,
                     log_every_env_steps=16 * 400, **{
                         "bandit.centers": ((0.3, -0.2),), "bandit.heights": (1.0,),
                         "bandit.widths": (0.5,)})
    trainer = make_trainer(cfg)
    state, _ = jax.jit(trainer.chunk)(jax.jit(trainer.init)(jax.random.PRNGKey(1)))
    centers, heights, widths = cfg.bandit.centers, cfg.bandit.heights, cfg.bandit.widths
    # Q on the actions the agent tried (the newest half of the buffer) against the true reward.
    data = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:])[-2048:], state.buffer.data)
    q = trainer.nets.critic.min_q(state.critic_params, data.obs, data.action)
    r = envs.bandit_reward(data.action, jnp.array(centers), jnp.array(heights), jnp.array(widths))
    np.testing.assert_allclose(r, data.reward, atol=1e-6)
    print("probe |Q - r|:", float(jnp.mean(jnp.abs(q - r))), "reward std:", float(jnp.std(r)))
    assert float(jnp.mean(jnp.abs(q - r))) < 0.05
    ev = jax.jit(trainer.evaluate)(state, jax.random.PRNGKey(2))
    uniform = jax.random.uniform(jax.random.PRNGKey(3), (4096, 2), minval=-1, maxval=1)
    uniform_mean = float(jnp.mean(envs.bandit_reward(uniform, jnp.array(centers),
                                                     jnp.array(heights), jnp.array(widths))))
    print("eval return:", float(ev["eval/episode_return"]), "uniform:", uniform_mean)
    assert float(ev["eval/episode_return"]) > 0.95 > 2 * uniform_mean


def _run(cfg, log=lambda line: None, **kw):
    from mjx_qvpo.train import run
    return run(cfg, log=log, **kw)


def _metrics(workdir):
    from mjx_qvpo.runs import read_metrics
    drop = ("wall_time", "sps", "updates_per_s", "compile_s", "compile_cpu_s", "eval/seconds")
    return [{k: v for k, v in r.items() if k not in drop} for r in read_metrics(workdir)]


def test_interrupted_and_resumed_run_equals_uninterrupted_run(tmp_path):
    """Checkpoints hold everything (buffer, env states, keys, counters): resuming reproduces the
    uninterrupted run's metrics exactly on the CPU, and two runs with one seed are identical."""
    small = {"network.actor_hidden": (16,), "network.critic_hidden": (16,),
             "network.time_hidden": 16, "eval_every_env_steps": 64,
             "checkpoint_every_env_steps": 64, "total_env_steps": 192,
             "max_chunk_seconds": 0.0}  # calls on the log grid, so that rows line up
    straight = bandit_cfg(workdir=str(tmp_path / "a"), **small)
    _run(straight)
    again = bandit_cfg(workdir=str(tmp_path / "b"), **small)
    _run(again)
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")
    # An existing run is refused without a flag, and --overwrite replaces it entirely.
    from mjx_qvpo.config import ConfigError
    with pytest.raises(ConfigError, match="--resume"):
        _run(again)
    (tmp_path / "b" / "stale.txt").write_text("from the old run")
    _run(again, overwrite=True)
    assert not (tmp_path / "b" / "stale.txt").exists()
    assert _metrics(tmp_path / "b") == _metrics(tmp_path / "a")

    # Interrupt with SIGINT right after the chunk that ends at env step 128 (the handler lets the
    # chunk finish, checkpoints and returns), then resume to the end.
    def interrupt_at_128(line):
        if line.startswith("step") and line.split("|")[0].split()[1] == "128":
            os.kill(os.getpid(), signal.SIGINT)
    cfg_c = bandit_cfg(workdir=str(tmp_path / "c"), **small)
    _run(cfg_c, log=interrupt_at_128)
    assert [r["env_steps"] for r in _metrics(tmp_path / "c")] == [64, 128]
    _run(cfg_c, resume=True)
    assert _metrics(tmp_path / "c") == _metrics(tmp_path / "a")


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    """A reward scale of 1e30 overflows the squared TD error to inf in float32: the run must stop
    at the first chunk with updates, name the quantity and the env step, and leave the checkpoint
    of the last good chunk untouched."""
    from mjx_qvpo.checkpoint import list_checkpoints
    cfg = bandit_cfg(workdir=str(tmp_path / "nan"), reward_scale=1e30, warmup_env_steps=128,
                     checkpoint_every_env_steps=64, total_env_steps=256,
                     **{"network.actor_hidden": (16,), "network.critic_hidden": (16,),
                        "network.time_hidden": 16})
    with pytest.raises(FloatingPointError, match=r"non-finite train/\w+ .* env step 128"):
        _run(cfg)
    # Chunk 1 (env steps 1-64) is all warm-up and is checkpointed; chunk 2 ends with the first
    # update (at env step 128), which overflows: nothing after step 64 may have been saved.
    ckpts = list_checkpoints(str(tmp_path / "nan" / "checkpoints"))
    assert [s for s, _ in ckpts] == [64]
    from mjx_qvpo.runs import load_state
    _, _, state, step = load_state(str(tmp_path / "nan"))
    assert step == 64 and int(state.updates) == 0


SMALL_NETS = {"network.actor_hidden": (16,), "network.critic_hidden": (16,),
              "network.time_hidden": 16}


def _snapshot(root):
    """Every file under ``root`` with its bytes."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def read_events(workdir):
    """{(tag, step): value} of every scalar in the run's TensorBoard event files (TFRecord
    framing: length, its CRC, an Event proto, its CRC)."""
    import glob
    import struct

    from tensorboardX.proto import event_pb2
    out = {}
    for path in sorted(glob.glob(os.path.join(str(workdir), "events.out.tfevents.*"))):
        data, i = open(path, "rb").read(), 0
        while i < len(data):
            (length,) = struct.unpack("<Q", data[i:i + 8])
            event = event_pb2.Event.FromString(data[i + 12:i + 12 + length])
            i += 12 + length + 4
            for v in event.summary.value:
                out[(v.tag, event.step)] = v.simple_value
    return out


def test_episode_window_keeps_the_last_w_episodes():
    from mjx_qvpo.training import EpisodeWindow
    w = EpisodeWindow.create(3)
    assert all(np.isnan(float(x)) for x in w.means())  # nothing finished yet
    w = w.add(jnp.array([1.0, 0.0, 1.0]), jnp.array([1.0, 2.0, 3.0]), jnp.array([10, 20, 30]))
    assert int(w.count) == 2 and float(w.means()[0]) == 2.0 and float(w.means()[1]) == 20.0
    # Four finish at once in a window of three: only the last three (5, 6, 7) are kept.
    w = w.add(jnp.ones(4), jnp.array([4.0, 5.0, 6.0, 7.0]), jnp.array([1, 1, 1, 1]))
    assert int(w.count) == 6 and float(w.means()[0]) == 6.0
    w = w.add(jnp.zeros(4), jnp.full(4, 100.0), jnp.ones(4))  # nobody finished: unchanged
    assert float(w.means()[0]) == 6.0


def test_run_stops_at_the_budget_and_writes_every_metric_to_tensorboard(tmp_path):
    """total_env_steps=100 with 16 envs stops at 112 (7 training steps), never at a whole
    64-step chunk; evaluations (every 48) and checkpoints (every 32) land on their own grids. A
    resume with a longer budget keeps the entropy anneal horizon of the first start."""
    from mjx_qvpo.checkpoint import list_checkpoints
    from mjx_qvpo.runs import load_state, read_metrics
    workdir = tmp_path / "budget"
    cfg = bandit_cfg(workdir=str(workdir), total_env_steps=100, eval_every_env_steps=48,
                     checkpoint_every_env_steps=32, keep_checkpoints=10, max_chunk_seconds=0.0,
                     **SMALL_NETS)
    last = _run(cfg)
    rows = read_metrics(workdir)
    assert last["env_steps"] == 112
    assert [r["env_steps"] for r in rows] == [32, 48, 64, 96, 112]
    assert [r["env_steps"] for r in rows if "eval/episode_return" in r] == [48, 96, 112]
    assert [s for s, _ in list_checkpoints(str(workdir / "checkpoints"))] == [32, 64, 96, 112]
    events = read_events(workdir)
    for r in rows:
        for k, v in r.items():
            if k != "env_steps" and np.isfinite(v):  # NaN entries are gaps
                assert (k, r["env_steps"]) in events, k
                np.testing.assert_allclose(events[(k, r["env_steps"])], v, rtol=1e-6)
    assert np.isfinite(rows[-1]["train/episode_return"])

    longer = bandit_cfg(workdir=str(workdir), total_env_steps=160, eval_every_env_steps=48,
                        checkpoint_every_env_steps=32, keep_checkpoints=10,
                        max_chunk_seconds=0.0, **SMALL_NETS)
    assert _run(longer, resume=True)["env_steps"] == 160
    _, _, state, step = load_state(str(workdir))
    assert step == 160 and int(state.entropy_horizon) == 100


def test_resume_with_another_layout_is_refused_and_writes_nothing(tmp_path, capsys):
    """The checkpoint does not fit the new config: one line naming the changed fields, and the
    run directory stays byte-for-byte as it was (config.json and metrics.jsonl included)."""
    from mjx_qvpo.config import ConfigError
    workdir = tmp_path / "run"
    _run(bandit_cfg(workdir=str(workdir), total_env_steps=64, **SMALL_NETS))
    before = _snapshot(workdir)
    changed = bandit_cfg(workdir=str(workdir), total_env_steps=128,
                         **{**SMALL_NETS, "network.actor_hidden": (32,)})
    with pytest.raises(ConfigError) as e:
        _run(changed, resume=True)
    message = str(e.value)
    assert "\n" not in message
    assert "network.actor_hidden ((16,) -> (32,))" in message
    assert "total_env_steps (64 -> 128)" in message
    assert "unreadable" not in capsys.readouterr().err
    assert _snapshot(workdir) == before


def test_training_return_is_finite_while_episodes_span_chunks():
    """inverted_pendulum episodes last up to 10 steps here and calls are 1 step: most calls end
    no episode, yet train/episode_return is the window's mean as soon as one has finished
    (23 s on the loaded 2-core CPU, mostly the MJX compile)."""
    cfg = resolve(apply_overrides(load_config_file("configs/inverted_pendulum.py"), {
        "num_envs": 4, "episode_length": 10, "warmup_env_steps": 1000, "buffer_size": 1024,
        "batch_size": 4, "total_env_steps": 1000, **SMALL_NETS}))
    trainer = make_trainer(cfg)
    run_steps = jax.jit(trainer.run_steps, donate_argnums=0)
    state = jax.jit(trainer.init)(jax.random.PRNGKey(0))
    seen, quiet_but_finite = 0, 0
    for _ in range(25):
        state, m = run_steps(state, np.int32(1))
        seen += int(m["train/episodes"])
        if seen:
            assert np.isfinite(float(m["train/episode_return"]))
            quiet_but_finite += int(m["train/episodes"]) == 0
        else:
            assert np.isnan(float(m["train/episode_return"]))
    assert seen > 0 and quiet_but_finite > 0
    assert trainer.trace_count() == 1


def test_entropy_schedule_horizon_is_the_budget_unless_set():
    """omega anneals over total_env_steps by default (docs/algorithm.md section 4), or over
    entropy_anneal_env_steps when that is set; the horizon lives in the state."""
    init = lambda cfg: jax.jit(make_trainer(cfg).init)(jax.random.PRNGKey(0))  # noqa: E731
    assert int(init(bandit_cfg()).entropy_horizon) == 4096
    assert int(init(bandit_cfg(entropy_anneal_env_steps=1000)).entropy_horizon) == 1000


def test_training_step_is_the_collect_stage_then_the_learner_stage():
    """The named stages compose into the compiled training step: one step of ``run_steps`` equals
    ``collect_step`` then ``learner_step`` with the keys split as documented, and the learner
    stage is U ``sgd_step``s. The same learner stage through the Pallas sampler (interpret mode
    on the CPU) computes the same state."""
    cfg = bandit_cfg(**NETS_16X2)
    trainer = make_trainer(cfg)
    run = jax.jit(trainer.run_steps)
    state, _ = run(jax.jit(trainer.init)(jax.random.PRNGKey(0)), jnp.int32(5))  # past warm-up
    whole, metrics = run(state, jnp.int32(1))

    @jax.jit
    def by_stages(state):
        key, k_act, k_upd = jax.random.split(state.key, 3)
        state, step_metrics = trainer.collect_step(state.replace(key=key), k_act)
        state, upd_metrics = trainer.learner_step(state, k_upd)
        return state, step_metrics, upd_metrics

    staged, step_metrics, upd_metrics = by_stages(state)
    assert int(staged.env_steps) == int(state.env_steps) + cfg.num_envs
    assert int(staged.updates) == int(state.updates) + cfg.updates_per_step
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(staged)):
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                   rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["train/critic_loss"], upd_metrics["critic_loss"],
                               rtol=1e-5)
    np.testing.assert_allclose(metrics["train/reward_mean"], step_metrics["reward_mean"],
                               rtol=1e-5)

    fast = make_trainer(resolve(apply_overrides(cfg, {"sampler": "pallas"})))
    key = jax.random.PRNGKey(7)
    ref_state, _ = jax.jit(trainer.learner_step)(state, key)
    fast_state, _ = jax.jit(fast.learner_step)(state, key)
    for a, b in zip(jax.tree.leaves((ref_state.actor_params, ref_state.critic_params)),
                    jax.tree.leaves((fast_state.actor_params, fast_state.critic_params))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("u, d, n", [(4, 2, 1), (3, 3, 3)])
def test_policy_delay_steps_the_critic_every_update_and_the_policy_every_dth(u, d, n):
    """actor_update_every = d: the learner stage is U / d groups of (d - 1) critic-only updates and
    one full update, each on its own batch and key as in the d = 1 scan; a critic-only update
    is the full update's critic step and leaves the policy, its optimizer, its target and the
    Q statistics (qexpn keeps running ones) untouched; critic metrics are means over all U
    updates, policy metrics over the U / d policy steps. With n_step = n > 1 every batch is
    ``replay.sample_n_step``'s, drawn with the same keys (the bandit's steps are made
    non-terminal here, so that its constant state chains them into n-step rows)."""
    from mjx_qvpo import replay
    from mjx_qvpo.training import make_optimizers, make_sgd_step

    cfg = bandit_cfg(updates_per_step=u, actor_update_every=d, n_step=n, q_transform="qexpn",
                     **NETS_16X2)
    trainer = make_trainer(cfg)
    state, _ = jax.jit(trainer.run_steps)(jax.jit(trainer.init)(jax.random.PRNGKey(0)),
                                          jnp.int32(5))  # past warm-up
    key = jax.random.PRNGKey(3)
    if n > 1:
        data = state.buffer.data
        state = state.replace(buffer=state.buffer.replace(data=data.replace(
            terminated=jnp.zeros_like(data.terminated))))
        # The n-step rows are not the one-step rows here, so the comparison has teeth.
        k_batch = jax.random.split(jax.random.split(key, u)[0])[0]
        assert not np.allclose(replay.sample(state.buffer, k_batch, cfg.batch_size).reward,
                               replay.sample_n_step(state.buffer, k_batch, cfg.batch_size, n,
                                                    cfg.gamma).reward)
    delayed, metrics = jax.jit(trainer.learner_step)(state, key)

    critic_step = make_sgd_step(cfg, trainer.nets, make_optimizers(cfg), update_actor=False)
    policy_fields = ("actor_params", "actor_opt_state", "target_actor_params", "q_stats")
    critic_fields = ("critic_params", "critic_opt_state", "target_critic_params")

    def fields(s, names):
        return jax.tree.leaves([getattr(s, n) for n in names])

    @jax.jit
    def by_hand(s):
        critic_losses, actor_losses = [], []
        for i, k in enumerate(jax.random.split(key, u)):
            k_batch, k_update = jax.random.split(k)
            batch = replay.sample_n_step(s.buffer, k_batch, cfg.batch_size, n, cfg.gamma)
            full, m_full = trainer.update(s, batch, k_update)
            if (i + 1) % d:  # a critic-only update
                new, m = critic_step(s, batch, k_update)
                for a, b in zip(fields(s, policy_fields), fields(new, policy_fields)):
                    assert a is b  # passed through, not recomputed
                same_critic = [jnp.max(jnp.abs(a - b)) for a, b in zip(
                    fields(new, critic_fields), fields(full, critic_fields))]
                s = new
            else:
                s, m = full, m_full
                actor_losses.append(m["actor_loss"])
            critic_losses.append(m["critic_loss"])
        return s, jnp.mean(jnp.stack(critic_losses)), jnp.mean(jnp.stack(actor_losses)), \
            jnp.max(jnp.stack(same_critic))

    manual, critic_loss, actor_loss, critic_gap = by_hand(state)
    assert float(critic_gap) < 1e-6  # the critic-only update is the full update's critic step
    assert int(delayed.updates) == int(state.updates) + u
    for a, b in zip(jax.tree.leaves(delayed), jax.tree.leaves(manual)):
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                   rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["critic_loss"], critic_loss, rtol=1e-5)
    np.testing.assert_allclose(metrics["actor_loss"], actor_loss, rtol=1e-5)
    # Differs from d = 1 (U policy steps), so the delay is not a no-op.
    every, _ = jax.jit(make_trainer(resolve(apply_overrides(cfg, {"actor_update_every": 1})))
                       .learner_step)(state, key)
    gap = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(
        jax.tree.leaves(every.actor_params), jax.tree.leaves(delayed.actor_params)))
    assert gap > 1e-6



def test_eval_actor_target_acts_with_the_target_actor():
    # eval_actor="target" evaluates (and exports, via trainer.policy_params) the target actor:
    # the same returns as the online actor's evaluation of a state whose online actor is that
    # target, and other returns than the online actor of the same state.
    small = {"network.actor_hidden": (16,), "network.critic_hidden": (16,),
             "network.time_hidden": 16}
    online, target = (make_trainer(bandit_cfg(eval_actor=a, **small))
                      for a in ("online", "target"))
    state = jax.jit(online.init)(jax.random.PRNGKey(0))
    other = online.nets.actor.init(jax.random.PRNGKey(7))
    state = state.replace(target_actor_params=other)
    key = jax.random.PRNGKey(1)
    ret = lambda t, s: float(jax.jit(t.evaluate)(s, key)["eval/episode_return"])  # noqa: E731
    assert ret(target, state) == ret(online, state.replace(actor_params=other))
    assert ret(target, state) != ret(online, state)
    assert target.policy_params(state)[0] is other and online.policy_params(state)[0] is not other


def test_behavior_noise_scales_spread_from_zero_to_the_maximum():
    from mjx_qvpo.training import behavior_noise_scales
    assert behavior_noise_scales(0.0, 8) is None
    np.testing.assert_allclose(behavior_noise_scales(0.4, 5)[:, 0], [0.0, 0.1, 0.2, 0.3, 0.4],
                               atol=1e-7)
    np.testing.assert_array_equal(behavior_noise_scales(0.4, 1), [[0.0]])


def test_behavior_noise_is_added_to_the_best_of_kb_action_and_clipped():
    """With behavior_noise_std the stored (and executed) action is the best-of-K_b action plus
    Gaussian noise of the env's std, clipped to [-1, 1]; env 0 (std 0) acts as without noise.
    Without it the collection stage draws no extra key (the paper's path, unchanged)."""
    from mjx_qvpo import acting
    from mjx_qvpo.training import behavior_noise_scales
    noisy_cfg = bandit_cfg(behavior_noise_std=1.0, **NETS_16X2)
    plain, noisy = make_trainer(bandit_cfg(**NETS_16X2)), make_trainer(noisy_cfg)
    state, _ = jax.jit(plain.run_steps)(jax.jit(plain.init)(jax.random.PRNGKey(0)),
                                        jnp.int32(5))  # past warm-up
    key = jax.random.PRNGKey(11)
    pos = int(state.buffer.position)
    stored = lambda s: np.asarray(s.buffer.data.action[pos])
    a_plain = stored(jax.jit(plain.collect_step)(state, key)[0])
    a_noisy = stored(jax.jit(noisy.collect_step)(state, key)[0])

    k_act, k_noise = jax.random.split(key)
    obs = plain.nets.normalize(state.env_state.obs, state.normalizer)
    best = acting.best_of_k(plain.nets, state.actor_params, state.critic_params, obs,
                            k_act, noisy_cfg.num_behavior_samples)[0]
    want = np.clip(best + behavior_noise_scales(1.0, noisy_cfg.num_envs)
                   * jax.random.normal(k_noise, best.shape), -1.0, 1.0)
    np.testing.assert_allclose(a_noisy, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a_noisy[0], np.asarray(best)[0], rtol=1e-5, atol=1e-6)
    assert np.abs(a_noisy).max() <= 1.0
    assert np.abs(a_noisy[1:] - np.asarray(best)[1:]).max() > 0.1
    # The default path: best-of-K_b with the collection key itself.
    plain_best = acting.best_of_k(plain.nets, state.actor_params, state.critic_params, obs, key,
                                  noisy_cfg.num_behavior_samples)[0]
    np.testing.assert_allclose(a_plain, plain_best, rtol=1e-5, atol=1e-6)
