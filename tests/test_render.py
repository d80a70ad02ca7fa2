"""`python -m mjx_qvpo.render`: a real MJX rollout of an untrained policy drawn off-screen into an
MP4; OpenGL backend choice and its error; cameras, tiling, GIFs; bad input."""

import os

import imageio.v2 as imageio
import numpy as np
import pytest

from mjx_qvpo import render
from mjx_qvpo.config import ConfigError

# An inverted_pendulum run shrunk to the smallest networks and sampler (the MJX compile of the
# rollout still dominates: tens of seconds on a CPU).
TINY = {
    "num_envs": 2, "buffer_size": 16, "batch_size": 2, "warmup_env_steps": 2,
    "episode_length": 30, "num_eval_envs": 2, "diffusion_steps": 2, "num_train_samples": 2,
    "num_behavior_samples": 2, "num_target_samples": 2, "num_eval_samples": 2,
    "num_entropy_samples": 2, "network.actor_hidden": (8,), "network.critic_hidden": (8,),
    "network.time_dim": 4, "network.time_hidden": 8,
}


def make_tiny_run(workdir, task_config="configs/inverted_pendulum.py", step=0, **overrides):
    """A run directory (config.json + one checkpoint at env step ``step``) of an untrained tiny
    policy, written without compiling anything: the state is zeros of the right structure with
    freshly initialized networks (the rest of the state is not read by render/evaluate)."""
    import jax

    from mjx_qvpo import checkpoint
    from mjx_qvpo.config import apply_overrides, load_config_file, resolve, to_json
    from mjx_qvpo.training import make_trainer

    cfg = resolve(apply_overrides(load_config_file(task_config),
                                  {**TINY, **overrides, "workdir": str(workdir)}))
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(to_json(cfg))
    trainer = make_trainer(cfg)
    template = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
    state = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), template)
    k_actor, k_critic = jax.random.split(jax.random.PRNGKey(1))
    state = state.replace(actor_params=trainer.nets.actor.init(k_actor),
                          critic_params=trainer.nets.critic.init(k_critic))
    checkpoint.save(os.path.join(workdir, "checkpoints"), state, step)
    return str(workdir)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("render") / "run")


def read_frames(path):
    return np.stack(imageio.mimread(path, format="FFMPEG", memtest=False))


def test_render_cli_writes_an_mp4_of_20_moving_frames(run_cli, tiny_run, tmp_path):
    out = tmp_path / "video.mp4"
    r = run_cli("mjx_qvpo.render", "--workdir", tiny_run, "--out", out, "--steps", 20,
                "--width", 64, "--height", 48)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "episode return" in r.stdout
    frames = read_frames(str(out))
    assert frames.shape == (20, 48, 64, 3)
    assert frames.std() > 1.0                                    # not a blank picture
    assert any(np.abs(frames[i].astype(int) - frames[0]).max() > 10 for i in range(1, 20))
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--workdir", "/nonexistent/run", "--out", "v.mp4"], "is not a run directory"),
    (["--workdir", "RUN", "--out", "v.mp4", "--checkpoint", "123"],
     "no checkpoint at env step 123"),
    (["--workdir", "RUN", "--out", "v.avi"], "must end in .mp4 or .gif"),
    (["--workdir", "RUN", "--out", "v.mp4", "--width", "65"], "must be even"),
    ([], "give exactly one of --workdir RUN (or RUN) and --policy FILE.npz"),
    (["--workdir", "RUN", "--policy", "p.npz"], "give exactly one of"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tiny_run, args, message):
    args = [tiny_run if a == "RUN" else a for a in args]
    assert render.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ") and err.count("\n") == 1


def test_run_without_checkpoint_and_bandit_are_clear_errors(tmp_path):
    run = tmp_path / "empty"
    os.makedirs(run / "checkpoints")
    from mjx_qvpo.config import load_config_file, resolve, to_json
    (run / "config.json").write_text(to_json(resolve(load_config_file(
        "configs/inverted_pendulum.py"))))
    with pytest.raises(ConfigError, match="holds no checkpoint"):
        render.render_run(str(run), str(tmp_path / "v.mp4"))
    bandit = tmp_path / "bandit"
    os.makedirs(bandit)
    (bandit / "config.json").write_text(to_json(resolve(load_config_file("configs/bandit.py"))))
    with pytest.raises(render.RenderError, match="no physics to render"):
        render.render_run(str(bandit), str(tmp_path / "v.mp4"))


def test_backend_falls_back_to_osmesa_and_names_packages_when_none_works(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(render, "_selected_backend", None)
    activated = []
    monkeypatch.setattr(render, "_activate", activated.append)
    tried = []

    def egl_broken(backend):
        tried.append(backend)
        return backend == "osmesa", "EGL: no display"
    assert render.select_gl_backend(probe=egl_broken) == "osmesa"
    assert tried == ["egl", "osmesa"] and activated == ["osmesa"]

    monkeypatch.setattr(render, "_selected_backend", None)
    with pytest.raises(render.RenderError) as e:
        render.select_gl_backend(probe=lambda b: (False, "cannot load library"))
    msg = str(e.value)
    assert "MUJOCO_GL=egl failed" in msg and "MUJOCO_GL=osmesa failed" in msg
    assert "libosmesa6" in msg and "libegl1" in msg and "install_system_deps.sh" in msg

    monkeypatch.setattr(render, "_selected_backend", None)
    monkeypatch.setenv("MUJOCO_GL", "osmesa")  # a user's choice is the only one tried
    tried.clear()
    with pytest.raises(render.RenderError, match="unset MUJOCO_GL"):
        render.select_gl_backend(probe=lambda b: (tried.append(b), (False, "x"))[1])
    assert tried == ["osmesa"]


def test_some_offscreen_backend_really_draws():
    results = {b: render.probe_backend(b) for b in ("egl", "osmesa")}
    assert any(ok for ok, _ in results.values()), results


def test_cameras_by_name_and_id():
    import mujoco
    xml = """<mujoco><worldbody><light pos="0 0 2"/><geom type="plane" size="1 1 .1"/>
      <body name="b" pos="0 0 .2"><freejoint/><geom type="box" size=".1 .1 .1"/></body>
      <camera name="side" pos="0 -1 .3" xyaxes="1 0 0 0 0 1"/>
      <camera name="track" pos="0 -1 1" mode="trackcom"/></worldbody></mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml)
    assert render.parse_camera(model, None) == 1         # 'track' by default
    assert render.parse_camera(model, "side") == 0
    assert render.parse_camera(model, "-1") == -1
    with pytest.raises(render.RenderError, match=r"-1 \(free camera\), 0 \(side\), 1 \(track\)"):
        render.parse_camera(model, "top")
    with pytest.raises(render.RenderError, match="out of range"):
        render.parse_camera(model, 2)
    no_cams = mujoco.MjModel.from_xml_string("<mujoco><worldbody/></mujoco>")
    assert render.parse_camera(no_cams, None) == -1


def test_draw_frames_follows_the_states_and_grows_the_framebuffer():
    import mujoco
    render.select_gl_backend()
    model = mujoco.MjModel.from_xml_string(
        """<mujoco><worldbody><light pos="0 0 2"/><geom type="plane" size="2 2 .1"/>
        <body pos="0 0 .2"><joint name="x" type="slide" axis="1 0 0"/>
        <geom type="box" size=".2 .2 .2" rgba="1 0 0 1"/></body></worldbody></mujoco>""")
    qpos = np.array([[0.0], [0.0], [0.8]])
    frames = render.draw_frames(model, qpos, np.zeros((3, 1)), 700, 20)  # wider than 640
    assert frames.shape == (3, 20, 700, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[0], frames[2])


def test_tile_and_gif(tmp_path):
    frames = np.zeros((3, 5, 4, 6, 3), np.uint8)
    for i in range(3):
        frames[i, :, :, :, i] = 255
    grid = render.tile(frames)
    assert grid.shape == (5, 8, 12, 3)                    # 2 x 2 grid, last cell black
    assert grid[0, 0, 0, 0] == 255 and grid[0, 0, 6, 1] == 255 and grid[0, 4, 0, 2] == 255
    assert grid[0, 4:, 6:].max() == 0
    moving = np.stack([np.full((8, 10, 3), 20 * t, np.uint8) for t in range(7)])
    render.write_video(str(tmp_path / "v.gif"), moving, fps=25)
    back = imageio.mimread(str(tmp_path / "v.gif"))
    assert len(back) == 7
    render.write_video(str(tmp_path / "v.mp4"), moving, fps=25)
    assert read_frames(str(tmp_path / "v.mp4")).shape[:3] == (7, 8, 10)


@pytest.mark.slow
def test_train_renders_a_video_at_each_evaluation(run_cli, tmp_path):
    workdir = tmp_path / "run"
    args = [f"--config.{k}={v}" for k, v in TINY.items() if k != "episode_length"]
    r = run_cli("mjx_qvpo.train", "--config", "configs/inverted_pendulum.py",
                f"--config.workdir={workdir}", *args, "--config.episode_length=12",
                "--config.total_env_steps=8", "--config.log_every_env_steps=4",
                "--config.eval_every_env_steps=4", "--config.render_every_eval=True")
    assert r.returncode == 0, r.stderr[-3000:]
    videos = sorted(os.listdir(workdir / "videos"))
    assert videos == ["eval_000000000004.mp4", "eval_000000000008.mp4"]
    assert read_frames(str(workdir / "videos" / videos[-1])).shape == (12, 240, 320, 3)
    assert "rendered" in r.stdout


def test_render_every_eval_is_a_checked_config_field():
    from mjx_qvpo.config import apply_overrides, load_config_file, resolve
    cfg = load_config_file("configs/inverted_pendulum.py")
    assert cfg.render_every_eval is False
    assert resolve(apply_overrides(cfg, {"render_every_eval": True})).render_every_eval is True
    with pytest.raises(ConfigError, match="render_every_eval"):
        resolve(apply_overrides(cfg, {"render_every_eval": 3}))
    with pytest.raises(ConfigError, match="no physics to render"):
        resolve(apply_overrides(load_config_file("configs/bandit.py"), {"render_every_eval": True}))
