"""``python -m mjx_qvpo.bench`` on a tiny bandit config: every figure is produced and written, the
sweep writes its plot, and bad options are one clear error before anything compiles."""

import json

import pytest

from mjx_qvpo import bench

TINY = ["--config", "configs/bandit.py", "--config.num_envs=8", "--config.batch_size=16",
        "--config.updates_per_step=2", "--config.diffusion_steps=2",
        "--config.num_train_samples=2", "--config.num_eval_samples=2",
        "--config.network.actor_hidden=(8,)", "--config.network.critic_hidden=(8,)",
        "--config.network.time_hidden=8"]


def test_bench_writes_every_figure(tmp_path):
    assert bench.main([*TINY, "--quick", "--out", str(tmp_path), "--precisions", "bfloat16"]) == 0
    report = json.loads((tmp_path / "bandit_cpu.json").read_text())
    r = report["results"]
    for key in ("physics_env_steps_per_s", "act_s", "update_s", "learner_step_s",
                "update_s_bfloat16", "mfu",
                "train_env_steps_per_s", "train_updates_per_s", "fused_overhead",
                "compile_chunk_s", "matmul_peak_flop_per_s"):
        assert r[key] > 0 or key == "fused_overhead", key
    cfg, _ = bench.parse_bench_args(TINY)
    assert r["update_flops"] == bench.update_flops(cfg, 1, 2)  # bandit: obs 1, action 2
    # The bandit has no Brax environment: no baseline is attempted.
    assert "brax_sac_env_steps_per_s" not in r and "brax_sac_error" not in r
    md = (tmp_path / "bandit_cpu.md").read_text()
    assert "one learner update, ms" in md and "bfloat16" in md


@pytest.mark.slow
def test_bench_sweep_writes_its_plot_and_device_scaling(tmp_path):
    assert bench.main([*TINY, "--quick", "--no-parts", "--out", str(tmp_path),
                       "--sweep", "num_envs=8,16", "--devices", "1"]) == 0
    report = json.loads((tmp_path / "bandit_cpu.json").read_text())
    assert report["results"] == {}
    assert [row["value"] for row in report["sweeps"]["num_envs"]] == [8, 16]
    assert all(row["train_env_steps_per_s"] > 0 for row in report["sweeps"]["num_envs"])
    assert (tmp_path / "bandit_cpu_sweep_num_envs.png").stat().st_size > 1000
    assert report["devices"][0]["devices"] == 1 and report["devices"][0]["efficiency"] == 1.0
    assert "Sweep of `num_envs`" in (tmp_path / "bandit_cpu.md").read_text()


def test_a_batch_size_sweep_past_num_envs_is_valid():
    # The bench pre-fills the buffer and sets the warm-up to one batch; a swept batch_size larger
    # than the base one needs its own warm-up (it was refused as exceeding the buffer's rows).
    cfg, opts = bench.parse_bench_args([*TINY, "--sweep", "batch_size=16,64"])
    assert cfg.warmup_env_steps == 16 and opts["sweeps"] == {"batch_size": [16, 64]}


@pytest.mark.parametrize("args, message", [
    (["--precisions", "float16"], "--precisions: 'float16' is not one of"),
    (["--sweep", "num_envs"], "--sweep 'num_envs': expected FIELD=V1,V2"),
    (["--sweep", "num_envz=8,16"], "unknown config field 'num_envz'"),
    (["--sweep", "num_envs=8,0"], "'num_envs' must be an integer >= 1, got 0"),
    (["--devices", "1,x"], "--devices '1,x': expected comma-separated integers"),
    (["--devices", "2"], "'num_devices' must be at most the 1 local cpu device(s)"),
    (["--bogus"], "unknown argument '--bogus'"),
])
def test_bad_bench_options_are_one_line_errors(tmp_path, capsys, args, message):
    assert bench.main([*TINY, "--out", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
