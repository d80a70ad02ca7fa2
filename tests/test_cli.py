"""`python -m mjx_qvpo.train` as a user runs it: bad input, and a humanoid smoke run that writes
metrics and checkpoints and resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, cli_env
from mjx_qvpo.checkpoint import list_checkpoints

# A humanoid run shrunk to seconds of work (the MJX compile still takes minutes on a CPU).
TINY_HUMANOID = [
    "--config.num_envs=2", "--config.updates_per_step=1", "--config.batch_size=4",
    "--config.warmup_env_steps=4", "--config.buffer_size=64", "--config.episode_length=4",
    "--config.log_every_env_steps=4", "--config.total_env_steps=8",
    "--config.eval_every_env_steps=0", "--config.checkpoint_every_env_steps=4",
    "--config.num_eval_envs=1", "--config.diffusion_steps=2", "--config.num_train_samples=2",
    "--config.num_behavior_samples=2", "--config.num_target_samples=2",
    "--config.num_eval_samples=2", "--config.num_entropy_samples=2",
    "--config.network.actor_hidden=(8,)", "--config.network.critic_hidden=(8,)",
    "--config.network.time_dim=4", "--config.network.time_hidden=8",
]


@pytest.mark.parametrize("args, message", [
    (["--config.num_envz=4"], "unknown config field 'num_envz'; did you mean 'num_envs'?"),
    (["--config.task=humanoyd"], "did you mean 'humanoid'?"),
    (["--config.q_transform=qmax"], "'q_transform' must be one of ['qadv', 'qcut', 'qexpn', 'qrelu']"),
    (["--config.gamma=1.5"], "'gamma' must be a number >= 0.0 and <= 1.0, got 1.5"),
    (["--config.num_envs=four"], "num_envs"),
    (["--config.batch_size=100000"], "'batch_size' (100000) exceeds"),
    (["--config.network.actor_hidden=(0,)"], "'network.actor_hidden' must be a non-empty tuple"),
])
def test_bad_config_is_one_clear_error_before_compiling(run_cli, tmp_path, args, message):
    r = run_cli("mjx_qvpo.train", "--config", "configs/humanoid.py",
                f"--config.workdir={tmp_path / 'run'}", *args, timeout=120)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()  # rejected before anything was written or compiled


def test_missing_config_file(run_cli):
    r = run_cli("mjx_qvpo.train", "--config", "configs/nope.py", timeout=120)
    assert r.returncode == 2 and "does not exist" in r.stderr


def _rows(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _humanoid_smoke_run(run_cli, tmp_path) -> str:
    workdir = str(tmp_path / "humanoid")
    r = run_cli("mjx_qvpo.train", "--config", "configs/humanoid.py",
                f"--config.workdir={workdir}", *TINY_HUMANOID)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "compiled the training chunk" in r.stdout
    cfg = json.load(open(os.path.join(workdir, "config.json")))
    assert cfg["task"] == "humanoid" and cfg["num_envs"] == 2
    rows = _rows(workdir)
    # Calls are sized by time: a one-step probe in warm-up (2 envs, 1 step) and one where updates
    # begin, then the rest of the 4-env-step log interval.
    assert [row["env_steps"] for row in rows] == [2, 4, 8]
    for key in ("wall_time", "sps", "train/critic_loss", "train/actor_loss"):
        assert np.isfinite(rows[-1][key]), key
    assert "eval/episode_return" in rows[-1]            # evaluated at the end
    assert [s for s, _ in list_checkpoints(os.path.join(workdir, "checkpoints"))] == [4, 8]

    # The same directory again without --resume is refused, not overwritten.
    r = run_cli("mjx_qvpo.train", "--config", "configs/humanoid.py",
                f"--config.workdir={workdir}", *TINY_HUMANOID, timeout=120)
    assert r.returncode == 2 and "--resume" in r.stderr
    return workdir


def test_humanoid_smoke_run_writes_metrics_and_checkpoints(run_cli, tmp_path):
    """The README's main job, shrunk: about 2 minutes of MJX compilation on a 2-core CPU. Resuming
    is covered exactly on the bandit (test_training.py) and for humanoid by the slow test below."""
    _humanoid_smoke_run(run_cli, tmp_path)


@pytest.mark.slow
def test_humanoid_smoke_run_resumes_with_a_longer_horizon(run_cli, tmp_path):
    """A longer total_env_steps keeps the anneal horizon stored in the state at the first start,
    so the compiled loop is the same one (loaded from the compile cache)."""
    workdir = _humanoid_smoke_run(run_cli, tmp_path)
    # Resume from the run's saved config with a longer horizon: continues at step 8.
    r = run_cli("mjx_qvpo.train", "--config", os.path.join(workdir, "config.json"),
                "--config.total_env_steps=12", "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from env step 8" in r.stdout
    rows = _rows(workdir)
    assert [row["env_steps"] for row in rows] == [2, 4, 8, 10, 12]  # a probe after resuming
    assert rows[-1]["wall_time"] >= rows[1]["wall_time"]
    assert [s for s, _ in list_checkpoints(os.path.join(workdir, "checkpoints"))] == [4, 8, 12]


# ------------------------------------------------------------------ help and the conventions
ENTRY_POINTS = ["mjx_qvpo.train", "mjx_qvpo.bench", "mjx_qvpo.evaluate", "mjx_qvpo.render",
                "mjx_qvpo.plot", "mjx_qvpo.export", "mjx_qvpo.experiments.bandit",
                "mjx_qvpo.experiments.ablate"]


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_every_entry_point_has_help(capsys, module):
    """--help and -h exit 0 and say what the command does, its flags, an example and where
    configs live (in-process: a subprocess per command would only add import time)."""
    import importlib
    main = importlib.import_module(module).main
    for flag in ("--help", "-h"):
        try:
            rc = main([flag])
        except SystemExit as e:  # argparse's own --help exits
            rc = e.code
        out = capsys.readouterr().out
        assert rc in (0, None), module
        assert "usage:" in out and "example:" in out and "--config" in out, module
        assert "configs/" in out and "--print-config" in out, module


def test_help_runs_as_a_command(run_cli):
    r = run_cli("mjx_qvpo.train", "--help", timeout=120)
    assert r.returncode == 0 and "--dry-run" in r.stdout and "--print-config" in r.stdout
    assert "Failed to import warp" not in r.stdout + r.stderr


def test_print_config_lists_every_schema_field_with_its_meaning(capsys, tmp_path):
    from mjx_qvpo import train
    from mjx_qvpo.config import SCHEMA
    assert train.main(["--config", "configs/inverted_pendulum.py", "--seed", "7",
                       "--workdir", str(tmp_path / "run"), "--print-config"]) == 0
    out = capsys.readouterr().out
    for name, field in SCHEMA.items():
        assert field.doc, f"config field {name!r} has no doc in SCHEMA"
        assert f"\n{name} " in "\n" + out and field.doc in out, name
    assert "seed                          = 7" in out  # --seed is --config.seed
    assert "num_envs                      = 64 (default 1024)" in out
    assert str(tmp_path / "run") in out
    assert not (tmp_path / "run").exists()


def test_dry_run_prints_the_plan_and_writes_nothing(capsys, tmp_path, monkeypatch):
    from mjx_qvpo import train
    monkeypatch.chdir(tmp_path)  # a default run directory would appear here
    config = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs",
                          "inverted_pendulum.py")
    assert train.main(["--config", config, "--dry-run"]) == 0
    out = capsys.readouterr().out
    for text in ("env steps        100,032", "log rows         25 of at most 64 training steps",
                 "gradient updates 24,496", "update-to-data   0.25",
                 "replay buffer    200,000 transitions x 44 bytes = 8,800,000 bytes",
                 "estimate", "rough estimate"):
        assert text in out, text
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("body, message", [
    ("def get_config(:\n", "syntax error at line 1"),
    ("X = 1\n", "defines no get_config()"),
    ("def get_config():\n    return {}['nope']\n", "get_config() raised KeyError: 'nope'"),
    ("import not_a_module_xyz\n", "failed to import: ModuleNotFoundError"),
    ("def get_config():\n    return 3\n", "returned a int"),
])
def test_broken_config_file_is_one_line(capsys, tmp_path, body, message):
    from mjx_qvpo import bench, train
    path = tmp_path / "broken.py"
    path.write_text(body)
    for main in (train.main, bench.main):
        assert main(["--config", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert message in err and str(path) in err


def test_bench_writes_under_runs_by_default():
    from mjx_qvpo import bench
    cfg, opts = bench.parse_bench_args(["--config", "configs/bandit.py", "--quick"])
    assert opts["out_dir"] == os.path.join("runs", "bench")
    _, opts = bench.parse_bench_args(["--config", "configs/bandit.py", "--out", "results/bench"])
    assert opts["out_dir"] == "results/bench"


def test_experiment_aliases_follow_the_conventions():
    from mjx_qvpo.experiments import ablate, bandit
    path, overrides = bandit.parse_cli(["--config", "configs/bandit.py", "--out", "runs/b",
                                        "--seeds", "3", "--seed", "2"])
    assert overrides == {"workdir": "runs/b", "num_seeds": 3, "seed": 2}
    a = ablate.parse_cli(["--config", "configs/bandit.py", "--workdir", "runs/a", "--seed", "4"])
    assert a["out"] == "runs/a" and a["overrides"] == {"seed": 4} and a["seeds"] == 1


# A bandit run with tiny networks: seconds to compile, milliseconds per training step.
TINY_BANDIT = [
    "--config", "configs/bandit.py", "--config.num_envs=16", "--config.batch_size=32",
    "--config.warmup_env_steps=64", "--config.buffer_size=4096", "--config.diffusion_steps=5",
    "--config.num_train_samples=8", "--config.num_eval_samples=8", "--config.num_eval_envs=16",
    "--config.network.actor_hidden=(16,)", "--config.network.critic_hidden=(16,)",
    "--config.network.time_hidden=16",
]


def test_sigterm_during_a_long_chunk_is_honored_within_the_time_bound(compile_cache, tmp_path):
    """log_every_env_steps asks for one 100-million-env-step chunk (hours); max_chunk_seconds=2
    keeps each host call near 2 s, so SIGTERM stops the run, with a loadable checkpoint, within
    seconds."""
    from mjx_qvpo.runs import load_state
    workdir = tmp_path / "long"
    p = subprocess.Popen(
        [sys.executable, "-m", "mjx_qvpo.train", *TINY_BANDIT, f"--config.workdir={workdir}",
         "--config.total_env_steps=100000000", "--config.log_every_env_steps=100000000",
         "--config.eval_every_env_steps=0", "--config.checkpoint_every_env_steps=0",
         "--config.max_chunk_seconds=2"],
        cwd=ROOT, env=cli_env(compile_cache), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        progress = 0
        while progress < 3:  # the warm-up probe, the update probe, then one paced call
            line = p.stdout.readline()
            assert line, "the run ended before its third progress line"
            progress += line.startswith("step")
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=120)
        elapsed = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
    print(f"SIGTERM to exit: {elapsed:.1f} s")
    assert p.returncode == 0, out[-3000:]
    assert "received SIGTERM" in out and "stopped at env step" in out
    assert elapsed < 20, elapsed
    last = _rows(workdir)[-1]["env_steps"]
    _, _, state, step = load_state(str(workdir))
    assert step == last == int(state.env_steps)


@pytest.mark.slow
def test_second_run_of_a_config_loads_its_compilation_from_the_cache(tmp_path):
    """A fresh cache directory: the first run compiles and fills it, the second run of the same
    config (another run directory) loads the executables instead. Slow: two cold CLI runs (about
    2 minutes on the loaded 2-core CPU); the directory rules are in test_compile_cache.py."""
    cache = tmp_path / "cache"
    env = cli_env(str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    compile_s = []
    for name in ("first", "second"):
        r = subprocess.run([sys.executable, "-m", "mjx_qvpo.train", *TINY_BANDIT,
                            f"--config.workdir={tmp_path / name}", "--config.total_env_steps=64",
                            "--config.eval_every_env_steps=0"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        compile_s.append(_rows(tmp_path / name)[-1]["compile_cpu_s"])  # steadier than wall
    print("compile CPU s, first and second run:", compile_s)
    assert any(cache.iterdir())
    assert compile_s[1] < 0.5 * compile_s[0], compile_s
