"""Environment suite: task registry and the vectorized auto-reset wrapper.

``make(task, episode_length=..., **task_kwargs)`` returns a :class:`VecEnv` over

* the MJX tasks, built with ``brax.envs.get_environment(task, backend='mjx', **task_kwargs)``:
  the paper's five (humanoid, ant, halfcheetah, hopper, walker2d) and three cheap ones
  (inverted_pendulum, inverted_double_pendulum, reacher);
* ``bandit``: the pure-JAX continuous bump bandit (:mod:`envs.bandit`).

Importing this package is cheap: brax (and the bandit, which subclasses a brax ``Env``) is only
imported by :func:`make` / on first access of ``bandit_reward`` / ``ContinuousBandit``.
"""

from __future__ import annotations

import difflib

from envs.wrappers import (EnvState, StepResult, VecEnv, evaluate_returns,  # noqa: F401
                           scale_action, SELF_SCALING_BRAX_ENVS, _check_episode_length)

PAPER_TASKS: tuple[str, ...] = ("humanoid", "ant", "halfcheetah", "hopper", "walker2d")
CHEAP_TASKS: tuple[str, ...] = ("inverted_pendulum", "inverted_double_pendulum", "reacher")
BRAX_TASKS: tuple[str, ...] = PAPER_TASKS + CHEAP_TASKS
TASKS: tuple[str, ...] = BRAX_TASKS + ("bandit",)

__all__ = ["TASKS", "PAPER_TASKS", "CHEAP_TASKS", "BRAX_TASKS", "make", "set_ls_iterations",
           "EnvState", "StepResult", "VecEnv", "evaluate_returns", "scale_action",
           "bandit_reward", "ContinuousBandit"]


def check_task(task) -> str:
    """Returns ``task`` if known, else raises ``ValueError`` naming it, suggesting the nearest
    known task and listing all of them. Imports nothing heavy."""
    if isinstance(task, str) and task in TASKS:
        return task
    hint = ";"
    if isinstance(task, str):
        close = difflib.get_close_matches(task.lower(), TASKS, n=1, cutoff=0.5)
        if close:
            hint = f"; did you mean {close[0]!r}?"
    raise ValueError(f"unknown task {task!r}{hint} known tasks: {', '.join(TASKS)}")


def set_ls_iterations(brax_env, ls_iterations: int):
    """Caps MJX's line search of ``brax_env`` (a brax MJX env) at ``ls_iterations`` steps per
    solver iteration (``opt.ls_iterations``); 0 keeps the task's own (returns ``brax_env``).

    Why: MJX's line search is a scan of exactly ``ls_iterations`` steps whose body is skipped
    by a ``lax.cond`` once it has converged; under ``vmap`` the cond becomes a select, so every
    step runs, and on a GPU each is a loop iteration of its own. halfcheetah, hopper, walker2d
    and the cheap tasks keep MuJoCo's 50 (humanoid and ant: Brax sets 4). On this project's CPU a
    cap of 8 made the physics of hopper, halfcheetah and walker2d 2.1-2.3x faster; 200 steps of
    16 hopper envs stayed bit for bit the same, and where the cap bound on halfcheetah and
    walker2d the positions first differed by 4.5e-8 to 2.4e-7, then grew apart as contact dynamics
    do (results/bench/ls_iterations/). MuJoCo's own option, so a different task in principle.
    """
    if ls_iterations:
        brax_env.sys = brax_env.sys.tree_replace({"opt.ls_iterations": int(ls_iterations)})
    return brax_env


def make(task: str, *, episode_length: int = 1000, ls_iterations: int = 0,
         **task_kwargs) -> VecEnv:
    """Builds the vectorized environment for ``task`` (one of ``TASKS``).

    ``episode_length``: time limit (steps) after which a non-terminated episode is truncated.
    ``ls_iterations``: MJX's line-search cap (see :func:`set_ls_iterations`); 0 keeps the
    task's own; the bandit, which has no physics, takes only 0.
    ``task_kwargs`` go to the brax env constructor (``backend`` defaults to ``'mjx'``) or to
    :class:`envs.bandit.ContinuousBandit` (``centers``, ``heights``, ``widths``).
    Building is cheap: nothing is traced or compiled until ``reset``/``step``/``observation_size``.
    """
    check_task(task)  # before any brax import work
    episode_length = _check_episode_length(episode_length)
    if isinstance(ls_iterations, bool) or not isinstance(ls_iterations, int) or ls_iterations < 0:
        raise ValueError(f"ls_iterations must be an integer >= 0, got {ls_iterations!r}")
    if task == "bandit":
        if ls_iterations:
            raise ValueError(f"task 'bandit' has no physics: ls_iterations must be 0, "
                             f"got {ls_iterations}")
        from envs.bandit import ContinuousBandit
        return VecEnv(task, ContinuousBandit(**task_kwargs), episode_length)

    from envs.quiet import import_mjx_quietly
    import_mjx_quietly()  # before brax imports mujoco.mjx (drops its "Failed to import warp")
    from brax import envs as brax_envs
    task_kwargs.setdefault("backend", "mjx")
    env = set_ls_iterations(brax_envs.get_environment(task, **task_kwargs), ls_iterations)
    sys = env.sys
    ctrl_range = sys.actuator_ctrlrange  # numpy (nu, 2) on the mjx Model (== sys.actuator.ctrl_range)
    limited = getattr(sys, "actuator_ctrllimited", None)
    if limited is not None:
        import numpy as np
        ctrl_range = np.where(np.asarray(limited, bool)[:, None], np.asarray(ctrl_range),
                              np.array([-1.0, 1.0]))  # unlimited actuators: identity map
    return VecEnv(task, env, episode_length, ctrl_range=ctrl_range,
                  inner_scales=type(env).__name__ in SELF_SCALING_BRAX_ENVS)


def __getattr__(name):  # lazy re-exports that need brax
    if name in ("bandit_reward", "ContinuousBandit"):
        from envs import bandit
        return getattr(bandit, name)
    raise AttributeError(f"module 'envs' has no attribute {name!r}")
