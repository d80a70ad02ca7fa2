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


def test_the_timed_chunk_is_donated_and_chained_as_in_training():
    # The fused step must be timed as train and race run it: state donated (the buffer updated
    # in place) and each call fed the previous call's state. Without donation every call also
    # copies the whole state, which made the hopper CPU step look 1.48x slower than in training.
    import jax
    from mjx_qvpo.training import make_trainer
    cfg, _ = bench.parse_bench_args(TINY)
    trainer = make_trainer(cfg, single_device=True)
    state = bench.prefilled_state(trainer, cfg, jax.random.PRNGKey(0))
    _, run = bench.chained_chunk(trainer, state)
    per_chunk = bench.derive(cfg).steps_per_chunk * cfg.num_envs
    first = run()[0]
    steps_after_first = int(first.env_steps)
    second = run()[0]
    assert steps_after_first == int(state.env_steps) + per_chunk
    assert int(second.env_steps) == steps_after_first + per_chunk         # chained
    assert all(x.is_deleted() for x in jax.tree.leaves(first.buffer.data))  # donated
    assert not any(x.is_deleted() for x in jax.tree.leaves(state))        # caller's state kept


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


def _script(name):
    """A module of scripts/ (not a package), loaded by path."""
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_eval_time_script_refuses_bad_usage(capsys):
    eval_time = _script("eval_time")
    assert eval_time.main(["configs/inverted_pendulum.py"]) == 2   # OUT missing
    assert "eval_time.py CONFIG OUT.json" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_time_script_times_both_programs_in_both_variants(tmp_path):
    """scripts/eval_time.py on a tiny evaluation: QVPO's and the physics-only program, each
    compiled plainly and with the command-buffer option (ignored on the CPU), timed per call."""
    out = tmp_path / "eval.json"
    assert _script("eval_time").main(["configs/inverted_pendulum.py", str(out), "--repeats", "2",
                                      "--cmdbuf", "--config.episode_length=20",
                                      "--config.num_eval_envs=2"]) == 0
    r = json.loads(out.read_text())
    assert [(x["program"], x["variant"]) for x in r["rows"]] == [
        ("qvpo", "default"), ("physics", "default"), ("qvpo", "cmdbuf_while"),
        ("physics", "cmdbuf_while")]
    assert all(len(x["call_s"]) == 2 and x["ms_per_env_step"] > 0 and x["compile_s"] > 0
               for x in r["rows"])
    assert r["episode_length"] == 20 and r["num_eval_envs"] == 2
