"""The compiled QVPO training step (docs/algorithm.md section 7) and the pure functions around it.

``make_trainer(cfg)`` returns a ``Trainer`` holding pure functions:

* ``init(key) -> TrainingState``: networks, targets, optimizers, replay buffer, N environments.
* ``run_steps(state, num_steps) -> (state, metrics)``: ``num_steps`` training steps in one
  compiled loop. One training step = best-of-K_b action selection for all N environments (uniform
  during warm-up), one environment step, insertion into the on-device replay buffer, then U
  gradient updates in a ``lax.scan`` (critic step, Q-weighted policy step, Polyak targets).
  ``num_steps`` is a traced int32, not a shape: the loop is a ``fori_loop`` with a dynamic trip
  count and the metrics are running sums, so the host can size every call (to the step budget, to
  an evaluation or checkpoint boundary, to a time bound) with one compilation. Jitted once with
  the state donated.
* ``chunk(state) -> (state, metrics)``: ``run_steps`` with the default length
  (``log_every_env_steps`` / N training steps).
* ``evaluate(state, key) -> metrics``: best-of-K_eval on ``num_eval_envs`` environments.

These are built from named stages, each a module-level ``make_*`` function that returns a pure
function of the ``TrainingState`` (the way Brax's SAC separates its SGD step, training step and
epoch): ``make_sgd_step`` (one gradient update), ``make_learner_step`` (U of them on fresh
batches), ``make_collect_step`` (acting, physics, buffer, statistics), ``make_training_step``
(collect, then learn after warm-up), ``make_run_steps`` (the loop) and ``make_evaluate``.
``make_trainer`` composes them and adds the device plumbing (``DeviceAxis``, ``shard_map``).

Everything a run owns is one ``TrainingState`` pytree, so checkpoints save it whole.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax

from envs.quiet import import_mjx_quietly

import_mjx_quietly()  # before brax imports mujoco.mjx (drops its "Failed to import warp")
from brax.training.acme import specs  # noqa: E402
from brax.training.acme import running_statistics  # noqa: E402

import envs
from mjx_qvpo import acting, diffusion, distributed, replay
from mjx_qvpo.config import EVAL_ACTORS, derive
from mjx_qvpo.losses import LossConfig, Transition, entropy_coef_schedule, make_losses
from mjx_qvpo.networks import Critic, NoiseModel, Params
from mjx_qvpo.q_transforms import QStats, QTransformParams


@flax.struct.dataclass
class TrainingState:
    """Every array a run owns (docs/algorithm.md sections 1-7); checkpointed whole."""
    actor_params: Params
    critic_params: Params
    target_actor_params: Params
    target_critic_params: Params
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    normalizer: running_statistics.RunningStatisticsState
    q_stats: QStats
    env_state: envs.EnvState
    buffer: replay.ReplayBuffer
    key: jax.Array
    env_steps: jax.Array   # int32 environment steps collected (all N environments)
    updates: jax.Array     # int32 gradient updates done
    # Added after the first checkpoints were written; ``legacy_defaults`` fills them when an older
    # checkpoint lacks them.
    episode_window: "EpisodeWindow"  # returns and lengths of the last W finished episodes
    entropy_horizon: jax.Array  # int32 total_env_steps at the run's first start: omega anneals
                                # against it, so a resume with a longer budget stays continuous


@flax.struct.dataclass
class EpisodeWindow:
    """Returns and lengths of the last W finished episodes, as a ring (slot = count mod W).

    Kept in the training state (replicated on every device) so that ``train/episode_return`` is
    the mean over the last W episodes whenever any has finished, also for episodes that span
    chunks, and survives checkpoints.
    """
    returns: jax.Array   # (W,) float32
    lengths: jax.Array   # (W,) float32
    count: jax.Array     # int32 episodes finished so far

    @staticmethod
    def create(size: int) -> "EpisodeWindow":
        """An empty window of ``size`` episodes."""
        return EpisodeWindow(returns=jnp.zeros((size,), jnp.float32),
                             lengths=jnp.zeros((size,), jnp.float32),
                             count=jnp.zeros((), jnp.int32))

    def add(self, done: jax.Array, returns: jax.Array, lengths: jax.Array) -> "EpisodeWindow":
        """Append the episodes of the environments where ``done`` is set (in environment order);
        when more than W finish at once only the last W are kept."""
        w = self.returns.shape[0]
        done = (done > 0).astype(jnp.int32)
        rank = jnp.cumsum(done) - done  # position of each finished episode among this step's
        finished = jnp.sum(done)
        keep = (done > 0) & (rank >= finished - w)
        slot = jnp.where(keep, (self.count + rank) % w, w)  # w is out of range: dropped
        return EpisodeWindow(
            returns=self.returns.at[slot].set(returns.astype(jnp.float32), mode="drop"),
            lengths=self.lengths.at[slot].set(lengths.astype(jnp.float32), mode="drop"),
            count=self.count + finished)

    def means(self) -> tuple[jax.Array, jax.Array]:
        """(mean return, mean length) over the filled slots; NaN before any episode finished."""
        w = self.returns.shape[0]
        filled = jnp.minimum(self.count, w)
        mask = (jnp.arange(w) < filled).astype(jnp.float32)
        denom = jnp.maximum(filled, 1).astype(jnp.float32)
        nan = jnp.float32(jnp.nan)
        return (jnp.where(filled > 0, jnp.sum(self.returns * mask) / denom, nan),
                jnp.where(filled > 0, jnp.sum(self.lengths * mask) / denom, nan))


def entropy_horizon(cfg) -> int:
    """Env steps over which omega anneals (docs/algorithm.md section 4): ``entropy_anneal_env_steps``,
    or the run's ``total_env_steps`` when that is 0 (the paper's schedule)."""
    return cfg.entropy_anneal_env_steps or cfg.total_env_steps


def legacy_defaults(saved_total_env_steps: int) -> dict[str, Any]:
    """Values for state fields that checkpoints written before they existed lack (path prefix ->
    fill value): an empty episode window, and the anneal horizon the old code used, the run's
    saved ``total_env_steps``."""
    return {".episode_window": 0, ".entropy_horizon": int(saved_total_env_steps)}


def make_networks(cfg, obs_size: int, action_size: int) -> acting.QVPONetworks:
    """The diffusion actor, double-Q critic and schedule described by the config."""
    precision = cfg.matmul_precision
    net = cfg.network
    return acting.QVPONetworks(
        actor=NoiseModel(obs_size, action_size, tuple(net.actor_hidden), net.time_dim,
                         net.time_hidden, precision),
        critic=Critic(obs_size, action_size, tuple(net.critic_hidden), precision,
                      net.critic_layer_norm),
        schedule=diffusion.make_schedule(cfg.diffusion_steps, cfg.beta_schedule),
        normalize_observations=cfg.normalize_observations,
        scan_unroll=cfg.scan_unroll,
        sampler=cfg.sampler,
        bf16_activations=cfg.activation_dtype == "bfloat16",
    )


def make_env(cfg) -> envs.VecEnv:
    """The task's vectorized environment (the bandit takes its bumps from ``cfg.bandit``; MJX
    tasks their line-search cap from ``cfg.ls_iterations``)."""
    kwargs = {}
    if cfg.task == "bandit":
        kwargs = dict(centers=tuple(map(tuple, cfg.bandit.centers)),
                      heights=tuple(cfg.bandit.heights), widths=tuple(cfg.bandit.widths))
    return envs.make(cfg.task, episode_length=cfg.episode_length,
                     ls_iterations=cfg.ls_iterations, **kwargs)


def make_optimizer(lr: float, cfg) -> optax.GradientTransformation:
    """Adam with global-norm clipping (docs/algorithm.md section 6)."""
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), optax.adam(lr, eps=cfg.adam_eps))


def polyak(target: Params, online: Params, tau: float) -> Params:
    """target <- (1 - tau) target + tau online (docs/algorithm.md section 2)."""
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


@dataclasses.dataclass(frozen=True, eq=False)
class Trainer:
    """Pure functions of one configured run (see module docstring).

    ``mesh`` and ``shardings`` are None on one device; with several, ``shardings`` is the
    ``NamedSharding`` tree of a ``TrainingState`` (environments and the buffer's environment axis
    split, everything else replicated) and ``chunk`` is a ``shard_map`` over ``mesh``.
    """
    cfg: Any
    env: envs.VecEnv
    nets: acting.QVPONetworks
    init: Callable[[jax.Array], TrainingState]
    chunk: Callable[[TrainingState], tuple[TrainingState, dict]]
    run_steps: Callable[[TrainingState, jax.Array], tuple[TrainingState, dict]]
    update: Callable[[TrainingState, Transition, jax.Array], tuple[TrainingState, dict]]
    evaluate: Callable[[TrainingState, jax.Array], dict]
    policy_params: Callable[[TrainingState], tuple]
    trace_count: Callable[[], int]
    num_devices: int = 1
    mesh: Any = None
    shardings: Any = None
    # The two stages of a training step on one device, to run, test or benchmark alone
    # (``update`` above is the learner's single sgd_step).
    collect_step: Callable[[TrainingState, jax.Array], tuple[TrainingState, dict]] | None = None
    learner_step: Callable[[TrainingState, jax.Array], tuple[TrainingState, dict]] | None = None


# Fields of TrainingState split over devices, and the dimension that is split: the environments'
# axis of every environment-state leaf and of the buffer's (S, N, ...) storage.
SHARDED_FIELDS = {"env_state": 0, "buffer": 1}

# The per-training-step metrics of the collection stage (summed over a call by ``run_steps``).
STEP_METRICS = ("episodes", "reward_mean", "updated")


@dataclasses.dataclass(frozen=True)
class DeviceAxis:
    """How a stage combines values over the devices of a data-parallel run: ``name`` is the mesh
    axis inside ``shard_map``, or None on one device, where every reduction is the identity."""
    name: str | None = None

    def pmean(self, tree):
        """Mean over devices (gradients, statistics, metrics)."""
        return tree if self.name is None else jax.lax.pmean(tree, self.name)

    def psum(self, tree):
        """Sum over devices (counts)."""
        return tree if self.name is None else jax.lax.psum(tree, self.name)

    def gather(self, x: jax.Array) -> jax.Array:
        """Every device's rows, concatenated in device order (the same on every device)."""
        return x if self.name is None else jax.lax.all_gather(x, self.name, tiled=True)

    def key(self, key: jax.Array) -> jax.Array:
        """A different random stream on each device (the index is global, so it includes the
        process)."""
        return key if self.name is None else jax.random.fold_in(key, jax.lax.axis_index(self.name))


@dataclasses.dataclass(frozen=True)
class Optimizers:
    """The actor's and the critic's optimizers (docs/algorithm.md section 6)."""
    actor: optax.GradientTransformation
    critic: optax.GradientTransformation


def make_optimizers(cfg) -> Optimizers:
    """Adam with clipping for both networks, at ``actor_lr`` and ``critic_lr``."""
    return Optimizers(actor=make_optimizer(cfg.actor_lr, cfg),
                      critic=make_optimizer(cfg.critic_lr, cfg))


def make_loss_config(cfg) -> LossConfig:
    """The loss settings of a config (docs/algorithm.md sections 2-4)."""
    return LossConfig(
        gamma=cfg.gamma, reward_scale=cfg.reward_scale, num_train_samples=cfg.num_train_samples,
        num_target_samples=cfg.num_target_samples, num_chosen=cfg.num_chosen,
        num_entropy_samples=cfg.num_entropy_samples, q_transform=cfg.q_transform,
        q_transform_params=QTransformParams(**cfg.q_transform_params))


# ------------------------------------------------------------------------------ the stages
# A training step is two stages, as in Brax's SAC (its sgd_step, training_step and epoch):
#   collect_step:  N transitions into the buffer (acting, physics, statistics);
#   learner_step:  U gradient updates, each an sgd_step on a fresh batch;
# and run_steps loops training steps. Each stage is a pure function of the TrainingState that
# can be jitted, tested and benchmarked alone; the diffusion sampler inside them is chosen by
# config (acting.QVPONetworks.sample -> diffusion.sample: "reference" or "pallas").

def make_sgd_step(cfg, nets: acting.QVPONetworks, optimizers: Optimizers,
                  axis: DeviceAxis = DeviceAxis(), update_actor: bool = True
                  ) -> Callable[[TrainingState, Transition, jax.Array], tuple[TrainingState, dict]]:
    """One gradient update ``sgd_step(state, batch, key) -> (state, metrics)``: the critic step,
    then the Q-weighted policy step with the updated critic, then Polyak averaging of both targets
    (docs/algorithm.md sections 2-4). On several devices each gradient is the mean of the
    devices' gradients on their B / D rows (``axis``). With ``update_actor=False`` it is the
    critic step and the critic target's Polyak step alone (the updates between two policy steps
    when ``actor_update_every`` > 1); it draws the same keys, so the critic step is the same."""
    critic_loss, actor_loss = make_losses(nets, make_loss_config(cfg))

    def sgd_step(state: TrainingState, batch: Transition, key: jax.Array):
        k_critic, k_actor = jax.random.split(key)
        batch = batch.replace(obs=nets.normalize(batch.obs, state.normalizer),
                              next_obs=nets.normalize(batch.next_obs, state.normalizer))
        (_, c_metrics), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(
            state.critic_params, state.target_actor_params, state.target_critic_params, batch,
            k_critic)
        c_grads = axis.pmean(c_grads)
        c_updates, critic_opt_state = optimizers.critic.update(c_grads, state.critic_opt_state)
        critic_params = optax.apply_updates(state.critic_params, c_updates)
        if not update_actor:
            metrics = axis.pmean(c_metrics)
            metrics["critic_grad_norm"] = optax.tree.norm(c_grads)
            return state.replace(
                critic_params=critic_params, critic_opt_state=critic_opt_state,
                target_critic_params=polyak(state.target_critic_params, critic_params, cfg.tau),
                updates=state.updates + 1), metrics

        omega = entropy_coef_schedule(cfg.entropy_coef, state.env_steps, state.entropy_horizon)
        (_, (a_metrics, q_stats)), a_grads = jax.value_and_grad(actor_loss, has_aux=True)(
            state.actor_params, critic_params, batch, omega, state.q_stats, k_actor)
        a_grads = axis.pmean(a_grads)
        a_updates, actor_opt_state = optimizers.actor.update(a_grads, state.actor_opt_state)
        actor_params = optax.apply_updates(state.actor_params, a_updates)

        metrics = axis.pmean({**c_metrics, **a_metrics})
        metrics["critic_grad_norm"] = optax.tree.norm(c_grads)
        metrics["actor_grad_norm"] = optax.tree.norm(a_grads)
        state = state.replace(
            actor_params=actor_params, critic_params=critic_params,
            target_actor_params=polyak(state.target_actor_params, actor_params, cfg.tau),
            target_critic_params=polyak(state.target_critic_params, critic_params, cfg.tau),
            actor_opt_state=actor_opt_state, critic_opt_state=critic_opt_state,
            q_stats=axis.pmean(q_stats), updates=state.updates + 1)
        return state, metrics
    return sgd_step


def make_learner_step(cfg, sgd_step, batch_rows: int, critic_step=None
                      ) -> Callable[[TrainingState, jax.Array], tuple[TrainingState, dict]]:
    """The learner stage ``learner_step(state, key) -> (state, metrics)``: U = ``updates_per_step``
    sgd_steps in one ``lax.scan``, each on ``batch_rows`` transitions drawn uniformly from the
    buffer (docs/algorithm.md section 7), as n-step transitions when ``n_step`` > 1
    (``replay.sample_n_step``); metrics are their means.

    With ``actor_update_every`` d > 1 (a policy delay, not in the paper), the U updates are U / d
    groups of d - 1 ``critic_step`` updates (``make_sgd_step(update_actor=False)``) followed by
    one full ``sgd_step``, each on its own batch: the critic takes U steps, the policy U / d.
    Critic metrics are then means over all U updates, policy metrics over the U / d policy steps.
    The groups are a nested scan rather than a ``lax.cond`` on ``state.updates``, which vmapped
    seeds would batch into a select that runs the policy step anyway.
    """
    d = cfg.actor_update_every
    if cfg.updates_per_step % d or (d > 1 and critic_step is None):
        raise ValueError(f"actor_update_every={d} needs a critic_step and must divide "
                         f"updates_per_step={cfg.updates_per_step}")

    def one(step):
        def body(s, k):
            k_batch, k_update = jax.random.split(k)
            batch = replay.sample_n_step(s.buffer, k_batch, batch_rows, cfg.n_step, cfg.gamma)
            return step(s, batch, k_update)
        return body

    def learner_step(state: TrainingState, key: jax.Array):
        keys = jax.random.split(key, cfg.updates_per_step)
        if d == 1:
            state, metrics = jax.lax.scan(one(sgd_step), state, keys)
            return state, jax.tree.map(jnp.mean, metrics)

        def group(s, ks):
            s, c_metrics = jax.lax.scan(one(critic_step), s, ks[:-1])
            s, metrics = one(sgd_step)(s, ks[-1])
            return s, {k: (jnp.sum(c_metrics[k], axis=0) + v) / d if k in c_metrics else v
                       for k, v in metrics.items()}
        state, metrics = jax.lax.scan(group, state, keys.reshape(-1, d, *keys.shape[1:]))
        return state, jax.tree.map(jnp.mean, metrics)
    return learner_step


def behavior_noise_scales(max_std: float, num_envs: int) -> jax.Array | None:
    """Per-env std of the exploration noise added to behavior actions, shape ``(num_envs, 1)``:
    ``max_std * i / (num_envs - 1)`` for env i (one env: 0), or None when ``max_std`` is 0.

    Not in the paper (docs/algorithm.md section 5 collects with best-of-K_b alone): FastTD3's mixed
    noise scales, a spread of stds over the environments so that some explore hard while env 0
    follows the policy, instead of one scale to tune. The noise is off-policy exploration only: the
    critic's targets and the policy update still sample the diffusion policy."""
    if max_std <= 0.0:
        return None
    return max_std * jnp.linspace(0.0, 1.0, num_envs, dtype=jnp.float32)[:, None]


def make_collect_step(cfg, env: envs.VecEnv, nets: acting.QVPONetworks, num_envs: int,
                      axis: DeviceAxis = DeviceAxis()
                      ) -> Callable[[TrainingState, jax.Array], tuple[TrainingState, dict]]:
    """The collection stage ``collect_step(state, key) -> (state, metrics)``: best-of-K_b actions
    for the ``num_envs`` environments (uniform during warm-up; plus clipped Gaussian noise with
    ``behavior_noise_std`` > 0, see ``behavior_noise_scales``), one environment step, the N
    transitions into the buffer, the observation statistics and the episode window updated
    (docs/algorithm.md sections 5 and 7). Metrics: ``episodes`` finished and ``reward_mean`` (over
    all devices)."""
    act_size = env.action_size
    noise_std = behavior_noise_scales(cfg.behavior_noise_std, num_envs)

    def collect_step(state: TrainingState, key: jax.Array):
        obs = state.env_state.obs
        warm = state.env_steps < cfg.warmup_env_steps

        def policy_action(k):
            obs_n = nets.normalize(obs, state.normalizer)
            # Without noise (the paper) no extra key is drawn, so the default path is unchanged.
            k_best, k_noise = (k, None) if noise_std is None else jax.random.split(k)
            a = acting.best_of_k(nets, state.actor_params, state.critic_params, obs_n, k_best,
                                 cfg.num_behavior_samples)[0]
            if k_noise is None:
                return a
            return jnp.clip(a + noise_std * jax.random.normal(k_noise, a.shape, a.dtype),
                            -1.0, 1.0)

        def uniform_action(k):
            return jax.random.uniform(k, (num_envs, act_size), minval=-1.0, maxval=1.0)

        action = jax.lax.cond(warm, uniform_action, policy_action, key)
        env_state, step = env.step(state.env_state, action)
        transition = Transition(obs=obs, action=action, reward=step.reward,
                                next_obs=step.next_obs, terminated=step.terminated)
        normalizer = state.normalizer
        if cfg.normalize_observations:
            normalizer = running_statistics.update(normalizer, obs, pmap_axis_name=axis.name)
        # The window is replicated: every device appends all devices' episodes in the same order.
        window = state.episode_window.add(
            *(axis.gather(x) for x in (step.done, step.episode_return, step.episode_length)))
        state = state.replace(
            env_state=env_state, normalizer=normalizer, episode_window=window,
            buffer=replay.insert(state.buffer, transition),
            env_steps=state.env_steps + cfg.num_envs)
        return state, {"episodes": axis.psum(jnp.sum(step.done)).astype(jnp.float32),
                       "reward_mean": axis.pmean(jnp.mean(step.reward)).astype(jnp.float32)}
    return collect_step


def make_training_step(cfg, collect_step, learner_step, update_metric_shapes,
                       num_devices: int = 1, axis: DeviceAxis = DeviceAxis()):
    """One training step ``training_step(state) -> (state, (step_metrics, update_metrics))``:
    ``collect_step``, then ``learner_step`` once warm-up is over and the buffer holds a batch
    (docs/algorithm.md section 7). Before that the update metrics are zeros of
    ``update_metric_shapes`` and ``step_metrics["updated"]`` is 0."""
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), update_metric_shapes)

    def training_step(state: TrainingState):
        key, k_act, k_upd = jax.random.split(state.key, 3)
        state, step_metrics = collect_step(state.replace(key=key), axis.key(k_act))
        # Updates start after warm-up, and only once the buffer holds a batch (it is empty after
        # resuming from a checkpoint saved without its buffer).
        do_update = ((state.env_steps >= cfg.warmup_env_steps)
                     & (state.buffer.num_transitions() * num_devices >= cfg.batch_size))
        state, upd_metrics = jax.lax.cond(
            do_update, learner_step, lambda s, k: (s, zeros), state, axis.key(k_upd))
        return state, ({**step_metrics, "updated": do_update.astype(jnp.float32)}, upd_metrics)
    return training_step


def make_run_steps(training_step, update_metric_shapes,
                   on_trace: Callable[[], None] = lambda: None):
    """``run_steps(state, num_steps) -> (state, metrics)``: ``num_steps`` training steps in one
    ``fori_loop`` with a dynamic trip count (so every call length shares one compilation); the
    metrics are running sums reduced to one value each (``train/``), so no shape depends on the
    length. ``on_trace`` runs when the loop is traced (to count compilations)."""
    def run_steps(state: TrainingState, num_steps: jax.Array):
        on_trace()

        def body(_, carry):
            state, acc = carry
            state, (step_m, upd_m) = training_step(state)
            upd_m = jax.tree.map(lambda x: x * step_m["updated"], upd_m)
            return state, jax.tree.map(jnp.add, acc, (step_m, upd_m))

        acc0 = ({k: jnp.zeros((), jnp.float32) for k in STEP_METRICS},
                jax.tree.map(lambda s: jnp.zeros(s.shape, jnp.float32), update_metric_shapes))
        state, (steps, upd) = jax.lax.fori_loop(0, num_steps, body, (state, acc0))
        num = jnp.maximum(num_steps, 1).astype(jnp.float32)
        ret, length = state.episode_window.means()
        metrics = {
            "train/episode_return": ret,        # last W finished episodes (see EpisodeWindow)
            "train/episode_length": length,
            "train/episodes": steps["episodes"],  # finished during this call
            "train/reward_mean": steps["reward_mean"] / num,
            "train/update_fraction": steps["updated"] / num,
        }
        updated = jnp.maximum(steps["updated"], 1.0)
        metrics.update({f"train/{k}": v / updated for k, v in upd.items()})
        metrics["finite/params"] = all_finite((state.actor_params, state.critic_params))
        return state, metrics
    return run_steps


def make_evaluate(cfg, env: envs.VecEnv, nets: acting.QVPONetworks
                  ) -> Callable[[TrainingState, jax.Array], dict]:
    """``evaluate(state, key) -> metrics``: the undiscounted return of one episode on each of
    ``num_eval_envs`` fresh environments, acting with best-of-K_eval (docs/algorithm.md
    section 5) with the actor ``cfg.eval_actor`` names (``policy_params``)."""
    policy_factory = acting.make_inference_fn(nets, cfg.num_eval_samples)

    def evaluate(state: TrainingState, key: jax.Array) -> dict:
        params = policy_params(state, cfg.eval_actor)
        returns, lengths = envs.evaluate_returns(env, policy_factory(params), key,
                                                 cfg.num_eval_envs)
        return {"eval/episode_return": jnp.mean(returns),
                "eval/episode_return_std": jnp.std(returns),
                "eval/episode_return_min": jnp.min(returns),
                "eval/episode_return_max": jnp.max(returns),
                "eval/episode_length": jnp.mean(lengths.astype(jnp.float32))}
    return evaluate


def policy_params(state: TrainingState, actor: str = "online") -> tuple:
    """What the policy needs to act: (actor params, critic params, observation statistics).
    ``actor`` (config ``eval_actor``) "target" takes the target actor's parameters, the Polyak
    average of the policy (docs/algorithm.md section 2), in place of the online ones; the critic
    that ranks the best-of-K candidates (section 5) is the online one either way."""
    if actor not in EVAL_ACTORS:
        raise ValueError(f"actor must be one of {EVAL_ACTORS}, got {actor!r}")
    params = state.target_actor_params if actor == "target" else state.actor_params
    return (params, state.critic_params, state.normalizer)


def make_init(cfg, env: envs.VecEnv, nets: acting.QVPONetworks, optimizers: Optimizers
              ) -> Callable[[jax.Array], TrainingState]:
    """``init(key) -> TrainingState``: fresh networks (targets equal to them), optimizer states,
    empty statistics, an empty buffer and N reset environments."""
    obs_size, act_size = env.observation_size, env.action_size

    def init(key: jax.Array) -> TrainingState:
        k_actor, k_critic, k_env, key = jax.random.split(key, 4)
        actor_params = nets.actor.init(k_actor)
        critic_params = nets.critic.init(k_critic)
        return TrainingState(
            actor_params=actor_params, critic_params=critic_params,
            target_actor_params=actor_params, target_critic_params=critic_params,
            actor_opt_state=optimizers.actor.init(actor_params),
            critic_opt_state=optimizers.critic.init(critic_params),
            normalizer=running_statistics.init_state(specs.Array((obs_size,), jnp.float32)),
            q_stats=QStats.create(),
            env_state=env.reset(k_env, cfg.num_envs),
            buffer=replay.init(cfg.buffer_size, cfg.num_envs, obs_size, act_size),
            key=key,
            env_steps=jnp.zeros((), jnp.int32),
            updates=jnp.zeros((), jnp.int32),
            episode_window=EpisodeWindow.create(cfg.return_window),
            entropy_horizon=jnp.asarray(entropy_horizon(cfg), jnp.int32))
    return init


def make_trainer(cfg, single_device: bool = False) -> Trainer:
    """Build the pure training functions for a validated config (nothing is compiled here): the
    stages above, composed, plus the device plumbing.

    ``single_device=True`` ignores ``cfg.num_devices`` (for tools that vmap the chunk over seeds,
    or evaluate and render a run on one device whatever it was trained on).

    With more than one device (``cfg.num_devices``, over all processes) the chunk runs data-parallel
    under ``jax.shard_map``: each device steps N / D environments, stores them in its block of the
    buffer, samples B / D transitions from it, and gradients, normalizer statistics and metrics
    are averaged over the devices (docs/algorithm.md section 7, scaled out).
    """
    env = make_env(cfg)
    nets = make_networks(cfg, env.observation_size, env.action_size)
    optimizers = make_optimizers(cfg)
    derived = derive(cfg)
    d = 1
    if not single_device:
        distributed.check_divisibility(cfg)
        d = distributed.total_devices(cfg)
    axis = DeviceAxis(distributed.AXIS if d > 1 else None)
    n_local, b_local = cfg.num_envs // d, cfg.batch_size // d
    traces = [0]

    def count_trace():
        traces[0] += 1  # runs at trace time only: counts compilations of the loop

    init = make_init(cfg, env, nets, optimizers)
    # The stages on one device (what a benchmark or a test calls alone) and in the run (the same
    # functions with the device axis, when there is one).
    sgd_step = make_sgd_step(cfg, nets, optimizers)
    learner_step = make_learner_step(cfg, sgd_step, cfg.batch_size,
                                     make_sgd_step(cfg, nets, optimizers, update_actor=False))
    collect_step = make_collect_step(cfg, env, nets, cfg.num_envs)
    run_learner, run_collect = learner_step, collect_step
    if axis.name is not None:
        run_learner = make_learner_step(
            cfg, make_sgd_step(cfg, nets, optimizers, axis), b_local,
            make_sgd_step(cfg, nets, optimizers, axis, update_actor=False))
        run_collect = make_collect_step(cfg, env, nets, n_local, axis)
    # Shapes of the update metrics, so that the warm-up branch of lax.cond can return zeros of
    # the same structure without running an update (traced without devices: same shapes).
    state_shape = jax.eval_shape(init, jax.random.PRNGKey(0))
    update_metric_shapes = jax.eval_shape(learner_step, state_shape, jax.random.PRNGKey(0))[1]
    training_step = make_training_step(cfg, run_collect, run_learner, update_metric_shapes,
                                       d, axis)
    run_steps = make_run_steps(training_step, update_metric_shapes, count_trace)

    mesh, state_shardings = None, None
    if axis.name is not None:
        mesh = distributed.make_mesh(cfg)
        spec = distributed.state_specs(state_shape, SHARDED_FIELDS)
        state_shardings = distributed.shardings(mesh, spec)
        # check_vma=False: environment code (Brax, MJX, ours) mixes per-device and constant
        # values in lax.cond branches, which the varying-axes checker rejects. Replication of the
        # parameters comes from the pmean of every gradient instead, and the multi-device tests
        # compare every device's copy.
        run_steps = jax.shard_map(
            run_steps, mesh=mesh, in_specs=(spec, jax.sharding.PartitionSpec()),
            out_specs=(spec, jax.sharding.PartitionSpec()), check_vma=False)

    def chunk(state: TrainingState):
        """The default-length call: ``steps_per_chunk`` training steps."""
        return run_steps(state, jnp.asarray(derived.steps_per_chunk, jnp.int32))

    return Trainer(cfg=cfg, env=env, nets=nets, init=init, chunk=chunk, run_steps=run_steps,
                   update=sgd_step, evaluate=make_evaluate(cfg, env, nets),
                   policy_params=functools.partial(policy_params, actor=cfg.eval_actor),
                   trace_count=lambda: traces[0], num_devices=d,
                   mesh=mesh, shardings=state_shardings, collect_step=collect_step,
                   learner_step=learner_step)


def all_finite(tree) -> jax.Array:
    """True when every leaf of ``tree`` is finite (a cheap reduction inside the compiled chunk)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)
