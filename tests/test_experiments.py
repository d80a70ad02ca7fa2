"""The experiments of docs/algorithm.md section 8: the bandit protocol learns, the seed-vmapped runner equals a
single run, and both command lines write their outputs or reject bad input with exit status 2."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mjx_qvpo.config import ConfigError
from mjx_qvpo.experiments import ablate, bandit

CONFIG = "configs/bandit.py"
# A small diffusion model and few epochs: the protocol is unchanged, the compile is short.
SMALL = {"network.actor_hidden": (32, 32), "network.time_hidden": 32, "network.time_dim": 8,
         "diffusion_steps": 5, "num_plot_samples": 256}


def small_cfg(**overrides):
    return bandit.load_experiment_config(CONFIG, {**SMALL, **overrides})


def test_one_bump_learns_and_concentrates():
    """Mean reward of the policy's samples rises far above the uniform policy's, and the final
    samples sit on the single bump (section 8 protocol, no entropy term)."""
    cfg = small_cfg(num_seeds=2, num_epochs=600, actor_lr=2e-3, snapshot_epochs=(0,), **{
        "bandit.centers": ((0.4, -0.3),), "bandit.heights": (1.0,), "bandit.widths": (0.25,)})
    runner = bandit.make_runner(cfg)
    res = jax.device_get(runner.run_seeds(bandit.seed_keys(cfg), jnp.float32(0.0)))
    uniform = bandit.uniform_mean_reward(cfg)
    for seed in range(cfg.num_seeds):
        s = bandit.summarize_samples(res["snapshots"][seed, -1], cfg)
        initial = bandit.summarize_samples(res["snapshots"][seed, 0], cfg)
        print(seed, "uniform", uniform, "initial", initial["final_mean_reward"], "final", s)
        assert s["final_mean_reward"] > 4 * uniform
        assert s["fraction_near"][0] > 0.6 > 3 * initial["fraction_near"][0]
    # The per-epoch curve rises too: the last 50 epochs' sampled mean beats the first 50's.
    r = res["mean_reward"]
    assert np.all(r[:, -50:].mean(1) > r[:, :50].mean(1) + 0.3)


def test_seed_vmapped_runner_equals_single_run():
    """run_seeds (vmap over seeds, one jit) gives seed i the same result as run_one with seed i's
    key, with and without the entropy term."""
    cfg = small_cfg(num_seeds=3, num_epochs=20, snapshot_epochs=(10,))
    runner = bandit.make_runner(cfg)
    keys = bandit.seed_keys(cfg)
    single = jax.jit(runner.run_one)
    for omega in (0.0, 0.02):
        batch = jax.device_get(runner.run_seeds(keys, jnp.float32(omega)))
        one = jax.device_get(single(keys[1], jnp.float32(omega)))
        assert batch["snapshots"].shape == (3, 3, 256, 2)   # snapshots at epochs 0, 10, 20
        for k in ("snapshots", "mean_reward", "best_reward", "weight", "entropy_coef"):
            np.testing.assert_allclose(batch[k][1], one[k], atol=1e-4, rtol=1e-4, err_msg=k)
    # Different seeds differ (the vmap is over keys, not a broadcast of one run).
    assert not np.allclose(batch["snapshots"][0], batch["snapshots"][1])
    # The entropy coefficient is annealed as in section 4 and is zero when switched off.
    np.testing.assert_allclose(one["entropy_coef"][0], 0.02, rtol=1e-6)
    assert one["entropy_coef"][-1] < 0.02


def test_summary_fields_and_uniform_reward():
    cfg = small_cfg(**{"bandit.heights": (1.0, 0.5, 0.8)})
    # The exact uniform-policy reward agrees with a Monte Carlo estimate.
    a = jax.random.uniform(jax.random.PRNGKey(0), (200_000, 2), minval=-1, maxval=1)
    mc = float(jnp.mean(bandit_reward_of(cfg, a)))
    assert bandit.uniform_mean_reward(cfg) == pytest.approx(mc, rel=0.02)
    # All samples at bump 2 -> nearest bump 2, fraction 1 there, reward = its height.
    samples = np.tile(np.asarray(cfg.bandit.centers[2]), (10, 1))
    s = bandit.summarize_samples(samples, cfg)
    assert s["nearest_bump"] == 2 and s["fraction_near"] == [0.0, 0.0, 1.0]
    assert s["final_mean_reward"] == pytest.approx(0.8, abs=1e-3)


def bandit_reward_of(cfg, a):
    from envs.bandit import bandit_reward
    return bandit_reward(a, cfg.bandit.centers, cfg.bandit.heights, cfg.bandit.widths)


def test_bandit_cli_writes_figure_and_summary(tmp_path):
    out = tmp_path / "bandit"
    args = ["--config", CONFIG, f"--config.workdir={out}", "--config.num_seeds=3",
            "--config.num_epochs=10", "--config.bandit.heights=(1.0, 0.6, 0.8)",
            "--config.snapshot_epochs=(5,)"] + [f"--config.{k}={v}" for k, v in SMALL.items()]
    assert bandit.main(args) == 0
    assert (out / "bandit.png").stat().st_size > 0 and (out / "curves.png").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["highest_bumps"] == [0]
    assert summary["snapshot_epochs"] == [0, 5, 10]
    assert set(summary["variants"]) == {"entropy", "no_entropy"}
    for v in summary["variants"].values():
        assert len(v["seeds"]) == 3
        assert sum(v["seeds_per_nearest_bump"]) == 3
        assert 0 <= v["seeds_on_highest_bump"] <= 3
        for seed in v["seeds"]:
            assert set(seed) >= {"nearest_bump", "fraction_near", "final_mean_reward"}
            assert len(seed["fraction_near"]) == 3
    assert summary["variants"]["no_entropy"]["entropy_coef"] == 0.0


@pytest.mark.parametrize("args, message", [
    (["--config.num_seedz=3"], "unknown config field 'num_seedz'; did you mean 'num_seeds'?"),
    (["--config.bandit.heights=(1.0, 2.0)"], "'bandit.heights' has 2 entries"),
    (["--config.bandit.centers=((0.0, 2.0),)"], "inside [-1, 1]^2"),
    (["--config.num_epochs=0"], "'num_epochs' must be an integer >= 1"),
    (["--config.snapshot_epochs=(5000,)"], "snapshot_epochs"),
    (["--bogus"], "unknown argument '--bogus'"),
])
def test_bandit_cli_bad_input(capsys, tmp_path, args, message):
    assert bandit.main(["--config", CONFIG, f"--config.workdir={tmp_path}/x", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------------- ablation
def test_grid_parsing_and_variants():
    assert ablate.split_top_level("(1, 2),(3, 4), 5") == ["(1, 2)", "(3, 4)", "5"]
    assert ablate.parse_grid("network.actor_hidden=(8, 8),(16,)") == (
        "network.actor_hidden", [(8, 8), (16,)])
    assert ablate.parse_grid("q_transform=qadv,qexpn") == ("q_transform", ["qadv", "qexpn"])
    grids = [("entropy_coef", [0.02, 0]), ("num_behavior_samples", [1, 4])]
    assert ablate.make_variants(grids, [], cross=False) == [
        {}, {"entropy_coef": 0.02}, {"entropy_coef": 0}, {"num_behavior_samples": 1},
        {"num_behavior_samples": 4}]
    assert len(ablate.make_variants(grids, [{"diffusion_steps": 5}], cross=True)) == 5
    # Values equal to the base config's collapse into the base variant.
    from mjx_qvpo.train import load_run_config
    base = load_run_config(CONFIG, {})
    names = [v[0] for v in ablate.resolve_variants(base, ablate.make_variants(grids, [], False))]
    assert names == ["base", "entropy_coef=0", "num_behavior_samples=1"]
    with pytest.raises(ConfigError, match="FIELD=V1,V2"):
        ablate.parse_grid("entropy_coef")


@pytest.mark.parametrize("args, message", [
    (["--grid", "entropy_coeff=0,0.02"], "unknown config field 'entropy_coeff'"),
    (["--grid", "entropy_coef=5"], "'entropy_coef' must be a number"),
    (["--grid", "entropy_coef="], "expected FIELD=V1,V2"),
    (["--seeds", "two"], "--seeds must be an integer"),
])
def test_ablate_cli_bad_input(capsys, tmp_path, args, message):
    argv = ["--config", CONFIG, "--seeds", "2", "--out", str(tmp_path / "x"), *args]
    assert ablate.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


TOY_TRAINER = ["--config.num_envs=8", "--config.updates_per_step=1", "--config.batch_size=8",
               "--config.warmup_env_steps=16", "--config.buffer_size=256",
               "--config.log_every_env_steps=16", "--config.total_env_steps=48",
               "--config.eval_every_env_steps=32", "--config.num_eval_envs=4",
               "--config.diffusion_steps=2", "--config.num_train_samples=4",
               "--config.num_behavior_samples=2", "--config.num_target_samples=2",
               "--config.num_eval_samples=2", "--config.num_entropy_samples=2",
               "--config.network.actor_hidden=(8,)", "--config.network.critic_hidden=(8,)",
               "--config.network.time_dim=4", "--config.network.time_hidden=8"]


@pytest.mark.slow  # two vmapped trainer compilations: about 2-3 minutes on a shared 2-core CPU
def test_ablate_toy_grid_writes_table_plot_and_json(tmp_path):
    """2 variants x 2 seeds of the real trainer on the bandit, a few chunks (seeds vmapped)."""
    out = tmp_path / "abl"
    assert ablate.main(["--config", CONFIG, "--grid", "entropy_coef=0.02,0", "--seeds", "2",
                        "--out", str(out), *TOY_TRAINER]) == 0
    table = (out / "table.md").read_text()
    assert "| base |" in table and "| entropy_coef=0 |" in table
    assert (out / "curves.png").stat().st_size > 0
    res = json.loads((out / "results.json").read_text())
    assert [v["name"] for v in res["variants"]] == ["base", "entropy_coef=0"]
    for v in res["variants"]:
        assert [r["env_steps"] for r in v["rows"]] == [16, 32, 48]
        assert "eval_return" in v["rows"][1] and "eval_return" in v["rows"][2]
        assert len(v["summary"]["final_eval_per_seed"]) == 2 and v["summary"]["all_finite"]
        assert np.all(np.isfinite(v["summary"]["final_eval_per_seed"]))
