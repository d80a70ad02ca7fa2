"""The run configuration: shared defaults, the schema every field is checked against, and loading.

Defaults are the paper's hyperparameters (QVPO.md section 6) except for the parallel-collection
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


class ConfigError(ValueError):
    """A config field has a wrong type, value or relation to other fields."""


def base_config() -> ml_collections.ConfigDict:
    """Shared defaults of every task config; every public field is declared (and documented) here."""
    c = ml_collections.ConfigDict()
    c.task = "humanoid"                # environment name, one of envs.TASKS
    c.seed = 0                         # PRNG seed of the run
    c.workdir = ""                     # run directory; "" means runs/<task>-seed<seed>
    # Collection (QVPO.md section 7): N environments step together; each training step collects N
    # transitions and performs U gradient updates, so the update-to-data ratio is U / N.
    c.num_envs = 1024
    c.updates_per_step = 128
    c.total_env_steps = 1_000_000
    c.episode_length = 1000            # time limit; hitting it truncates (and bootstraps)
    c.warmup_env_steps = 10_000        # uniform random actions and no updates before this
    c.buffer_size = 1_000_000          # replay capacity in transitions
    # Learner (sections 1-6).
    c.batch_size = 256                 # B
    c.gamma = 0.99
    c.tau = 0.005                      # Polyak rate of both target networks, every update
    c.reward_scale = 1.0               # multiplies r in the TD target (paper: 1)
    c.actor_lr = 1e-4
    c.critic_lr = 3e-4
    c.adam_eps = 1e-5
    c.grad_clip = 2.0                  # global-norm clip of actor and critic gradients
    c.diffusion_steps = 20             # T
    c.beta_schedule = "cosine"         # one of BETA_SCHEDULES
    c.num_train_samples = 64           # K: candidates per state in the policy update
    c.num_chosen = 1                   # best candidates kept per state (top-n)
    c.num_behavior_samples = 4         # K_b: candidates per state when collecting
    c.num_target_samples = 4           # K_t: target-actor candidates for the TD target
    c.num_eval_samples = 32            # K_eval: candidates per state at evaluation
    c.num_entropy_samples = 10         # N_e: uniform actions per state (entropy term)
    c.entropy_coef = 0.02              # omega, annealed (section 4); 0 switches the term off
    c.q_transform = "qadv"             # one of Q_TRANSFORMS
    c.q_transform_params = ml_collections.ConfigDict(dict(
        q_neg=0.0, beta=1.0, cut=0.0, stats_rate=1e-3))
    c.network = ml_collections.ConfigDict(dict(
        actor_hidden=(256, 256, 256),  # noise-model trunk
        critic_hidden=(256, 256, 256), # each Q head
        time_dim=32,                   # sinusoidal time embedding width
        time_hidden=256,               # hidden width of the time MLP
    ))
    c.normalize_observations = False   # running mean/std normalization of observations
    c.matmul_precision = "float32"     # float32 (default), tensorfloat32 or bfloat16 (opt-in)
    c.scan_unroll = 4                  # unroll of the denoising scan (speed knob, same result;
                                       # 4 measured ~7% faster than 1 on the CPU at humanoid size)
    c.sampler = "reference"            # diffusion sampler, one of SAMPLERS: "reference" (lax.scan, the
                                       # default) or "pallas" (one fused kernel, same actions)
    c.activation_dtype = "float32"     # "bfloat16" keeps the pallas sampler's activations bfloat16
                                       # (needs sampler "pallas" and matmul_precision bfloat16)
    c.num_devices = 0                  # devices per process, data-parallel; 0: all local devices
    # Evaluation, logging, checkpoints.
    c.eval_every_env_steps = 100_000   # 0: only at the end
    c.num_eval_envs = 16
    c.log_every_env_steps = 20_000     # one compiled chunk spans this many env steps (rounded)
    c.checkpoint_every_env_steps = 100_000  # 0: only at the end
    c.keep_checkpoints = 3
    c.checkpoint_buffer = True         # save the replay buffer too (exact resume; large)
    c.render_every_eval = False        # also render a short video (mjx_qvpo.render) at each
                                       # evaluation into <workdir>/videos/ (needs OpenGL)
    # The continuous bandit of section 8 (task "bandit" only).
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


# ----------------------------------------------------------------------------------- schema
@dataclasses.dataclass(frozen=True)
class Field:
    """Type and allowed values of one config field."""
    kind: type | tuple[type, ...]
    check: Callable[[Any], bool] | None = None
    allowed: str = ""


def _int(lo: int = 0) -> Field:
    return Field(int, lambda v: v >= lo, f"an integer >= {lo}")


def _float(lo: float, hi: float = math.inf, lo_open: bool = False) -> Field:
    def ok(v):
        return (v > lo if lo_open else v >= lo) and v <= hi and math.isfinite(v)
    bound = f"> {lo}" if lo_open else f">= {lo}"
    return Field((int, float), ok, f"a number {bound}" + (f" and <= {hi}" if hi < math.inf else ""))


def _choice(options: Sequence[str]) -> Field:
    return Field(str, lambda v: v in options, f"one of {sorted(options)}")


def _widths() -> Field:
    return Field((tuple, list), lambda v: len(v) >= 1 and all(
        isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v),
        "a non-empty tuple of positive integers")


def _tasks() -> Sequence[str]:
    import envs  # local import: envs is cheap to import, but keep config importable on its own
    return envs.TASKS


SCHEMA: dict[str, Field] = {
    "task": Field(str, None, "a known task"),
    "seed": _int(0),
    "workdir": Field(str, None, "a path (string)"),
    "num_envs": _int(1),
    "updates_per_step": _int(1),
    "total_env_steps": _int(1),
    "episode_length": _int(1),
    "warmup_env_steps": _int(0),
    "buffer_size": _int(1),
    "batch_size": _int(1),
    "gamma": _float(0.0, 1.0),
    "tau": _float(0.0, 1.0, lo_open=True),
    "reward_scale": _float(0.0, lo_open=True),
    "actor_lr": _float(0.0, lo_open=True),
    "critic_lr": _float(0.0, lo_open=True),
    "adam_eps": _float(0.0, lo_open=True),
    "grad_clip": _float(0.0, lo_open=True),
    "diffusion_steps": _int(1),
    "beta_schedule": _choice(BETA_SCHEDULES),
    "num_train_samples": _int(1),
    "num_chosen": _int(1),
    "num_behavior_samples": _int(1),
    "num_target_samples": _int(1),
    "num_eval_samples": _int(1),
    "num_entropy_samples": _int(0),
    "entropy_coef": _float(0.0, 1.0),
    "q_transform": _choice(tuple(Q_TRANSFORMS)),
    "q_transform_params.q_neg": _float(-math.inf),
    "q_transform_params.beta": _float(0.0),
    "q_transform_params.cut": _float(-math.inf),
    "q_transform_params.stats_rate": _float(0.0, 1.0, lo_open=True),
    "network.actor_hidden": _widths(),
    "network.critic_hidden": _widths(),
    "network.time_dim": Field(int, lambda v: v >= 4 and v % 2 == 0, "an even integer >= 4"),
    "network.time_hidden": _int(1),
    "normalize_observations": Field(bool, None, "true or false"),
    "matmul_precision": _choice(MATMUL_PRECISIONS),
    "scan_unroll": _int(1),
    "sampler": _choice(SAMPLERS),
    "activation_dtype": _choice(("float32", "bfloat16")),
    "num_devices": _int(0),
    "eval_every_env_steps": _int(0),
    "num_eval_envs": _int(1),
    "log_every_env_steps": _int(1),
    "checkpoint_every_env_steps": _int(0),
    "keep_checkpoints": _int(1),
    "checkpoint_buffer": Field(bool, None, "true or false"),
    "render_every_eval": Field(bool, None, "true or false"),
    "bandit.centers": Field((tuple, list), lambda v: len(v) >= 1 and all(
        len(c) == 2 and all(-1.0 <= float(x) <= 1.0 for x in c) for c in v),
        "a non-empty tuple of (x, y) points inside [-1, 1]^2"),
    "bandit.heights": Field((tuple, list), lambda v: len(v) >= 1, "a non-empty tuple of numbers"),
    "bandit.widths": Field((tuple, list), lambda v: len(v) >= 1 and all(float(x) > 0 for x in v),
                           "a non-empty tuple of positive numbers"),
}


def _flatten(cfg: ml_collections.ConfigDict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in cfg.items():
        name = f"{prefix}{k}"
        if isinstance(v, ml_collections.ConfigDict):
            out.update(_flatten(v, name + "."))
        else:
            out[name] = v
    return out


def _nearest(name: str, options) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def validate(cfg: ml_collections.ConfigDict) -> None:
    """Check every field's type and range and the relations between fields (raises ConfigError)."""
    flat = _flatten(cfg)
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
    steps_per_chunk: int     # training steps scanned in one compiled call
    num_chunks: int
    env_steps_per_chunk: int
    total_env_steps: int     # total_env_steps rounded up to whole chunks
    update_to_data: float    # U / N


def derive(cfg) -> Derived:
    """Chunk length and totals (the only place where they are computed)."""
    steps_per_chunk = max(1, cfg.log_every_env_steps // cfg.num_envs)
    per_chunk = steps_per_chunk * cfg.num_envs
    num_chunks = max(1, math.ceil(cfg.total_env_steps / per_chunk))
    return Derived(steps_per_chunk, num_chunks, per_chunk, num_chunks * per_chunk,
                   cfg.updates_per_step / cfg.num_envs)


# ----------------------------------------------------------------------------------- loading
def load_config_file(path: str) -> ml_collections.ConfigDict:
    """Import a config file and call its ``get_config()``."""
    if not os.path.exists(path):
        raise ConfigError(f"config file {path!r} does not exist")
    spec = importlib.util.spec_from_file_location("_mjx_qvpo_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: dict[str, Any]
                    ) -> ml_collections.ConfigDict:
    """Return a copy of ``cfg`` with dotted-name overrides applied (unknown names are errors)."""
    cfg = ml_collections.ConfigDict(cfg.to_dict())
    flat = _flatten(cfg)
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
