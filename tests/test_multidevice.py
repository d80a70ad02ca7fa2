"""Data-parallel training over several devices (issue 6), on fake CPU devices.

``--xla_force_host_platform_device_count`` must be set before JAX starts, so every test runs its
work in a subprocess (``tests/multidevice_worker.py`` or the CLI) with 4 CPU devices.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Fast-compiling CPU code (as in conftest.run_cli): these runs are tiny and compile-bound.
FLAGS = ("--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
         "--xla_force_host_platform_device_count=")


def _env(compile_cache, devices=4, **extra):
    return dict(os.environ, XLA_FLAGS=FLAGS + str(devices), PYTHONPATH=ROOT,
                JAX_COMPILATION_CACHE_DIR=compile_cache,
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5", **extra)


def _worker(compile_cache, *args):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "multidevice_worker.py"),
                        *args], cwd=ROOT, env=_env(compile_cache), capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_one_two_and_four_devices_train_the_same_model(compile_cache):
    """Same seed, N=64, B=1024, U=4 on 1, 2 and 4 devices. Every device's copy of the parameters,
    targets, optimizer state and normalizer is identical after 68 updates, and the losses and
    gradient norms of the first 64 updates (chunk 2) agree with the 1-device run within 10%
    (actor loss 20%: it is ~2e-3 and noisier). The runs cannot agree exactly: each device draws
    its own actions and batches. Summing gradients instead of averaging them would multiply
    the gradient norms by D and fail this test."""
    r = _worker(compile_cache, "compare", "1,2,4")
    assert r["local_devices"] == 4
    one = r["1"]["metrics"][1]
    for d in ("1", "2", "4"):
        run = r[d]
        assert run["devices"] == int(d)
        assert run["spread"] == 0.0, f"{d} devices: parameters differ across devices"
        assert run["updates"] == 68 and run["buffer_rows"] == 2048
        m = run["metrics"][1]
        assert m["train/update_fraction"] == 1.0 and m["finite/params"] == 1.0
        for key, tol in (("train/critic_loss", 0.1), ("train/critic_grad_norm", 0.1),
                         ("train/q_best", 0.1), ("train/reward_mean", 0.1),
                         ("train/actor_loss", 0.2)):
            assert abs(m[key] - one[key]) <= tol * abs(one[key]), (d, key, m[key], one[key])
    assert r["4"]["env_sharding"] == "P('devices',)"


def test_checkpoint_written_on_four_devices_resumes_on_one(compile_cache, tmp_path):
    r = _worker(compile_cache, "resume", str(tmp_path / "run"))
    assert r["saved_step"] == 2048 and r["updates_saved"] == 68
    assert r["resumed_step"] == r["final_env_steps"] == 3072
    assert r["updates_resumed"] == 68 + 16 * 4   # 16 more training steps of 4 updates
    assert r["buffer_rows_kept"]


@pytest.mark.parametrize("args, message", [
    (["--config.num_envs=6"], "'num_envs' (6) must be divisible by the number of devices (4)"),
    (["--config.batch_size=30"], "'batch_size' (30) must be divisible by the number of devices"),
    (["--config.num_devices=8"], "'num_devices' must be at most the 4 local cpu device(s)"),
])
def test_device_layout_errors_name_the_field_before_compiling(compile_cache, tmp_path, args,
                                                              message):
    r = subprocess.run([sys.executable, "-m", "mjx_qvpo.train", "--config", "configs/bandit.py",
                        f"--config.workdir={tmp_path / 'run'}", *args], cwd=ROOT,
                       env=_env(compile_cache), capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_as_one_run(compile_cache, tmp_path):
    """Two processes of 2 CPU devices each, joined by jax.distributed through the environment
    variables of the README's multi-host section: one run over 4 devices, written by process 0."""
    port = _free_port()
    args = ["--config", "configs/bandit.py", "--config.num_envs=16", "--config.batch_size=32",
            "--config.warmup_env_steps=64", "--config.buffer_size=4096",
            "--config.log_every_env_steps=64", "--config.total_env_steps=192",
            "--config.eval_every_env_steps=64", "--config.checkpoint_every_env_steps=64",
            "--config.diffusion_steps=5", "--config.num_train_samples=8",
            "--config.num_eval_samples=8", "--config.network.actor_hidden=(16,)",
            "--config.network.critic_hidden=(16,)", "--config.network.time_hidden=16"]
    procs = [subprocess.Popen(
        [sys.executable, "-m", "mjx_qvpo.train", *args,
         f"--config.workdir={tmp_path / f'run{i}'}"], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=_env(compile_cache, devices=2, JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
                 JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i))) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert "4 x cpu (cpu, 2 processes)" in outs[0][0]
    assert "done: 192 env steps" in outs[0][0]
    assert "mjx_qvpo:" not in outs[1][0] and "step" not in outs[1][0]  # only process 0 logs ...
    assert not (tmp_path / "run1").exists()      # ... and writes
    rows = [json.loads(x) for x in (tmp_path / "run0" / "metrics.jsonl").read_text().splitlines()]
    # Calls are sized by time on process 0 and broadcast; evaluations stay on their grid.
    assert [r["env_steps"] for r in rows if "eval/episode_return" in r] == [64, 128, 192]
    assert all(r["finite/params"] == 1.0 for r in rows)
