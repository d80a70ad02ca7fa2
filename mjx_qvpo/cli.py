"""Shared pieces of the command-line front ends: one argument convention and one help layout.

Conventions of every command (documented once, in the README's "Command-line conventions"):

* ``--config FILE.py`` names a config file (``configs/<task>.py``, whose ``get_config()`` returns
  the fields of ``mjx_qvpo/config.py``); ``--config.FIELD=VALUE`` overrides one field.
* ``--workdir RUN`` names a run directory (what ``train`` writes: ``config.json``,
  ``metrics.jsonl``, ``checkpoints/``). Commands that read a run also take it as a positional
  ``RUN``; ``train --workdir RUN`` is ``--config.workdir=RUN``.
* ``--out PATH`` is where a command writes its result (a file, or a folder for ``bench`` and the
  experiments); every command has a default that never touches the committed ``results/``.
* ``--seed S`` is one PRNG seed (``train --seed S`` is ``--config.seed=S``); ``--seeds N`` is a
  number of seeds run together (``experiments.ablate``, and ``experiments.bandit`` where it is
  ``--config.num_seeds=N``).
"""

from __future__ import annotations

import argparse
import ast
import textwrap
from typing import Any, Mapping, Sequence

from mjx_qvpo.config import ConfigError

CONFIGS_NOTE = ("Configs live in configs/ (one get_config() per task; configs/base.py holds the "
                "shared defaults). Every field with its meaning and default: python -m "
                "mjx_qvpo.train --config configs/base.py --print-config. Conventions (--workdir, "
                "--out, --seed) and the algorithm: README.md, docs/algorithm.md.")
# Aliases every config-driven command accepts: a flag for the config fields users set most.
CONFIG_ALIASES = {"--workdir": "workdir", "--seed": "seed"}


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors raise ``ConfigError``, which every ``main`` turns into one line
    on stderr and exit status 2, like every other bad input. ``example`` is shown in ``--help``
    followed by where configs live."""

    def __init__(self, *args, example: str = "", **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault("epilog", (f"example:\n  {example}\n\n" if example else "")
                          + textwrap.fill(CONFIGS_NOTE, 100, break_on_hyphens=False))
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise ConfigError(f"{message} (see --help)")


def wants_help(argv: Sequence[str]) -> bool:
    """Whether the command line asks for help (``-h`` or ``--help`` anywhere)."""
    return any(a in ("-h", "--help") for a in argv)


def help_text(prog: str, summary: str, usage: str, options: Sequence[tuple[str, str]],
              example: str) -> str:
    """The ``--help`` page of a hand-parsed command, laid out like argparse's: what it does, its
    flags, an example and where configs live."""
    width = max(len(flag) for flag, _ in options)
    lines = [usage, "", summary, "", "options:"]
    for flag, text in options:
        lines += textwrap.wrap(text, 100, initial_indent=f"  {flag:<{width}}  ",
                               subsequent_indent=" " * (width + 4))
    lines += ["", "example:", f"  {example}", "", textwrap.fill(CONFIGS_NOTE, 100, break_on_hyphens=False)]
    return "\n".join(lines)


# Flags shared by every command that takes --config (train, bench, the experiments).
CONFIG_OPTIONS = [
    ("--config FILE.py", "config file (required), e.g. configs/inverted_pendulum.py"),
    ("--config.FIELD=VALUE", "override one field (nested: --config.network.actor_hidden='(64,64)');"
                             " values are Python literals, strings may be bare"),
    ("-h, --help", "show this help and exit"),
]


def parse_value(text: str) -> Any:
    """A command-line value: a Python literal when it parses as one, else the raw string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        return text


def pop_override(arg: str, rest: list[str], prefix: str, usage: str = "") -> tuple[str, Any]:
    """``--PREFIX.NAME=VALUE`` (or ``--PREFIX.NAME VALUE``, taking VALUE from the front of
    ``rest``) -> (NAME, parsed VALUE); a missing VALUE is a ConfigError (that shows ``usage``
    when given)."""
    body = arg[len(prefix):]
    if "=" in body:
        name, value = body.split("=", 1)
    elif rest:
        name, value = body, rest.pop(0)
    else:
        raise ConfigError(f"{arg}: missing value" + (f"; {usage}" if usage else ""))
    return name, parse_value(value)


def split_overrides(argv: Sequence[str], prefixes: Sequence[str]
                    ) -> tuple[list[dict[str, Any]], list[str]]:
    """The ``--PREFIX.NAME=VALUE`` overrides of each prefix in ``prefixes`` (one dict per
    prefix, in order; ``pop_override`` parses each) and the arguments left for another parser."""
    found, rest = [{} for _ in prefixes], []
    args = list(argv)
    while args:
        a = args.pop(0)
        for prefix, target in zip(prefixes, found):
            if a.startswith(prefix):
                name, value = pop_override(a, args, prefix)
                target[name] = value
                break
        else:
            rest.append(a)
    return found, rest


def parse_args(argv: Sequence[str], flag_names: Sequence[str] = ("resume", "overwrite"),
               usage: str = "", aliases: Mapping[str, str] | None = None
               ) -> tuple[str, dict[str, Any], dict[str, bool]]:
    """Split argv into the config path, ``--config.x=v`` overrides and the boolean ``--flags``
    (those in ``flag_names``); ``aliases`` maps a value flag to the config field it sets (e.g.
    ``--workdir RUN`` -> ``workdir``). Anything else is a ConfigError that shows ``usage``."""
    path, overrides, flags = None, {}, {name: False for name in flag_names}
    aliases = dict(aliases or {})
    args = list(argv)
    while args:
        a = args.pop(0)
        flag, eq, inline = a.partition("=")
        if a == "--config" and args:
            path = args.pop(0)
        elif a.startswith("--config="):
            path = a.split("=", 1)[1]
        elif a.startswith("--config."):
            name, value = pop_override(a, args, "--config.")
            overrides[name] = value
        elif flag in aliases:
            if not eq and not args:
                raise ConfigError(f"{flag}: missing value")
            value = inline if eq else args.pop(0)
            # a run directory is a path even when it looks like a number
            overrides[aliases[flag]] = value if aliases[flag] == "workdir" else parse_value(value)
        elif a.startswith("--") and a[2:] in flags:
            flags[a[2:]] = True
        else:
            raise ConfigError(f"unknown argument {a!r}; {usage} (see --help)")
    if path is None:
        raise ConfigError(f"--config is required; {usage} (see --help)")
    if flags.get("resume") and flags.get("overwrite"):
        raise ConfigError("--resume and --overwrite exclude each other")
    return path, overrides, flags


# ----------------------------------------------------------------------------- train --dry-run
# Rough sustained matmul rates for the time estimate of --dry-run: the CPU figure is train.py's
# start-up guess (_CPU_FLOPS_GUESS, 5e10); the GPU figure is what one H200 sustained inside the
# fused training step at humanoid size (110 GFLOP per update in 4.65 ms, results/bench/README.md),
# rounded down.
_GPU_FLOPS_GUESS = 2e13
# Measured compile time of the training chunk (humanoid; results/bench): a CPU pays minutes.
_COMPILE_GUESS = {"cpu": "about 1-2 minutes (humanoid measured 90 s on a 2-core CPU)",
                  "gpu": "about 30 s (humanoid measured 27 s on one H200)"}


def _fmt_bytes(n: float) -> str:
    return f"{n:,.0f} bytes ({n / 1e9:.3g} GB)"


def _fmt_seconds(s: float) -> str:
    if s < 120:
        return f"{s:.3g} s"
    return f"{s / 60:.3g} min" if s < 7200 else f"{s / 3600:.3g} h"


def describe_plan(cfg) -> str:
    """What ``train`` would do with a resolved config, without compiling or writing anything:
    env steps, chunks, training steps and updates, the update-to-data ratio, replay-buffer
    memory, and rough compile and run-time estimates for the current JAX device (estimates from
    FLOP counts of the network shapes and measured compile times, not measurements)."""
    import jax

    from mjx_qvpo import distributed, replay
    from mjx_qvpo.config import derive
    from mjx_qvpo.train import _CPU_FLOPS_GUESS, update_flops
    from mjx_qvpo.training import make_env

    distributed.check_divisibility(cfg)  # device counts are known only here
    d = derive(cfg)
    env = make_env(cfg)  # builds the MJX model on the host; nothing is compiled
    obs, act = env.observation_size, env.action_size
    steps = d.total_env_steps // cfg.num_envs
    warm_steps = -(-cfg.warmup_env_steps // cfg.num_envs)
    updates = max(0, steps - warm_steps) * cfg.updates_per_step
    slots = replay.capacity_steps(cfg.buffer_size, cfg.num_envs)
    rows = slots * cfg.num_envs
    row_bytes = 4 * (2 * obs + act + 2)  # float32 obs, action, reward, next_obs, done
    backend = jax.default_backend()
    devices = distributed.total_devices(cfg)
    flops = update_flops(cfg, obs, act, 1 / cfg.actor_update_every)  # the mean update
    rate = (_CPU_FLOPS_GUESS if backend == "cpu" else _GPU_FLOPS_GUESS) * devices
    lines = [
        f"plan for task {cfg.task} (obs {obs}, action {act}), workdir {cfg.workdir} "
        f"(nothing written)",
        f"  env steps        {d.total_env_steps:,} (total_env_steps {cfg.total_env_steps:,} "
        f"rounded up to a whole training step of N)",
        f"  log rows         {d.num_chunks} of at most {d.steps_per_chunk} training steps = "
        f"{d.env_steps_per_chunk:,} env steps (host calls sized to at most "
        f"{cfg.max_chunk_seconds:g} s each, one compilation for every length)",
        f"  training steps   {steps:,} (N = {cfg.num_envs} envs each; the first {warm_steps:,} "
        f"are warm-up without updates)",
        f"  gradient updates {updates:,} (U = {cfg.updates_per_step} per training step, "
        f"B = {cfg.batch_size}"
        + (f"; policy steps on 1 update in {cfg.actor_update_every}: "
           f"{updates // cfg.actor_update_every:,}" if cfg.actor_update_every > 1 else "") + ")",
        f"  update-to-data   {d.update_to_data:.4g} (U / N)",
        f"  replay buffer    {rows:,} transitions x {row_bytes} bytes = "
        f"{_fmt_bytes(rows * row_bytes)}",
        f"  evaluations      every {cfg.eval_every_env_steps:,} env steps and at the end, "
        f"{cfg.num_eval_envs} episodes, best-of-{cfg.num_eval_samples}"
        if cfg.eval_every_env_steps else
        f"  evaluations      at the end only, {cfg.num_eval_envs} episodes",
        f"  device           {devices} x {jax.devices()[0].device_kind} ({backend})",
        f"  estimate         compile {_COMPILE_GUESS.get(backend, _COMPILE_GUESS['gpu'])}; "
        f"learner {flops / 1e9:.3g} GFLOP per update, about {_fmt_seconds(flops / rate)} per "
        f"update and {_fmt_seconds(updates * flops / rate)} for the run's updates (a rough "
        f"estimate from FLOP counts at an assumed {rate / 1e12:.3g} TFLOP/s; physics and "
        f"acting not counted)",
    ]
    return "\n".join(lines)
