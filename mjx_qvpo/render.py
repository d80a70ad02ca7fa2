"""``python -m mjx_qvpo.render --workdir RUN [--out FILE.mp4] [--checkpoint STEP] [--steps N]
[--width W --height H] [--camera NAME_OR_ID] [--envs E] [--fps F] [--seed S]`` (or ``RUN``
positional, or ``--policy FILE.npz`` for a file from ``mjx_qvpo.export``; ``--out`` defaults to
``RUN/video_<step>.mp4``)

Watch what a run's policy does: roll out the evaluation policy (best-of-K_eval, the same policy as
``trainer.evaluate``) on the run's task in MJX, in one jitted ``lax.scan`` that returns ``qpos`` and
``qvel`` of every step; then, on the host, set those into a MuJoCo ``MjData`` and draw each frame
with MuJoCo's own off-screen ``mujoco.Renderer``. The frames go to an MP4 (H.264 through
imageio-ffmpeg) or, when ``--out`` ends in ``.gif``, a GIF. With ``--envs E`` the E environments
are tiled into one video. The return of each environment's first episode is printed.

The video shows exactly ``--steps`` frames: frame t is the state in which the policy chooses its
t-th action (frame 0 is the initial state). An episode that ends early is followed by a fresh one
(the training wrapper's automatic reset), so a short episode does not shorten the video.

Off-screen OpenGL is chosen by the ``MUJOCO_GL`` environment variable. Left unset, EGL is tried
first and OSMesa (software) second, each in a short probe process; the first that can draw is
used. Set ``MUJOCO_GL=egl`` or ``MUJOCO_GL=osmesa`` to force one. When none works, the error names
the system packages to install (``bash scripts/install_system_deps.sh`` installs them).

Bad input (no run directory, no checkpoint, an unknown step or camera, ...) and a missing OpenGL
are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import platform
import subprocess
import sys
import time
import warnings
from typing import Any, Callable, Sequence

import numpy as np

from mjx_qvpo import compile_cache
from mjx_qvpo.cli import ArgumentParser
from mjx_qvpo.config import ConfigError
from mjx_qvpo.export import is_policy_file

APT_PACKAGES = "libegl1 libegl-mesa0 libgl1 libopengl0 libgl1-mesa-dri libglx-mesa0 libosmesa6"
DEFAULT_WIDTH, DEFAULT_HEIGHT = 320, 240
# Length of the video that ``train`` renders at each evaluation when ``render_every_eval`` is on.
EVAL_VIDEO_STEPS = 200


class RenderError(ConfigError):
    """Rendering is impossible as asked (no OpenGL, a task without physics, a bad camera...)."""


# ------------------------------------------------------------------------------- OpenGL choice
_PROBE = """
import mujoco
m = mujoco.MjModel.from_xml_string(
    '<mujoco><worldbody><light pos="0 0 1"/><geom type="sphere" size="0.1"/></worldbody></mujoco>')
d = mujoco.MjData(m)
mujoco.mj_forward(m, d)
r = mujoco.Renderer(m, 16, 16)
try:
    r.update_scene(d)
    assert r.render().shape == (16, 16, 3)
finally:
    r.close()
"""
_selected_backend: str | None = None


def probe_backend(backend: str, timeout: float = 120.0) -> tuple[bool, str]:
    """Whether MuJoCo can draw off-screen with ``MUJOCO_GL=backend``, tried in a fresh process
    (an OpenGL platform cannot be switched inside a process once PyOpenGL has loaded one).
    Returns ``(ok, the last line of the probe's error output)``."""
    env = dict(os.environ, MUJOCO_GL=backend)
    env.pop("PYOPENGL_PLATFORM", None)
    if backend in ("egl", "osmesa"):
        env["PYOPENGL_PLATFORM"] = backend
    try:
        with warnings.catch_warnings():  # JAX warns on any fork; this one execs Python at once
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
            r = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                               text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    lines = [line.strip() for line in r.stderr.splitlines() if line.strip()]
    return r.returncode == 0, (lines[-1] if lines else f"exit status {r.returncode}")


def select_gl_backend(probe: Callable[[str], tuple[bool, str]] = probe_backend) -> str:
    """Choose the off-screen OpenGL backend for this process and return its ``MUJOCO_GL`` name.

    ``MUJOCO_GL`` set by the user is the only candidate; unset, ``egl`` then ``osmesa`` are tried
    (on Linux; elsewhere MuJoCo's platform default). The choice is written to ``MUJOCO_GL`` and
    ``PYOPENGL_PLATFORM`` and, when MuJoCo was already imported with another choice, its GL
    context module is reloaded. Raises ``RenderError`` naming the packages to install when no
    candidate can draw. The result is cached for the process.
    """
    global _selected_backend
    if _selected_backend is not None:
        return _selected_backend
    requested = os.environ.get("MUJOCO_GL", "").strip().lower()
    if requested:
        candidates = [requested]
    elif platform.system() == "Linux":
        candidates = ["egl", "osmesa"]
    else:
        candidates = [""]
    failures = []
    for backend in candidates:
        ok, why = probe(backend)
        if ok:
            _activate(backend)
            _selected_backend = backend
            return backend
        failures.append(f"MUJOCO_GL={backend or '(default)'} failed: {why}")
    hint = (f"install the OpenGL libraries with `bash scripts/install_system_deps.sh` (on "
            f"Debian/Ubuntu: apt-get install {APT_PACKAGES})")
    if requested:
        hint += "; or unset MUJOCO_GL to try egl, then osmesa"
    raise RenderError(f"no off-screen OpenGL for rendering ({'; '.join(failures)}): {hint}")


def _activate(backend: str) -> None:
    os.environ["MUJOCO_GL"] = backend
    if backend in ("egl", "osmesa") and "OpenGL" not in sys.modules:
        os.environ["PYOPENGL_PLATFORM"] = backend
    gl = sys.modules.get("mujoco.rendering.classic.gl_context")
    if gl is not None and getattr(gl, "_MUJOCO_GL", backend) != backend:
        importlib.reload(gl)  # mujoco was imported before the choice (e.g. by brax)


# ------------------------------------------------------------------------------------ rollout
def check_renderable(trainer) -> Any:
    """The MuJoCo ``MjModel`` of the trainer's task; ``RenderError`` for a task without physics
    (the bandit)."""
    env = trainer.env
    sys_ = getattr(env.env, "sys", None)
    model = getattr(sys_, "mj_model", None)
    if model is None:
        raise RenderError(f"task {env.task!r} has no physics to render (no MuJoCo model); "
                          f"use `python -m mjx_qvpo.evaluate` for its returns")
    return model


def make_rollout(trainer, num_steps: int, num_envs: int = 1) -> Callable:
    """A jitted ``rollout(policy_params, key) -> dict`` of ``num_steps`` steps of ``num_envs``
    fresh environments acting with the evaluation policy (best-of-``cfg.num_eval_samples``).

    The dict holds, stacked over time, ``qpos`` (T, E, nq) and ``qvel`` (T, E, nv) of the state
    each action was chosen in, ``reward`` and ``done`` (T, E), and per environment the return and
    length of its first episode (``first_return``, ``first_length``) and whether it ended within
    the rollout (``first_done``, ``first_terminated``).
    """
    import jax
    import jax.numpy as jnp

    from mjx_qvpo import acting

    check_renderable(trainer)
    env = trainer.env
    factory = acting.make_inference_fn(trainer.nets, trainer.cfg.num_eval_samples)
    num_steps, num_envs = int(num_steps), int(num_envs)

    def rollout(params, key):
        policy = factory(params)
        k_reset, k_run = jax.random.split(key)
        state = env.reset(k_reset, num_envs)

        def body(carry, k):
            state, ret, length, active, terminated = carry
            ps = state.inner.pipeline_state
            action = policy(state.obs, k)
            state, res = env.step(state, action)
            ret = ret + jnp.where(active, res.reward, 0.0)
            length = length + active.astype(jnp.int32)
            terminated = terminated | (active & (res.terminated > 0.5))
            active = active & (res.done < 0.5)
            return (state, ret, length, active, terminated), (ps.qpos, ps.qvel, res.reward,
                                                              res.done)

        init = (state, jnp.zeros((num_envs,), jnp.float32), jnp.zeros((num_envs,), jnp.int32),
                jnp.ones((num_envs,), bool), jnp.zeros((num_envs,), bool))
        (_, ret, length, active, terminated), (qpos, qvel, reward, done) = jax.lax.scan(
            body, init, jax.random.split(k_run, num_steps))
        return dict(qpos=qpos, qvel=qvel, reward=reward, done=done, first_return=ret,
                    first_length=length, first_done=~active, first_terminated=terminated)

    return jax.jit(rollout)


# ------------------------------------------------------------------------------------ drawing
def parse_camera(model, camera: str | int | None) -> int:
    """Camera id from a name or an integer (-1 = MuJoCo's free camera). ``None`` picks a camera
    named ``track`` when the model has one (it follows the body), else the free camera."""
    import mujoco

    names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
    if camera is None:
        return names.index("track") if "track" in names else -1
    text = str(camera).strip()
    try:
        cam_id = int(text)
    except ValueError:
        if text in names:
            return names.index(text)
        raise RenderError(f"unknown camera {text!r}; this model's cameras: "
                          f"{_camera_list(names)}") from None
    if not -1 <= cam_id < model.ncam:
        raise RenderError(f"camera id {cam_id} is out of range; this model's cameras: "
                          f"{_camera_list(names)}")
    return cam_id


def _camera_list(names: Sequence[str | None]) -> str:
    listed = ", ".join(f"{i} ({n})" if n else str(i) for i, n in enumerate(names))
    return "-1 (free camera)" + (f", {listed}" if listed else "")


def draw_frames(model, qpos: np.ndarray, qvel: np.ndarray, width: int, height: int,
                camera: int = -1) -> np.ndarray:
    """Frames (T, height, width, 3) uint8 of one environment's states ``qpos`` (T, nq) and
    ``qvel`` (T, nv), drawn off-screen by ``mujoco.Renderer`` (call ``select_gl_backend`` first)."""
    import mujoco

    model = _with_framebuffer(model, width, height)
    data = mujoco.MjData(model)
    renderer = mujoco.Renderer(model, height=height, width=width)
    try:
        frames = np.empty((len(qpos), height, width, 3), np.uint8)
        for t in range(len(qpos)):
            data.qpos[:] = qpos[t]
            data.qvel[:] = qvel[t]
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera=camera)
            frames[t] = renderer.render()
    finally:
        renderer.close()
    return frames


def _with_framebuffer(model, width: int, height: int):
    """The model itself, or a copy whose off-screen buffer is large enough for width x height."""
    glob = model.vis.global_
    if glob.offwidth >= width and glob.offheight >= height:
        return model
    import copy
    model = copy.copy(model)
    model.vis.global_.offwidth = max(glob.offwidth, width)
    model.vis.global_.offheight = max(glob.offheight, height)
    return model


def tile(frames: np.ndarray) -> np.ndarray:
    """(E, T, H, W, 3) frames of E environments -> (T, rows*H, cols*W, 3), a near-square grid
    filled row by row (unused cells black)."""
    e, t, h, w, c = frames.shape
    cols = math.ceil(math.sqrt(e))
    rows = math.ceil(e / cols)
    grid = np.zeros((t, rows * h, cols * w, c), frames.dtype)
    for i in range(e):
        r, q = divmod(i, cols)
        grid[:, r * h:(r + 1) * h, q * w:(q + 1) * w] = frames[i]
    return grid


def write_video(path: str, frames: np.ndarray, fps: float) -> None:
    """Write (T, H, W, 3) uint8 frames as an MP4 (H.264, yuv420p; even sizes) or, for a ``.gif``
    path, an endlessly looping GIF."""
    import imageio.v2 as imageio

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if path.lower().endswith(".gif"):
        # GIF frame times are whole hundredths of a second.
        duration_ms = max(20, 10 * round(100.0 / fps))
        imageio.mimsave(path, list(frames), format="GIF", duration=duration_ms, loop=0)
        return
    with warnings.catch_warnings():
        # JAX warns on any fork; imageio-ffmpeg's fork is followed at once by exec of ffmpeg.
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
        with imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                pixelformat="yuv420p", quality=7, macro_block_size=1,
                                ffmpeg_log_level="error") as writer:
            for frame in frames:
                writer.append_data(frame)


def video_format(path: str) -> str:
    """``mp4`` or ``gif`` from the output path's extension (``RenderError`` otherwise)."""
    ext = os.path.splitext(path)[1].lower()
    if ext in (".mp4", ".gif"):
        return ext[1:]
    raise RenderError(f"--out {path!r}: the video file must end in .mp4 or .gif")


def check_size(path: str, width: int, height: int) -> None:
    """Positive sizes, and even ones for MP4 (H.264 in yuv420p needs them)."""
    if width < 1 or height < 1:
        raise RenderError(f"--width and --height must be positive, got {width}x{height}")
    if video_format(path) == "mp4" and (width % 2 or height % 2):
        raise RenderError(f"--width and --height must be even for an MP4, got {width}x{height}")


# --------------------------------------------------------------------------------- together
def make_video_fn(trainer, num_steps: int, num_envs: int = 1, width: int = DEFAULT_WIDTH,
                  height: int = DEFAULT_HEIGHT, camera: str | int | None = None,
                  fps: float | None = None) -> Callable[..., dict]:
    """``video(state, path, key) -> summary``: roll out the evaluation policy of a
    ``TrainingState``, draw it and write ``path``. The rollout is compiled on the first call and
    reused after (``train`` renders at every evaluation with one of these)."""
    import jax

    model = check_renderable(trainer)
    cam_id = parse_camera(model, camera)
    rollout = make_rollout(trainer, num_steps, num_envs)
    fps = float(fps) if fps else 1.0 / float(trainer.env.env.dt)

    def video(state, path: str, key) -> dict:
        check_size(path, width, height)
        select_gl_backend()
        t0 = time.perf_counter()
        out = jax.device_get(rollout(trainer.policy_params(state), key))
        t1 = time.perf_counter()
        frames = np.stack([draw_frames(model, out["qpos"][:, i], out["qvel"][:, i], width, height,
                                       cam_id) for i in range(num_envs)])
        frames = frames[0] if num_envs == 1 else tile(frames)
        t2 = time.perf_counter()
        write_video(path, frames, fps)
        return dict(path=path, frames=int(frames.shape[0]), width=int(frames.shape[2]),
                    height=int(frames.shape[1]), fps=fps, camera=cam_id,
                    returns=[float(x) for x in out["first_return"]],
                    lengths=[int(x) for x in out["first_length"]],
                    ended=[bool(x) for x in out["first_done"]],
                    terminated=[bool(x) for x in out["first_terminated"]],
                    rollout_s=t1 - t0, draw_s=t2 - t1, write_s=time.perf_counter() - t2,
                    backend=os.environ.get("MUJOCO_GL", ""))
    return video


def render_run(workdir: str, out: str | None, *, checkpoint: int | None = None,
               steps: int | None = None, width: int = DEFAULT_WIDTH,
               height: int = DEFAULT_HEIGHT, camera: str | int | None = None, num_envs: int = 1,
               fps: float | None = None, seed: int = 0) -> dict:
    """Render a run's checkpoint (the newest by default), or an exported policy file when
    ``workdir`` is one, to ``out`` (default ``default_out``); returns the summary of
    ``make_video_fn`` plus ``task`` and ``step``. The cheap checks (output name, sizes, OpenGL)
    come before any compilation."""
    import jax

    from mjx_qvpo import export, runs
    from mjx_qvpo.evaluate import check_checkpoint

    policy_file = export.is_policy_file(workdir)
    check_size(out or "x.mp4", width, height)
    if steps is not None and steps < 1:
        raise RenderError(f"--steps must be >= 1, got {steps}")
    if num_envs < 1:
        raise RenderError(f"--envs must be >= 1, got {num_envs}")
    if policy_file and checkpoint is not None:
        raise RenderError("--checkpoint applies to a run directory, not to a policy file")
    if policy_file:
        cfg, trainer, state, step = export.load_exported(workdir)
    else:
        cfg = runs.load_config(workdir)
    if cfg.task == "bandit":
        raise RenderError("task 'bandit' has no physics to render (no MuJoCo model); use "
                          "`python -m mjx_qvpo.evaluate` for its returns")
    if not policy_file:
        check_checkpoint(workdir, checkpoint)
    select_gl_backend()
    if not policy_file:
        cfg, trainer, state, step = runs.load_state(workdir, checkpoint)
    out = out or default_out(workdir, int(step))
    video = make_video_fn(trainer, steps or cfg.episode_length, num_envs, width, height, camera,
                          fps)
    summary = video(state, out, jax.random.PRNGKey(seed))
    return dict(summary, task=cfg.task, step=int(step), workdir=workdir)


def default_out(workdir: str, step: int) -> str:
    """Where the video goes without ``--out``: ``RUN/video_<step>.mp4`` (for a policy file
    ``FILE.npz``: ``FILE.mp4``)."""
    if is_policy_file(workdir):
        return os.path.splitext(workdir)[0] + ".mp4"
    return os.path.join(workdir, f"video_{step}.mp4")


def describe(summary: dict) -> str:
    """The lines the CLI prints about a rendered video."""
    lines = [f"{summary['task']} at env step {summary['step']:,}: wrote {summary['path']} "
             f"({summary['frames']} frames, {summary['width']}x{summary['height']}, "
             f"{summary['fps']:.3g} fps, MUJOCO_GL={summary['backend']}; rollout "
             f"{summary['rollout_s']:.1f} s incl. compile, drawing {summary['draw_s']:.1f} s)"]
    for i, (ret, length, ended, term) in enumerate(zip(summary["returns"], summary["lengths"],
                                                       summary["ended"], summary["terminated"])):
        how = ("terminated" if term else "time limit") if ended else \
            f"still running after {summary['frames']} steps"
        prefix = "episode return" if len(summary["returns"]) == 1 else f"env {i}: episode return"
        lines.append(f"{prefix} {ret:.6g} ({length} steps, {how})")
    if len(summary["returns"]) > 1:
        lines.append(f"mean episode return {np.mean(summary['returns']):.6g} over "
                     f"{len(summary['returns'])} envs")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m mjx_qvpo.render``."""
    p = ArgumentParser(prog="python -m mjx_qvpo.render",
                       description="Render a run's evaluation policy (or an exported policy file) "
                                   "to an MP4 or GIF\n(MUJOCO_GL selects the OpenGL backend: egl, "
                                   "osmesa; unset tries egl then osmesa).",
                       example="python -m mjx_qvpo.render --workdir runs/ip --out runs/ip/video.mp4"
                               " --steps 200")
    p.add_argument("run", nargs="?", default=None, metavar="RUN",
                   help="run directory (the same as --workdir RUN)")
    p.add_argument("--workdir", default=None, metavar="RUN", help="run directory")
    p.add_argument("--policy", default=None, metavar="FILE.npz",
                   help="an exported policy (python -m mjx_qvpo.export) instead of a run")
    p.add_argument("--out", default=None, metavar="FILE.mp4",
                   help="output video, .mp4 or .gif (default: RUN/video_<step>.mp4)")
    p.add_argument("--checkpoint", type=int, default=None, metavar="STEP",
                   help="env step of the checkpoint (default: the newest)")
    p.add_argument("--steps", type=int, default=None, metavar="N",
                   help="frames = environment steps (default: the run's episode_length)")
    p.add_argument("--width", type=int, default=DEFAULT_WIDTH, metavar="W",
                   help="width of one environment's picture in pixels")
    p.add_argument("--height", type=int, default=DEFAULT_HEIGHT, metavar="H",
                   help="height of one environment's picture in pixels")
    p.add_argument("--camera", default=None, metavar="NAME_OR_ID",
                   help="camera name or id, -1 = free camera (default: 'track' if the model has "
                        "it, else the free camera)")
    p.add_argument("--envs", type=int, default=1, metavar="E",
                   help="environments rolled out together and tiled into one video")
    p.add_argument("--fps", type=float, default=None,
                   help="frames per second (default: real time, 1 / the task's control step)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of the rollout")
    p.add_argument(compile_cache.FLAG, action="store_true",
                   help="do not use the persistent compilation cache (see mjx_qvpo.compile_cache)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; bad input is one clear line on stderr and exit status 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        from mjx_qvpo.evaluate import source_of
        args = build_parser().parse_args(argv)
        compile_cache.enable(disabled=args.no_compile_cache)
        summary = render_run(source_of(args), args.out, checkpoint=args.checkpoint,
                             steps=args.steps,
                             width=args.width, height=args.height, camera=args.camera,
                             num_envs=args.envs, fps=args.fps, seed=args.seed)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # e.g. an output folder that cannot be written
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(describe(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
