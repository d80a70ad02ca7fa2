"""The run configuration: shared defaults, the schema every field is checked against, and loading.

Defaults are the paper's hyperparameters (docs/algorithm.md section 6) except for the parallel-collection
fields of section 7 (``num_envs``, ``updates_per_step``), which each task config sets. Shape-defining
fields (N, U, B, K, K_b, K_t, K_eval, T, N_e, network widths) are static: changing them recompiles.
Learning rates, gamma, tau and omega are plain Python floats closed over by the compiled step.

``validate`` runs before anything is compiled and raises ``ConfigError`` naming the field and what
is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import json
import math
import os
from typing import Any, Callable, Sequence

import ml_collections

from mjx_qvpo.diffusion import BETA_SCHEDULES, SAMPLERS
from mjx_qvpo.networks import MATMUL_MODES as MATMUL_PRECISIONS
from mjx_qvpo.q_transforms import Q_TRANSFORMS


# The policies an evaluation can act with (training.policy_params).
EVAL_ACTORS = ("online", "target")


class ConfigError(ValueError):
    """A config field has a wrong type, value or relation to other fields."""


def base_config() -> ml_collections.ConfigDict:
    """Shared defaults of every task config. Each field's meaning is its ``doc`` in ``SCHEMA``
    (printed by ``python -m mjx_qvpo.train --config C --print-config``); comments here only say
    why a default is what it is."""
    c = ml_collections.ConfigDict()
    c.task = "humanoid"
    c.seed = 0
    c.workdir = ""
    # Collection (docs/algorithm.md section 7): the update-to-data ratio is U / N; the paper's
    # N = U = 1 is far too slow on an accelerator, so the task configs set both.
    c.num_envs = 1024
    c.updates_per_step = 128
    c.total_env_steps = 1_000_000
    c.episode_length = 1000
    c.ls_iterations = 0              # MJX line-search cap (envs.set_ls_iterations); 0: task's own
    c.warmup_env_steps = 10_000
    # Not in the paper (section 5 collects with best-of-K_b alone): FastTD3's mixed exploration
    # noise on top of the behavior action, env i of N with std behavior_noise_std * i / (N - 1).
    c.behavior_noise_std = 0.0
    c.buffer_size = 1_000_000
    # Learner: the paper's hyperparameters (docs/algorithm.md section 6).
    c.batch_size = 256
    # Not in the paper (section 6 updates the policy with the critic): TD3's policy delay, as
    # FastTD3 and FastSAC use it; the policy step is most of QVPO's learner cost.
    c.actor_update_every = 1
    c.gamma = 0.99
    # Not in the paper (section 2 is a one-step target): FastTD3's n-step returns.
    c.n_step = 1
    c.tau = 0.005
    c.reward_scale = 1.0
    c.actor_lr = 1e-4
    c.critic_lr = 3e-4
    c.adam_eps = 1e-5
    c.grad_clip = 2.0
    c.diffusion_steps = 20
    c.beta_schedule = "cosine"
    c.num_train_samples = 64
    c.num_chosen = 1
    c.num_behavior_samples = 4
    c.num_target_samples = 4
    c.num_eval_samples = 32
    # Not in the paper (it evaluates the online policy): the target actor, its Polyak average, can
    # be evaluated instead. On hopper it was not steadier (results/race/README.md), so: online.
    c.eval_actor = "online"
    c.num_entropy_samples = 10
    c.entropy_coef = 0.02
    c.entropy_anneal_env_steps = 0   # 0: the run's total_env_steps, as in the paper
    c.q_transform = "qadv"
    c.q_transform_params = ml_collections.ConfigDict(dict(
        q_neg=0.0, beta=1.0, cut=0.0, stats_rate=1e-3))
    c.network = ml_collections.ConfigDict(dict(
        actor_hidden=(256, 256, 256), critic_hidden=(256, 256, 256), time_dim=32,
        time_hidden=256, critic_layer_norm=False))
    c.normalize_observations = False
    c.matmul_precision = "float32"   # bf16 showed no effect on CPU learning; not yet on a GPU
    c.scan_unroll = 4                # 4 measured ~7% faster than 1 on the CPU at humanoid size
    c.sampler = "reference"          # pallas runs on a GPU since session 18, at 0.64x the step
    c.activation_dtype = "float32"
    c.num_devices = 0
    # Evaluation, logging, checkpoints.
    c.eval_every_env_steps = 100_000
    c.num_eval_envs = 16
    c.log_every_env_steps = 20_000
    c.max_chunk_seconds = 20.0
    c.return_window = 100
    c.checkpoint_every_env_steps = 100_000
    c.keep_checkpoints = 3
    c.checkpoint_buffer = True
    c.render_every_eval = False
    # The continuous bandit of docs/algorithm.md section 8 (task "bandit" only).
    c.bandit = ml_collections.ConfigDict(dict(
        centers=((-0.5, -0.5), (0.5, -0.5), (0.0, 0.6)),
        heights=(1.0, 1.0, 1.0),
        widths=(0.15, 0.15, 0.15),
    ))
    return c


def cpu_task_config(task: str) -> ml_collections.ConfigDict:
    """Shared settings of the cheap MJX tasks, tuned to learn on a CPU in minutes.

    Smaller than the paper's setting on purpose: 64 environments with 16 updates per training step
    (update-to-data ratio 16 / 64 = 1/4), 64-unit networks, K = 16 training candidates, T = 10
    denoising steps. QVPO's structure (best-of-K, Q-weighted VLO, entropy term) is unchanged.
    """
    c = base_config()
    c.task = task
    c.num_envs = 64
    c.updates_per_step = 16
    c.total_env_steps = 100_000
    c.warmup_env_steps = 2_048
    c.buffer_size = 200_000
    c.batch_size = 256
    c.diffusion_steps = 10
    c.num_train_samples = 16
    c.num_eval_samples = 16
    c.network.actor_hidden = (64, 64, 64)
    c.network.critic_hidden = (64, 64, 64)
    c.network.time_hidden = 64
    c.eval_every_env_steps = 10_000
    c.num_eval_envs = 8
    c.log_every_env_steps = 4_096
    c.checkpoint_every_env_steps = 20_000
    return c


def fast_cpu_config(task: str) -> ml_collections.ConfigDict:
    """``cpu_task_config`` with the learner made cheaper where a CPU's step time goes, as measured
    on inverted_double_pendulum (configs/inverted_double_pendulum.py has the numbers): batch 128,
    T = 5 denoising steps, K = 8 training candidates, and observation normalization. QVPO's
    structure is unchanged. Shared by the CPU configs raced against Brax SAC."""
    c = cpu_task_config(task)
    c.normalize_observations = True
    c.diffusion_steps = 5
    c.num_train_samples = 8
    c.batch_size = 128
    return c


def paper_config(task: str) -> ml_collections.ConfigDict:
    """The paper's setting exactly (docs/algorithm.md section 6): one environment, one gradient update per
    environment step (update-to-data ratio 1), the reference learner (B=256, T=20, K=64, K_b=4,
    K_t=4, K_eval=32, N_e=10, omega=0.02, 3 x 256 networks), 1M env steps after a 10,000-step
    uniform warm-up, raw observations. "As published", for replication; the per-task configs in
    ``configs/`` are the faster defaults."""
    c = base_config()
    c.task = task
    c.num_envs = 1
    c.updates_per_step = 1
    c.eval_every_env_steps = 20_000
    c.num_eval_envs = 10
    c.log_every_env_steps = 2_000
    c.checkpoint_every_env_steps = 100_000
    return c


# ----------------------------------------------------------------------------------- schema
@dataclasses.dataclass(frozen=True)
class Field:
    """Type, allowed values and one-line meaning (``doc``) of one config field. ``doc`` is the only
    description of the field: ``--print-config``, ``--help`` and the README table are generated
    from it."""
    kind: type | tuple[type, ...]
    check: Callable[[Any], bool] | None = None
    allowed: str = ""
    doc: str = ""


def _int(lo: int, doc: str) -> Field:
    return Field(int, lambda v: v >= lo, f"an integer >= {lo}", doc)


def _float(lo: float, doc: str, hi: float = math.inf, lo_open: bool = False) -> Field:
    def ok(v):
        return (v > lo if lo_open else v >= lo) and v <= hi and math.isfinite(v)
    bound = f"> {lo}" if lo_open else f">= {lo}"
    return Field((int, float), ok,
                 f"a number {bound}" + (f" and <= {hi}" if hi < math.inf else ""), doc)


def _choice(options: Sequence[str], doc: str) -> Field:
    return Field(str, lambda v: v in options, f"one of {sorted(options)}", doc)


def _bool(doc: str) -> Field:
    return Field(bool, None, "true or false", doc)


def _widths(doc: str) -> Field:
    return Field((tuple, list), lambda v: len(v) >= 1 and all(
        isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v),
        "a non-empty tuple of positive integers", doc)


def _tasks() -> Sequence[str]:
    import envs  # local import: envs is cheap to import, but keep config importable on its own
    return envs.TASKS


SCHEMA: dict[str, Field] = {
    "task": Field(str, None, "a known task", "environment name, one of envs.TASKS"),
    "seed": _int(0, "PRNG seed of the run (alias: --seed S)"),
    "workdir": Field(str, None, "a path (string)",
                     'run directory; "" means runs/<task>-seed<seed> (alias: --workdir RUN)'),
    "num_envs": _int(1, "N: environments stepped together; each training step collects N "
                        "transitions (section 7)"),
    "updates_per_step": _int(1, "U: gradient updates per training step; update-to-data ratio "
                                "U / N"),
    "total_env_steps": _int(1, "training budget in env steps; the run stops there, rounded up to "
                               "a whole training step of N"),
    "episode_length": _int(1, "time limit; hitting it truncates the episode (and bootstraps)"),
    "ls_iterations": _int(0, "cap on MJX's line-search steps per solver iteration "
                             "(opt.ls_iterations), for QVPO's and the race's SAC env alike; 0 "
                             "keeps the task's own (50 for halfcheetah, hopper, walker2d, 4 for "
                             "humanoid, ant); under vmap every step runs, so a cap cuts physics "
                             "time (envs.set_ls_iterations)"),
    "warmup_env_steps": _int(0, "uniform random actions and no updates before this many env "
                                "steps"),
    "behavior_noise_std": _float(0.0, "largest std of Gaussian noise added to the best-of-K_b "
                                      "behavior action (then clipped to [-1, 1]); env i of the N "
                                      "on a device gets std * i / (N - 1), so env 0 follows the "
                                      "policy (FastTD3's mixed noise scales); 0 = the paper",
                                  hi=1.0),
    "buffer_size": _int(1, "replay capacity in transitions (rounded down to whole steps of N)"),
    "batch_size": _int(1, "B: transitions per gradient update"),
    "actor_update_every": _int(1, "policy delay d: the policy step and its target's Polyak "
                               "step run on every d-th update, the critic's on every update; "
                               "1 = the paper; must divide updates_per_step"),
    "gamma": _float(0.0, "discount factor", hi=1.0),
    "n_step": _int(1, "n of the critic's n-step TD target (rewards of up to n stored steps of "
                      "the same episode, then the bootstrap); 1 = the paper"),
    "tau": _float(0.0, "Polyak rate of both target networks, every update (the policy's "
                  "target every actor_update_every-th)", hi=1.0,
                  lo_open=True),
    "reward_scale": _float(0.0, "multiplies r in the TD target (paper: 1)", lo_open=True),
    "actor_lr": _float(0.0, "Adam learning rate of the diffusion policy", lo_open=True),
    "critic_lr": _float(0.0, "Adam learning rate of the double-Q critic", lo_open=True),
    "adam_eps": _float(0.0, "Adam epsilon of both optimizers", lo_open=True),
    "grad_clip": _float(0.0, "global-norm clip of actor and critic gradients", lo_open=True),
    "diffusion_steps": _int(1, "T: denoising steps of the diffusion policy (static: recompiles)"),
    "beta_schedule": _choice(BETA_SCHEDULES, "noise schedule of the diffusion policy"),
    "num_train_samples": _int(1, "K: candidate actions per state in the policy update"),
    "num_chosen": _int(1, "best candidates per state kept as policy targets (top-n)"),
    "num_behavior_samples": _int(1, "K_b: candidates per state when collecting (best-of-K_b)"),
    "num_target_samples": _int(1, "K_t: target-actor candidates per next state in the TD target"),
    "num_eval_samples": _int(1, "K_eval: candidates per state at evaluation and in exported "
                                "policies"),
    "eval_actor": _choice(EVAL_ACTORS, "the policy evaluations, evaluate, render and export "
                                       "act with: online (the paper) or target (its Polyak "
                                       "average, the target actor)"),
    "num_entropy_samples": _int(0, "N_e: uniform actions per state in the entropy term"),
    "entropy_coef": _float(0.0, "omega, annealed over the run (section 4); 0 switches the "
                                "entropy term off. The anneal horizon (entropy_anneal_env_steps, or "
                                "total_env_steps at the run's first start) is kept in the "
                                "training state, so a resume with a longer budget continues the "
                                "same schedule", hi=1.0),
    "entropy_anneal_env_steps": _int(0, "env steps over which omega anneals to its floor; 0: "
                                        "total_env_steps at the run's first start"),
    "q_transform": _choice(tuple(Q_TRANSFORMS), "Q-to-weight transform of the policy loss "
                                                "(section 3)"),
    "q_transform_params.q_neg": _float(-math.inf, "qrelu: w = max(Q + q_neg, 0)"),
    "q_transform_params.beta": _float(0.0, "qexpn: w = exp(beta * standardized Q)"),
    "q_transform_params.cut": _float(-math.inf, "qcut: w = max(Q, cut)"),
    "q_transform_params.stats_rate": _float(0.0, "qexpn: update rate of the running Q "
                                                 "statistics", hi=1.0, lo_open=True),
    "network.actor_hidden": _widths("hidden widths of the noise model eps(a_t, t, s)"),
    "network.critic_hidden": _widths("hidden widths of each of the two Q heads"),
    "network.critic_layer_norm": _bool("LayerNorm before each hidden Mish of the Q heads "
                                       "(off in the paper)"),
    "network.time_dim": Field(int, lambda v: v >= 4 and v % 2 == 0, "an even integer >= 4",
                              "width of the sinusoidal time embedding"),
    "network.time_hidden": _int(1, "hidden width of the time-embedding MLP"),
    "normalize_observations": _bool("running mean/std normalization of observations"),
    "matmul_precision": _choice(MATMUL_PRECISIONS, "matmul mode: float32 (exact), "
                                                   "tensorfloat32 or bfloat16 (opt-in speed)"),
    "scan_unroll": _int(1, "unroll of the denoising scan (a speed knob; same result)"),
    "sampler": _choice(SAMPLERS, "diffusion sampler: reference (lax.scan) or pallas (one fused "
                                 "kernel for all T steps on a tile of rows; same actions)"),
    "activation_dtype": _choice(("float32", "bfloat16"), "bfloat16 keeps the pallas sampler's "
                                "activations in bfloat16 (needs sampler pallas and "
                                "matmul_precision bfloat16)"),
    "num_devices": _int(0, "devices per process, data-parallel; 0: all local devices"),
    "eval_every_env_steps": _int(0, "env steps between evaluations; 0: only at the end"),
    "num_eval_envs": _int(1, "episodes per evaluation (fresh environments in parallel)"),
    "log_every_env_steps": _int(1, "a metrics row at least this often, in env steps (whole "
                                   "training steps); also the length of Trainer.chunk"),
    "max_chunk_seconds": _float(0.0, "after a 1-step probe, host calls are sized to take at most "
                                     "about this long, so logs arrive and SIGINT/SIGTERM are "
                                     "honored within it; 0: sized by env steps only"),
    "return_window": _int(1, "train/episode_return: mean over the last this many finished "
                             "episodes, carried across chunks and checkpoints"),
    "checkpoint_every_env_steps": _int(0, "env steps between checkpoints; 0: only at the end"),
    "keep_checkpoints": _int(1, "newest checkpoints kept in <workdir>/checkpoints"),
    "checkpoint_buffer": _bool("save the replay buffer too (exact resume; large)"),
    "render_every_eval": _bool("also render a short video into <workdir>/videos/ at each "
                               "evaluation (needs OpenGL)"),
    "bandit.centers": Field((tuple, list), lambda v: len(v) >= 1 and all(
        len(c) == 2 and all(-1.0 <= float(x) <= 1.0 for x in c) for c in v),
        "a non-empty tuple of (x, y) points inside [-1, 1]^2",
        "bandit only: centers of the Gaussian reward bumps"),
    "bandit.heights": Field((tuple, list), lambda v: len(v) >= 1, "a non-empty tuple of numbers",
                            "bandit only: heights of the bumps"),
    "bandit.widths": Field((tuple, list), lambda v: len(v) >= 1 and all(float(x) > 0 for x in v),
                           "a non-empty tuple of positive numbers",
                           "bandit only: widths (standard deviations) of the bumps"),
}


def flatten(cfg, prefix: str = "") -> dict[str, Any]:
    """A nested config (``ConfigDict`` or plain dict) as one ``{"a.b": value}`` dict of leaves."""
    out = {}
    for k, v in cfg.items():
        name = f"{prefix}{k}"
        if isinstance(v, (ml_collections.ConfigDict, dict)):
            out.update(flatten(v, name + "."))
        else:
            out[name] = v
    return out


def _nearest(name: str, options) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def validate(cfg: ml_collections.ConfigDict) -> None:
    """Check every field's type and range and the relations between fields (raises ConfigError)."""
    flat = flatten(cfg)
    for name in flat:
        if name not in SCHEMA:
            raise ConfigError(f"unknown config field {name!r}{_nearest(name, SCHEMA)}")
    for name, field in SCHEMA.items():
        if name not in flat:
            raise ConfigError(f"config field {name!r} is missing (expected {field.allowed})")
        v = flat[name]
        bad_type = not isinstance(v, field.kind) or (isinstance(v, bool) and bool not in (
            field.kind if isinstance(field.kind, tuple) else (field.kind,)))
        if bad_type or (field.check is not None and not field.check(v)):
            raise ConfigError(f"config field {name!r} must be {field.allowed}, got {v!r}")
    tasks = _tasks()
    if cfg.task not in tasks:
        raise ConfigError(f"config field 'task': unknown task {cfg.task!r}"
                          f"{_nearest(cfg.task, tasks)} (known tasks: {', '.join(tasks)})")
    b = cfg.bandit
    if not len(b.centers) == len(b.heights) == len(b.widths):
        raise ConfigError("config fields 'bandit.centers', 'bandit.heights' and 'bandit.widths' "
                          "must have the same length")
    if cfg.ls_iterations and cfg.task == "bandit":
        raise ConfigError(f"config field 'ls_iterations': task 'bandit' has no physics; it must "
                          f"be 0, got {cfg.ls_iterations}")
    if cfg.render_every_eval and cfg.task == "bandit":
        raise ConfigError("config field 'render_every_eval': task 'bandit' has no physics to render")
    if cfg.activation_dtype == "bfloat16" and (cfg.sampler != "pallas"
                                               or cfg.matmul_precision != "bfloat16"):
        raise ConfigError("config field 'activation_dtype' bfloat16 needs sampler 'pallas' and "
                          f"matmul_precision 'bfloat16', got {cfg.sampler!r} and "
                          f"{cfg.matmul_precision!r}")
    if cfg.num_chosen > cfg.num_train_samples:
        raise ConfigError(f"config field 'num_chosen' must be <= num_train_samples "
                          f"({cfg.num_train_samples}), got {cfg.num_chosen}")
    if cfg.updates_per_step % cfg.actor_update_every:
        raise ConfigError(f"config field 'actor_update_every' must divide updates_per_step "
                          f"({cfg.updates_per_step}), got {cfg.actor_update_every}")
    if cfg.buffer_size < cfg.num_envs:
        raise ConfigError(f"config field 'buffer_size' must be >= num_envs ({cfg.num_envs}), "
                          f"got {cfg.buffer_size}")
    rows_at_first_update = min(cfg.buffer_size, first_update_env_steps(cfg))
    if cfg.batch_size > rows_at_first_update:
        raise ConfigError(
            f"config field 'batch_size' ({cfg.batch_size}) exceeds the {rows_at_first_update} "
            f"transitions the buffer holds when updates begin (after warmup_env_steps="
            f"{cfg.warmup_env_steps} with num_envs={cfg.num_envs}, buffer_size={cfg.buffer_size}); "
            f"lower batch_size or raise warmup_env_steps")


# ----------------------------------------------------------------------------- derived sizes
def first_update_env_steps(cfg) -> int:
    """Env steps collected when the first gradient update happens (whole training steps)."""
    return max(1, math.ceil(cfg.warmup_env_steps / cfg.num_envs)) * cfg.num_envs


@dataclasses.dataclass(frozen=True)
class Derived:
    """Sizes computed once from the config (all static)."""
    steps_per_chunk: int     # training steps of the default-length chunk (Trainer.chunk)
    num_chunks: int          # default-length chunks that cover total_steps (the last one may be cut)
    env_steps_per_chunk: int
    total_env_steps: int     # total_env_steps rounded up to a whole training step of num_envs
    update_to_data: float    # U / N
    total_steps: int = 0     # training steps of the whole run (total_env_steps / num_envs)


def derive(cfg) -> Derived:
    """Chunk length and totals (the only place where they are computed)."""
    steps_per_chunk = max(1, cfg.log_every_env_steps // cfg.num_envs)
    per_chunk = steps_per_chunk * cfg.num_envs
    total_steps = max(1, math.ceil(cfg.total_env_steps / cfg.num_envs))
    num_chunks = math.ceil(total_steps / steps_per_chunk)
    return Derived(steps_per_chunk, num_chunks, per_chunk, total_steps * cfg.num_envs,
                   cfg.updates_per_step / cfg.num_envs, total_steps)


def next_boundary(step: int, every_env_steps: int, num_envs: int) -> int | None:
    """The first training step after ``step`` at which the env-step count reaches a multiple of
    ``every_env_steps`` (None when ``every_env_steps`` is 0). Evaluation, checkpoint and log
    intervals are grids from env step 0, honored to the training step."""
    if not every_env_steps:
        return None
    k = step * num_envs // every_env_steps + 1
    return -(-k * every_env_steps // num_envs)


def config_diff(old, new) -> list[str]:
    """``field (old -> new)`` for every field whose value differs between two configs
    (``ConfigDict`` or plain dicts, as ``flatten`` takes)."""
    a, b = flatten(old), flatten(new)
    norm = lambda v: json.loads(json.dumps(v, default=list))  # noqa: E731 (tuples == lists)
    return [f"{k} ({a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r})"
            for k in sorted(set(a) | set(b)) if norm(a.get(k)) != norm(b.get(k))]


# ----------------------------------------------------------------------------------- loading
def load_module(path: str, kind: str = "config file"):
    """Import a Python file as a module; any failure (missing file, syntax error, an exception
    while importing) is a one-line ``ConfigError`` naming the file and the problem."""
    if not os.path.exists(path):
        raise ConfigError(f"{kind} {path!r} does not exist")
    if os.path.isdir(path):
        raise ConfigError(f"{kind} {path!r} is a directory; give a .py file such as "
                          f"configs/inverted_pendulum.py")
    spec = importlib.util.spec_from_file_location("_mjx_qvpo_config", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{kind} {path!r} is not a Python file (expected a .py file with "
                          f"get_config())")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise ConfigError(f"{kind} {path!r}: syntax error at line {e.lineno}: {e.msg}") from None
    except Exception as e:  # any error inside the user's file: name it, no traceback
        raise ConfigError(f"{kind} {path!r} failed to import: {_one_line(e)}") from None
    return module


def call_config_function(module, path: str, name: str = "get_config"):
    """Call ``module.<name>()``; a missing function or an exception inside it is one line."""
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ConfigError(f"config file {path!r} defines no {name}() (a config file is a .py "
                          f"file whose {name}() returns an ml_collections.ConfigDict)")
    try:
        cfg = fn()
    except Exception as e:
        raise ConfigError(f"config file {path!r}: {name}() raised {_one_line(e)}") from None
    if not isinstance(cfg, ml_collections.ConfigDict):
        raise ConfigError(f"config file {path!r}: {name}() returned a {type(cfg).__name__}, "
                          f"expected an ml_collections.ConfigDict")
    return cfg


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


def load_config_file(path: str) -> ml_collections.ConfigDict:
    """Import a config file and call its ``get_config()`` (errors: one line, ``ConfigError``)."""
    return call_config_function(load_module(path), path)


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: dict[str, Any]
                    ) -> ml_collections.ConfigDict:
    """Return a copy of ``cfg`` with dotted-name overrides applied (unknown names are errors)."""
    cfg = ml_collections.ConfigDict(cfg.to_dict())
    flat = flatten(cfg)
    for name, value in overrides.items():
        if name not in flat:
            raise ConfigError(f"unknown config field {name!r}{_nearest(name, flat)}")
        *parents, leaf = name.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        try:
            node[leaf] = value
        except (TypeError, ValueError) as e:
            if name in SCHEMA:  # ConfigDict refused the type: say what the field allows
                raise ConfigError(f"config field {name!r} must be {SCHEMA[name].allowed}, "
                                  f"got {value!r}") from None
            raise ConfigError(f"config field {name!r}: {e}") from None
    return cfg


def resolve(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Validate, fill derived defaults (the run directory) and freeze."""
    validate(cfg)
    cfg = ml_collections.ConfigDict(cfg.to_dict())
    if not cfg.workdir:
        cfg.workdir = os.path.join("runs", f"{cfg.task}-seed{cfg.seed}")
    return ml_collections.FrozenConfigDict(cfg)


def to_json(cfg) -> str:
    """The resolved config as JSON (tuples become lists)."""
    d = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    return json.dumps(d, indent=2, sort_keys=True, default=list)


def from_json(text: str) -> ml_collections.ConfigDict:
    """Inverse of ``to_json``: lists become tuples again. Fields added to ``base_config`` since the
    file was written take their defaults, so older runs stay resumable; fields that no longer
    exist are kept, and ``validate`` then names them."""
    def tup(x):
        return tuple(tup(i) for i in x) if isinstance(x, list) else x

    def merge(node: ml_collections.ConfigDict, saved: dict):
        for k, v in saved.items():
            if isinstance(v, dict) and isinstance(node.get(k), ml_collections.ConfigDict):
                merge(node[k], v)
            else:
                node[k] = tup(v)
    cfg = base_config()
    merge(cfg, json.loads(text))
    return cfg


# ------------------------------------------------------------------------- field listings
def describe_fields(cfg) -> list[dict[str, Any]]:
    """One row per schema field: ``name``, ``value`` (in ``cfg``), ``default`` (in
    ``base_config``), ``allowed`` and ``doc``, in schema order. Generated from ``SCHEMA`` alone,
    so a field added there is listed everywhere at once."""
    flat, defaults = flatten(cfg), flatten(base_config())
    return [dict(name=name, value=flat.get(name), default=defaults.get(name),
                 allowed=field.allowed, doc=field.doc) for name, field in SCHEMA.items()]


def _show(v) -> str:
    if isinstance(v, (tuple, list)):
        return "(" + ", ".join(_show(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return repr(v) if isinstance(v, str) else str(v)


def format_config(cfg, markdown: bool = False) -> str:
    """The config as text (``name = value``, then its meaning, default and allowed values) or as a
    Markdown table (the README's field table is this output for ``configs/base.py``)."""
    rows = describe_fields(cfg)
    if markdown:
        lines = ["| field | value | meaning | allowed |", "|---|---|---|---|"]
        for r in rows:
            value = _show(r["value"])
            if r["value"] != r["default"]:
                value += f" (default {_show(r['default'])})"
            doc = r["doc"].replace("<", "&lt;").replace(">", "&gt;")  # not HTML tags
            lines.append(f"| `{r['name']}` | `{value}` | {doc} | {r['allowed']} |")
        return "\n".join(lines)
    width = max(len(r["name"]) for r in rows)
    lines = []
    for r in rows:
        default = "" if r["value"] == r["default"] else f" (default {_show(r['default'])})"
        lines.append(f"{r['name']:<{width}} = {_show(r['value'])}{default}")
        lines.append(f"{'':<{width}}   # {r['doc']}; {r['allowed']}")
    return "\n".join(lines)
