"""The race against Brax SAC (``mjx_qvpo.race``): its command line, the per-task SAC settings, the
curves it reduces and plots, and (slow) a real race on inverted_pendulum."""

import json
import os
import time

import numpy as np
import pytest

from mjx_qvpo import race


TINY_BANDIT = ["--config", "configs/bandit.py", "--config.num_envs=8", "--config.batch_size=8",
               "--config.updates_per_step=1", "--config.diffusion_steps=2",
               "--config.num_train_samples=2", "--config.num_eval_samples=2",
               "--config.num_eval_envs=2", "--config.warmup_env_steps=16",
               "--config.log_every_env_steps=16", "--config.network.actor_hidden=(8,)",
               "--config.network.critic_hidden=(8,)", "--config.network.time_hidden=8"]


def test_cli_splits_race_flags_and_both_override_kinds():
    ns, config_over, sac_over = race.parse_cli([
        "--config", "configs/inverted_pendulum.py", "--budget-s", "30", "--seeds", "2",
        "--config.num_envs=32", "--sac.learning_rate", "1e-3", "--vmap-seeds"])
    assert ns.budget_s == 30.0 and ns.seeds == 2 and ns.vmap_seeds and not ns.no_sac
    assert config_over == {"num_envs": 32} and sac_over == {"learning_rate": 1e-3}


@pytest.mark.parametrize("args, message", [
    (["--config", "configs/inverted_pendulum.py"], "--budget-s"),
    (["--budget-s", "5"], "--config"),
    (["--config", "configs/inverted_pendulum.py", "--budget-s", "0"], "--budget-s must be > 0"),
    (["--config", "configs/inverted_pendulum.py", "--budget-s", "5", "--seeds", "0"],
     "--seeds must be >= 1"),
    (["--config", "configs/inverted_pendulum.py", "--budget-s", "5", "--sac.lr=1"],
     "unknown SAC setting 'sac.lr'"),
    (["--config", "configs/inverted_pendulum.py", "--budget-s", "5", "--config.num_envz=1"],
     "num_envz"),
    (["--config", "configs/bandit.py", "--budget-s", "5"], "no SAC baseline for task 'bandit'"),
    (["--config", "configs/inverted_pendulum.py", "--budget-s", "5", "--eval-samples", "0"],
     "--eval-samples must be >= 1, got 0"),
])
def test_bad_input_is_one_line_before_any_compile(capsys, tmp_path, args, message):
    assert race.main([*args, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_sac_settings_per_task_and_overrides():
    idp = race.sac_settings("inverted_double_pendulum", {})
    assert (idp["num_envs"], idp["batch_size"], idp["grad_updates_per_step"]) == (64, 256, 16)
    hopper = race.sac_settings("hopper", {"num_envs": 256})
    assert hopper["num_envs"] == 256 and hopper["reward_scaling"] == 30.0
    assert race.SAC_SETTINGS["hopper"]["num_envs"] == 128  # the table itself is not changed


def test_budget_loop_evaluates_on_its_clock_and_logs_the_episode_spread():
    env_steps, lines = iter(range(100, 10_000, 100)), []
    evals = iter([[{"return": 1.0, "return_min": 0.5, "return_max": 2.0}],
                  [{"return": 3.0, "return_min": -1.0, "return_max": 4.0}]] + [
                 [{"return": 5.0, "return_min": 5.0, "return_max": 5.0}]] * 20)

    def step():
        time.sleep(0.01)
        return next(env_steps)

    pts = race._budget_loop(step, lambda: next(evals), 0.1, 0.05, lines.append, "QVPO")
    assert pts[0] == {"train_s": 0.0, "env_steps": 0,
                      "returns": [{"return": 1.0, "return_min": 0.5, "return_max": 2.0}]}
    assert pts[-1]["train_s"] >= 0.09 and len(pts) >= 2
    assert all(b["env_steps"] > a["env_steps"] for a, b in zip(pts, pts[1:]))
    assert lines[0].endswith("eval       3.0  (episodes -1 to 4)"), lines[0]


def test_first_nonfinite_reads_per_seed_metrics():
    # The race stops on the first non-finite chunk metric, also of one seed of a vmapped group;
    # the episode window's return is NaN until an episode ends and is not a failure.
    from mjx_qvpo.train import first_nonfinite
    ok = {"finite/params": np.array([True, True]), "train/critic_loss": np.array([1.0, 2.0]),
          "train/episode_return": np.array([np.nan, 3.0])}
    assert first_nonfinite(ok) is None
    assert first_nonfinite({**ok, "train/q_data": np.array([0.0, np.inf])}) == "train/q_data"
    assert first_nonfinite({**ok, "finite/params": np.array([True, False])}) == \
        "network parameters"
    assert first_nonfinite({"finite/params": True, "train/critic_loss": 1.0}) is None


def test_a_non_finite_loss_stops_the_race_with_one_line(tmp_path, capsys):
    # A reward scale of 1e30 overflows the squared TD error at the first update (as in
    # test_training): the race names the quantity and the env step and exits 1.
    assert race.main([*TINY_BANDIT, "--config.reward_scale=1e30", "--budget-s", "5", "--no-sac",
                      "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "non-finite train/" in err[0] and "stopping the race" in err[0], err


def test_diagnostic_evaluations_use_the_same_episodes(tmp_path, capsys):
    # Before any update the target actor equals the online one, and its evaluation uses the same
    # key: its returns must equal the online actor's exactly. Later ones are recorded and logged.
    # --eval-samples with the config's own K_eval (2) is the online evaluation itself, with the
    # same key, so it must equal it at every evaluation: this checks the plumbing, not K.
    assert race.main([*TINY_BANDIT, "--budget-s", "3", "--points", "2", "--no-sac",
                      "--eval-target-actor", "--eval-samples", "2",
                      "--out", str(tmp_path / "r")]) == 0
    saved = json.loads((tmp_path / "r" / "race.json").read_text())["qvpo"]
    pts = saved["seeds"]["0"]
    assert len(pts) >= 2 and saved["eval_samples"] == 2
    for f in ("return", "return_min", "return_max"):
        assert pts[0][f"target_actor_{f}"] == pts[0][f]
        assert all(np.isfinite(p[f"target_actor_{f}"]) for p in pts)
        assert [p[f"eval_samples_{f}"] for p in pts] == [p[f] for p in pts]
    out = capsys.readouterr().out
    assert "; target actor " in out and "; best-of-2 " in out
    md = (tmp_path / "r" / "race.md").read_text()
    assert "| QVPO |" in md and "| QVPO, target actor |" in md and "| QVPO, best-of-2 |" in md
    assert saved["summary_target_actor"]["final_return_per_seed"] == [
        pts[-1]["target_actor_return"]]
    assert saved["summary_eval_samples"] == saved["summary"]
    # Without a diagnostic's evaluations (older races) there is no such curve.
    for prefix in ("target_actor_", "eval_samples_"):
        assert race.diagnostic_curves({"compile_s": 1.0, "seeds": {"0": [
            {k: v for k, v in p.items() if not k.startswith(prefix)} for p in pts]}},
            prefix) is None
    # Races with different K merge only without the diagnostic's curve mixing two K.
    other = json.loads((tmp_path / "r" / "race.json").read_text())
    other["seeds"], other["qvpo"]["eval_samples"] = [1], 1
    other["qvpo"]["seeds"] = {"1": other["qvpo"]["seeds"].pop("0")}
    other["qvpo_config"]["seed"] = 1
    (tmp_path / "k1").mkdir()
    (tmp_path / "k1" / "race.json").write_text(json.dumps(other))
    with pytest.raises(race.ConfigError, match=r"different --eval-samples \(\[1, 2\]\)"):
        race.merge_races([race._load_race(str(tmp_path / n)) for n in ("r", "k1")])


def test_diagnostic_configs_override_one_field_each():
    from mjx_qvpo.config import resolve
    from mjx_qvpo.train import load_run_config
    cfg = resolve(load_run_config("configs/cpu/hopper.py", {}))
    assert race.diagnostic_configs(cfg, False, None) == []
    got = race.diagnostic_configs(cfg, True, 1)
    assert [(p, n) for p, n, _ in got] == [("target_actor_", "target actor"),
                                          ("eval_samples_", "best-of-1")]
    target, samples = got[0][2], got[1][2]
    assert (target.eval_actor, target.num_eval_samples) == ("target", cfg.num_eval_samples)
    assert (samples.eval_actor, samples.num_eval_samples) == ("online", 1) != (
        cfg.eval_actor, cfg.num_eval_samples)
    # Nothing else differs from the run's own evaluation.
    for c in (target, samples):
        assert {k: v for k, v in c.to_dict().items()
                if k not in ("eval_actor", "num_eval_samples")} == {
            k: v for k, v in cfg.to_dict().items() if k not in ("eval_actor", "num_eval_samples")}


def test_eval_target_actor_needs_the_online_actor_in_the_config(capsys, tmp_path):
    assert race.main([*TINY_BANDIT, "--budget-s", "3", "--no-sac", "--eval-target-actor",
                      "--config.eval_actor=target", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "needs config field 'eval_actor' 'online'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_curve_on_grid_is_the_last_evaluation_so_far():
    pts = [{"train_s": 0.0, "return": 1.0}, {"train_s": 10.0, "return": 5.0},
           {"train_s": 20.0, "return": 3.0}]
    y = race.curve_on_grid(pts, "train_s", np.array([0.0, 9.9, 10.0, 15.0, 20.0, 25.0]))
    np.testing.assert_array_equal(y[:5], [1.0, 1.0, 5.0, 5.0, 3.0])
    assert np.isnan(y[5])  # past the seed's last evaluation


def test_seed_mean_band_never_averages_a_subset_of_the_seeds():
    """The plotted mean covers every seed or is absent: on the wall-clock axis each seed holds its
    last evaluation (its return at the budget) to the end; on the env-steps axis the mean stops
    where the first seed ends, while the min-max band goes on."""
    a = [{"train_s": 0.0, "env_steps": 0, "return": 0.0},
         {"train_s": 10.0, "env_steps": 100, "return": 4.0}]
    b = [{"train_s": 0.0, "env_steps": 0, "return": 0.0},
         {"train_s": 9.8, "env_steps": 200, "return": 2.0}]
    grid = np.array([0.0, 9.9, 10.0])
    mean, lo, hi = race.seed_mean_band([a, b], "train_s", grid, hold_last=True)
    np.testing.assert_array_equal(mean, [0.0, 1.0, 3.0])  # b's 2.0 held past 9.8 s
    np.testing.assert_array_equal(lo, [0.0, 0.0, 2.0])
    steps = np.array([0.0, 100.0, 150.0])
    mean, lo, hi = race.seed_mean_band([a, b], "env_steps", steps)
    np.testing.assert_array_equal(mean[:2], [0.0, 2.0])
    assert np.isnan(mean[2]) and lo[2] == hi[2] == 0.0  # only b (still at 0.0) reaches 150


def _fake_race(tmp_path):
    def seed(scale):
        return [{"train_s": t, "env_steps": 100 * t, "return": scale * t} for t in (0, 5, 10)]
    return {"task": "inverted_pendulum", "device": "cpu", "budget_s": 10.0,
            "qvpo": {"seeds": {"0": seed(2.0), "1": seed(4.0)}},
            "sac": {"seeds": {"0": seed(1.0)}}}


def test_summary_and_plot(tmp_path):
    r = _fake_race(tmp_path)
    s = race.summarize(r["qvpo"])
    assert s["final_return_per_seed"] == [20.0, 40.0]
    assert s["final_return_mean"] == 30.0 and s["final_return_std"] == 10.0
    assert s["final_env_steps"] == [1000, 1000]
    race.plot_race(r, str(tmp_path / "race.png"))
    assert (tmp_path / "race.png").stat().st_size > 10_000


def test_time_to_target_and_report_from_a_saved_race(tmp_path, capsys):
    r = _fake_race(tmp_path)
    r.update(command="python -m mjx_qvpo.race ...", seeds=[0, 1], num_eval_envs=8,
             episode_length=1000)
    r["qvpo"]["compile_s"] = r["sac"]["compile_s"] = 1.0
    s = race.summarize(r["qvpo"], target=20.0)
    assert s["time_to_target_s"] == [10.0, 5.0] and s["env_steps_to_target"] == [1000, 500]
    assert race.summarize(r["sac"], target=20.0)["time_to_target_s"] == [None]
    (tmp_path / "race.json").write_text(json.dumps(r))
    assert race.main(["--report", "--out", str(tmp_path), "--target", "20"]) == 0
    md = (tmp_path / "race.md").read_text()
    assert "| QVPO | 30 +- 10 | 20, 40 |" in md and "| 10, 5 | 1,000, 500 |" in md
    assert "| Brax SAC |" in md and "never" in md
    assert (tmp_path / "race.png").exists()
    assert json.loads((tmp_path / "race.json").read_text())["qvpo"]["summary"]["target"] == 20.0
    assert "line search" not in md   # the task's own physics: nothing to say
    r["qvpo_config"] = {"ls_iterations": 8}   # a capped line search is stated in the report
    (tmp_path / "race.json").write_text(json.dumps(r))
    assert race.main(["--report", "--out", str(tmp_path), "--target", "20"]) == 0
    assert ("Physics: MJX's line search capped at 8 steps per solver iteration (ls_iterations), "
            "for both learners.") in (tmp_path / "race.md").read_text()


def test_late_mean_over_the_last_seconds_of_the_budget(tmp_path, capsys):
    """--late-s W: each seed's mean over its evaluations in the last W s of the budget, then the
    mean and std over the seeds that have one (a cut-off seed has none and is named so)."""
    r = _fake_race(tmp_path)   # evaluations at 0, 5 and 10 s of a 10 s budget
    s = race.summarize(r["qvpo"], late=(5.0, 10.0))
    assert s["late_return_per_seed"] == [15.0, 30.0] and s["late_evals"] == [2, 2]
    assert s["late_return_mean"] == 22.5 and s["late_return_std"] == 7.5
    assert race.summarize(r["qvpo"], late=(10.0, 10.0))["late_return_per_seed"] == [10.0, 20.0]
    assert "late_s" not in race.summarize(r["qvpo"])
    r["qvpo"]["seeds"]["1"] = r["qvpo"]["seeds"]["1"][:2]       # cut off at 5 s
    cut = race.summarize(r["qvpo"], late=(4.0, 10.0))
    assert cut["late_return_per_seed"] == [20.0, None] and cut["late_return_mean"] == 20.0
    r.update(command="race ...", seeds=[0, 1], num_eval_envs=8, episode_length=1000)
    r["qvpo"]["compile_s"] = r["sac"]["compile_s"] = 1.0
    (tmp_path / "race.json").write_text(json.dumps(r))
    assert race.main(["--report", "--out", str(tmp_path), "--late-s", "4"]) == 0
    md = (tmp_path / "race.md").read_text()
    assert "mean over the last 4 s (mean +- std) | per seed (evaluations averaged) |" in md
    assert "| 20 +- 0 | 20 (1), none |" in md and "| 10 +- 0 | 10 (1) |" in md
    assert json.loads((tmp_path / "race.json").read_text())["qvpo"]["summary"]["late_s"] == 4.0
    for args, message in [(["--report", "--out", str(tmp_path), "--late-s", "11"],
                           "--late-s must be > 0 and at most the budget (10 s), got 11"),
                          (["--report", "--out", str(tmp_path), "--late-s", "0"],
                           "--late-s must be > 0, got 0"),
                          (["--compare", str(tmp_path), str(tmp_path), "--late-s", "4"],
                           "cannot be combined with --report, --merge or --late-s"),
                          (["--config", "configs/cpu/hopper.py", "--budget-s", "60",
                            "--late-s", "61", "--out", str(tmp_path / "r")],
                           "at most the budget (60 s), got 61")]:
        assert race.main(args) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def _earlier_sac_race(tmp_path, **changes):
    """An earlier race's race.json with SAC seeds 1 and 2: epochs of 30 s, 600 s budget."""
    pts = [{"train_s": 0.0, "env_steps": 0, "return": 5.0}] + [
        {"train_s": 30.0 * i + 1.0, "env_steps": 8192 * i, "return": 10.0 * i}
        for i in range(1, 21)]
    old = {"command": "python -m mjx_qvpo.race --budget-s 600 ...", "task": "hopper",
           "device": "cpu", "budget_s": 600.0, "seeds": [1, 2], "num_eval_envs": 8,
           "episode_length": 1000, "sac_settings": {"num_envs": 128},
           "sac": {"compile_s": 117.0, "warmup_s": 177.0, "epoch_env_steps": 8192,
                   "seeds": {"1": pts, "2": pts}, "summary": {"stale": True}}}
    old.update(changes)
    (tmp_path / "race.json").write_text(json.dumps(old))
    return tmp_path


def test_reused_sac_curves_are_cut_like_a_run_of_this_budget(tmp_path):
    """--sac-from takes an earlier race's SAC curves, cut where run_sac would have stopped (the
    first epoch ending within half an epoch of the budget), with its settings and its source;
    a race that does not match (task, device, protocol, seeds, budget) is refused by name."""
    from mjx_qvpo.config import ConfigError, resolve
    from mjx_qvpo.train import load_run_config

    cfg = resolve(load_run_config("configs/cpu/hopper.py", {"seed": 1}))
    d = _earlier_sac_race(tmp_path)
    got = race.reuse_sac(str(d), cfg, [1, 2], 300.0, "cpu")
    pts = got["sac"]["seeds"]["1"]
    assert [p["train_s"] for p in pts][-2:] == [271.0, 301.0]  # 301 >= 300 - 15, then stop
    assert set(got["sac"]["seeds"]) == {"1", "2"} and "summary" not in got["sac"]
    assert got["sac"]["compile_s"] == 117.0 and got["settings"] == {"num_envs": 128}
    assert got["source"]["path"] == str(d / "race.json") and got["source"]["budget_s"] == 600.0
    assert len(race.reuse_sac(str(d / "race.json"), cfg, [1], 600.0, "cpu")["sac"]["seeds"]
               ["1"]) == 21
    for args, message in [((cfg, [1], 300.0, "NVIDIA H100"), "device 'cpu'"),
                          ((cfg, [3], 300.0, "cpu"), r"not \[3\]"),
                          ((cfg, [1], 900.0, "cpu"), "less than --budget-s 900")]:
        with pytest.raises(ConfigError, match=message):
            race.reuse_sac(str(d), *args)
    with pytest.raises(ConfigError, match="has task 'walker2d', this race 'hopper'"):
        race.reuse_sac(str(_earlier_sac_race(tmp_path, task="walker2d")), cfg, [1], 300.0, "cpu")
    # SAC stepped QVPO's physics: a line-search cap on either side is another task
    capped = resolve(load_run_config("configs/cpu/hopper.py", {"seed": 1, "ls_iterations": 8}))
    with pytest.raises(ConfigError, match="has ls_iterations 0 .its physics., this race 8"):
        race.reuse_sac(str(_earlier_sac_race(tmp_path)), capped, [1], 300.0, "cpu")
    old8 = _earlier_sac_race(tmp_path, qvpo_config={"ls_iterations": 8})
    assert race.reuse_sac(str(old8), capped, [1], 300.0, "cpu")["sac"]["seeds"]["1"]
    with pytest.raises(ConfigError, match="has ls_iterations 8 .its physics., this race 0"):
        race.reuse_sac(str(old8), cfg, [1], 300.0, "cpu")
    with pytest.raises(ConfigError, match="does not exist"):
        race.reuse_sac(str(tmp_path / "nowhere"), cfg, [1], 300.0, "cpu")


@pytest.mark.parametrize("extra, message", [
    (["--no-sac"], "cannot be combined with --no-sac"),
    ([], "has num_eval_envs 8, this race 2"),
])
def test_sac_from_bad_input_is_one_line_before_any_compile(capsys, tmp_path, extra, message):
    (tmp_path / "old").mkdir()
    d = _earlier_sac_race(tmp_path / "old")
    assert race.main(["--config", "configs/cpu/hopper.py", "--budget-s", "60", "--seed", "1",
                      "--config.num_eval_envs=2", "--sac-from", str(d), *extra,
                      "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def _saved_race(tmp_path, name, seed, **qvpo_changes):
    """A race.json of one seed under tmp_path/name (QVPO and SAC curves, a small config)."""
    pts = [{"train_s": t, "env_steps": 100 * t, "return": seed * t} for t in (0.0, 5.0, 10.0)]
    r = {"command": f"race --seed {seed}", "task": "hopper", "device": "cpu", "budget_s": 10.0,
         "seeds": [seed], "num_eval_envs": 8, "episode_length": 1000,
         "qvpo_config": {"seed": seed, "gamma": 0.997, **qvpo_changes},
         "sac_settings": {"num_envs": 128},
         "qvpo": {"compile_s": 50.0 + seed, "seeds": {str(seed): pts}},
         "sac": {"compile_s": 100.0, "seeds": {str(seed): pts}}}
    (tmp_path / name).mkdir()
    (tmp_path / name / "race.json").write_text(json.dumps(r))
    return str(tmp_path / name)


def test_races_of_other_seeds_merge_into_one_report(tmp_path, capsys):
    a = _saved_race(tmp_path, "a", 1, workdir="runs/hopper-seed1")
    b = _saved_race(tmp_path, "b", 2, workdir="runs/hopper-seed2")   # derived from the seed
    out = tmp_path / "both"
    assert race.main(["--report", "--merge", a, b, "--out", str(out)]) == 0
    r = json.loads((out / "race.json").read_text())
    assert r["seeds"] == [1, 2] and set(r["qvpo"]["seeds"]) == set(r["sac"]["seeds"]) == {"1", "2"}
    assert r["qvpo"]["compile_s"] == 51.5 and [p["path"] for p in r["parts"]] == [
        os.path.join(a, "race.json"), os.path.join(b, "race.json")]
    assert "| QVPO | 15 +- 5 | 10, 20 |" in (out / "race.md").read_text()
    assert (out / "race.png").exists()
    for races, message in [(["a", "a"], "share seeds"), (["a", "c"], "differ in qvpo_config")]:
        if not (tmp_path / "c").exists():
            _saved_race(tmp_path, "c", 3, gamma=0.99)
        with pytest.raises(race.ConfigError, match=message):
            race.merge_races([race._load_race(str(tmp_path / n)) for n in races])
    assert race.main(["--config", "configs/cpu/hopper.py", "--budget-s", "5", "--merge", a]) == 2
    assert "--merge works with --report only" in capsys.readouterr().err
    # A field added to the config since a race was saved counts as its default there.
    _saved_race(tmp_path, "new1", 4, n_step=1)
    _saved_race(tmp_path, "new3", 5, n_step=3)
    race.merge_races([race._load_race(str(tmp_path / n)) for n in ("a", "new1")])
    _saved_race(tmp_path, "nested", 6, network={"critic_layer_norm": False})  # nested too
    race.merge_races([race._load_race(str(tmp_path / n)) for n in ("a", "nested")])
    with pytest.raises(race.ConfigError, match="differ in qvpo_config"):
        race.merge_races([race._load_race(str(tmp_path / n)) for n in ("a", "new3")])


def test_compare_pairs_seeds_at_the_budget_and_at_equal_env_steps(tmp_path, capsys):
    a = _saved_race(tmp_path, "a", 1, num_train_samples=32)    # env steps 0, 500, 1,000
    b = _saved_race(tmp_path, "b", 1, num_train_samples=8)
    rb = json.loads((tmp_path / "b" / "race.json").read_text())
    # B reached twice the env steps in its budget (a faster machine), and fell at the end.
    rb["qvpo"]["seeds"]["1"] = [{"train_s": t, "env_steps": int(200 * t), "return": r}
                                for t, r in ((0.0, 0.0), (5.0, 7.0), (10.0, 3.0))]
    rb["qvpo"]["seeds"]["2"] = rb["qvpo"]["seeds"]["1"]   # a seed A did not train: left out
    (tmp_path / "b" / "race.json").write_text(json.dumps(rb))
    assert race.main(["--compare", a, b, "--out", str(tmp_path / "cmp")]) == 0
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert md == capsys.readouterr().out.strip() + "\n"
    assert "seeds 1 (" in md and "differ (A -> B): num_train_samples (32 -> 8)\n" in md
    # A ends at 10 (1,000 env steps), B at 3 (2,000); at 1,000 env steps B had 7 (at t = 5).
    assert "| 1 | 10 (1,000) | 3 (2,000) | 1,000 | 10 (1,000) | 7 (1,000) |" in md
    assert "| mean +- std | **10 +- 0** | **3 +- 0** | | **10 +- 0** | **7 +- 0** |" in md
    c = _saved_race(tmp_path, "c", 3)
    with pytest.raises(race.ConfigError, match="share no QVPO seed"):
        race.compare_races(race._load_race(a), race._load_race(c))
    assert race.main(["--compare", a, b, "--report", "--out", str(tmp_path)]) == 2
    assert "--compare reads two saved races" in capsys.readouterr().err
    assert race.main(["--compare", a, str(tmp_path / "nowhere")]) == 2
    assert "--compare: " in capsys.readouterr().err
    # Overrides would be ignored by a command that trains nothing: refused, each one named.
    assert race.main(["--compare", a, b, "--config.num_train_samples=8", "--seed", "3"]) == 2
    err = capsys.readouterr().err
    assert "--compare reads saved races and trains nothing: --config.num_train_samples, --seed" \
        in err
    assert race.main(["--report", "--out", str(tmp_path / "a"), "--sac.batch_size=64"]) == 2
    assert "--report reads saved races and trains nothing: --sac.batch_size" in \
        capsys.readouterr().err


def test_reused_qvpo_curves_need_the_same_config_budget_and_device(tmp_path):
    """--qvpo-from takes an earlier race's QVPO curves as they are (no cut): only from a race with
    the same resolved QVPO config (seed included), budget and device, each mismatch named."""
    a = _saved_race(tmp_path, "a", 2)
    cfg = {"seed": 2, "gamma": 0.997}
    got = race.reuse_qvpo(a, cfg, 10.0, "cpu")
    assert got["qvpo"]["seeds"]["2"][-1]["train_s"] == 10.0 and got["qvpo"]["compile_s"] == 52.0
    assert got["source"] == {"path": os.path.join(a, "race.json"), "command": "race --seed 2",
                             "budget_s": 10.0}
    for args, message in [(({"seed": 3, "gamma": 0.997}, 10.0, "cpu"), r"fields seed\)"),
                          (({"seed": 2, "gamma": 0.99, "tau": 1.0}, 10.0, "cpu"),
                           r"fields gamma, tau\)"),
                          ((cfg, 5.0, "cpu"), "ran 10 s per seed, this race --budget-s 5"),
                          ((cfg, 10.0, "NVIDIA H100"), "has device 'cpu'")]:
        with pytest.raises(race.ConfigError, match=message):
            race.reuse_qvpo(a, *args)
    # A race assembled from reused QVPO curves merges with others and says so in its report.
    b = _saved_race(tmp_path, "b", 1)
    r2 = json.loads((tmp_path / "a" / "race.json").read_text())
    r2["qvpo_from"] = got["source"]
    (tmp_path / "a" / "race.json").write_text(json.dumps(r2))
    out = tmp_path / "both"
    assert race.main(["--report", "--merge", b, a, "--out", str(out)]) == 0
    merged = json.loads((out / "race.json").read_text())
    assert merged["qvpo_from"]["command"] == "race --seed 2"
    assert [p["qvpo_from"] is None for p in merged["parts"]] == [True, False]
    assert "QVPO's curves were not (all) trained by this race" in (out / "race.md").read_text()


def test_qvpo_from_and_sac_from_join_two_races_without_training(tmp_path, monkeypatch):
    """--qvpo-from A --sac-from B trains nothing: QVPO's curves as A has them, SAC's cut at this
    budget from B, both sources in the report (e.g. a seed whose QVPO and SAC ran in different
    races, before a --merge over seeds)."""
    from mjx_qvpo.train import load_run_config
    monkeypatch.setattr(race, "run_qvpo", lambda *a, **k: pytest.fail("QVPO trained"))
    monkeypatch.setattr(race, "run_sac", lambda *a, **k: pytest.fail("SAC trained"))
    cfg = race.config_json(race.resolve(load_run_config("configs/cpu/hopper.py", {"seed": 1})))
    pts = [{"train_s": t, "env_steps": 100 * t, "return": t} for t in (0.0, 150.0, 301.0)]
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "race.json").write_text(json.dumps({
        "command": "race --no-sac", "task": "hopper", "device": "cpu", "budget_s": 300.0,
        "seeds": [1], "num_eval_envs": 8, "episode_length": 1000, "qvpo_config": cfg,
        "sac_settings": None, "qvpo": {"compile_s": 50.0, "seeds": {"1": pts}}}))
    (tmp_path / "s").mkdir()
    sac = _earlier_sac_race(tmp_path / "s")   # 600 s, cut here at 300 s
    out = tmp_path / "joined"
    assert race.main(["--config", "configs/cpu/hopper.py", "--budget-s", "300", "--seed", "1",
                      "--qvpo-from", str(tmp_path / "q"), "--sac-from", str(sac),
                      "--late-s", "100", "--out", str(out)]) == 0
    r = json.loads((out / "race.json").read_text())
    assert r["qvpo"]["seeds"]["1"] == pts and r["sac"]["seeds"]["1"][-1]["train_s"] == 301.0
    assert r["sac_settings"] == {"num_envs": 128}
    assert r["qvpo_from"]["command"] == "race --no-sac" and r["sac_from"]["budget_s"] == 600.0
    md = (out / "race.md").read_text()
    assert "SAC's curves were not (all) trained" in md and "QVPO's curves were not (all)" in md
    # QVPO's mean over its last 100 s: the evaluation at 301 s alone; SAC's: 211-301 s
    assert r["qvpo"]["summary"]["late_return_per_seed"] == [301.0]
    assert r["sac"]["summary"]["late_evals"] == [4]


@pytest.mark.parametrize("extra, message", [
    (["--no-sac"], "cannot be combined with --no-sac"),
    (["--vmap-seeds"], "cannot be combined with --no-sac, --vmap-seeds,"),
    (["--eval-samples", "1"], "--eval-target-actor or --eval-samples"),
    ([], "has another QVPO config (fields"),
])
def test_qvpo_from_bad_input_is_one_line_before_any_compile(capsys, tmp_path, extra, message):
    a = _saved_race(tmp_path, "a", 1)
    assert race.main(["--config", "configs/cpu/hopper.py", "--budget-s", "10", "--seed", "1",
                      "--qvpo-from", a, *extra, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def _fake_sac_train(calls, cut_after=None, clock=None):
    """A stand-in for ``race._sac_train``: each epoch takes 10 s of training clock, each
    evaluation 5 s; the first run (the warm-up) also compiles for 40 s (its first epoch) and 25 s
    (its first evaluation). With ``clock`` (a one-item list) these seconds advance it; with
    ``cut_after``, the timed run is killed after that many epochs."""
    def fake(task, settings, *, seed, num_epochs, epoch_env_steps, episode_length,
             num_eval_envs, progress_fn, ls_iterations=0):
        calls.append(epoch_env_steps)
        fake.ls_iterations.append(ls_iterations)
        warm_up, evals = len(calls) == 1, 0.0
        for e in range(min(num_epochs, 1000) + 1):
            if cut_after is not None and not warm_up and e > cut_after:
                raise KeyboardInterrupt   # the device call's time limit, say
            spent = (10.0 if e else 0.0) + (40.0 if warm_up and e == 1 else 0.0)
            this_eval = 5.0 + (25.0 if warm_up and e == 0 else 0.0)
            evals += this_eval
            if clock is not None:
                clock[0] += spent + this_eval
            progress_fn(e * epoch_env_steps, {"training/walltime": 10.0 * e,
                                              "eval/episode_reward": float(e),
                                              "eval/walltime": evals})
    fake.ls_iterations = []
    return fake


def test_sac_reports_each_evaluation_so_far_and_takes_its_epoch_size(monkeypatch):
    """run_sac rounds the epoch to its num_envs, passes the same epoch to the warm-up and the
    timed run, and hands the result so far (marked partial) to on_point after each timed
    evaluation; its final result is not marked. Its compile time is the warm-up's time (one
    epoch) less its epoch and its evaluations' running time."""
    calls, seen, clock = [], [], [0.0]
    monkeypatch.setattr(race, "_sac_train", _fake_sac_train(calls, clock=clock))
    monkeypatch.setattr(race.time, "perf_counter", lambda: clock[0])
    got = race.run_sac("hopper", {"num_envs": 128}, [3], 35.0, 1000, 1000, 8, log=lambda m: None,
                       on_point=seen.append)
    assert calls == [896, 896]   # warm-up and timed run, 1000 rounded down to 7 x 128
    assert [p["train_s"] for p in got["seeds"]["3"]] == [0.0, 10.0, 20.0, 30.0]  # 30 + 5 >= 35
    assert "partial" not in got and got["epoch_env_steps"] == 896 and len(got["eval_s"]) == 4
    assert got["warmup_s"] == 40.0 + 10.0 + 30.0 + 5.0 and got["warmup_eval_s"] == [30.0, 5.0]
    assert got["compile_s"] == 65.0   # the epoch's 40 s and the evaluator's 25 s
    assert [len(r["seeds"]["3"]) for r in seen] == [2, 3, 4] and all(r["partial"] for r in seen)
    assert seen[0]["compile_s"] == got["compile_s"] and seen[-1]["seeds"] == got["seeds"]


def test_sac_steps_the_same_physics_as_qvpo(monkeypatch):
    """run_sac hands QVPO's line-search cap (config field ls_iterations) to the warm-up and
    to every timed run, so both learners race on the same physics."""
    fake = _fake_sac_train([])
    monkeypatch.setattr(race, "_sac_train", fake)
    race.run_sac("hopper", {"num_envs": 128}, [3, 4], 25.0, 1000, 1000, 8, log=lambda m: None,
                 ls_iterations=8)
    assert fake.ls_iterations == [8, 8, 8]


def test_a_cut_off_sac_run_keeps_its_curve_so_far(monkeypatch, tmp_path):
    """A race whose SAC run is killed after two timed epochs has them in race.json (marked
    partial); --report draws them and says the run was cut; --sac-from refuses them. The
    epoch size comes from --sac-epoch-env-steps."""
    calls = []
    monkeypatch.setattr(race, "_sac_train", _fake_sac_train(calls, cut_after=2))
    monkeypatch.setattr(race, "run_qvpo", lambda *a, **k: {
        "compile_s": 1.0, "seeds": {"0": [{"train_s": 0.0, "env_steps": 0, "return": 1.0}]}})
    out = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        race.main(["--config", "configs/inverted_pendulum.py", "--budget-s", "100",
                   "--sac-epoch-env-steps", "2000", "--out", str(out)], log=lambda m: None)
    r = json.loads((out / "race.json").read_text())
    assert calls == [1984, 1984] and r["sac"]["partial"]   # 31 x its 64 envs
    assert [p["env_steps"] for p in r["sac"]["seeds"]["0"]] == [0, 1984, 3968]
    assert race.main(["--report", "--out", str(out)], log=lambda m: None) == 0
    md = (out / "race.md").read_text()
    assert "SAC's run was cut off before the budget" in md
    assert "| Brax SAC (cut off before the budget) | 2 +- 0 |" in md
    from mjx_qvpo.config import resolve
    from mjx_qvpo.train import load_run_config
    cfg = resolve(load_run_config("configs/inverted_pendulum.py", {}))
    with pytest.raises(race.ConfigError, match="cut off before its budget"):
        race.reuse_sac(str(out), cfg, [0], 20.0, r["device"])


@pytest.mark.parametrize("extra, message", [
    (["--sac-epoch-env-steps", "0"], "--sac-epoch-env-steps must be >= 1, got 0"),
    (["--sac-epoch-env-steps", "512", "--no-sac"], "cannot be combined with --no-sac"),
])
def test_sac_epoch_bad_input_is_one_line(capsys, tmp_path, extra, message):
    assert race.main(["--config", "configs/inverted_pendulum.py", "--budget-s", "5", *extra,
                      "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_short_race_writes_both_curves(tmp_path):
    """Both learners train on inverted_pendulum for a few seconds each and are evaluated on the
    same protocol; race.json holds both curves and race.png is drawn."""
    out = tmp_path / "race"
    assert race.main(["--config", "configs/inverted_pendulum.py", "--budget-s", "4",
                      "--config.log_every_env_steps=512", "--config.num_eval_envs=2",
                      "--config.episode_length=200", "--out", str(out)]) == 0
    r = json.loads((out / "race.json").read_text())
    for name in ("qvpo", "sac"):
        pts = r[name]["seeds"]["0"]
        assert pts[0]["train_s"] == 0.0 and len(pts) >= 2
        assert all(b["env_steps"] > a["env_steps"] for a, b in zip(pts, pts[1:]))
        assert pts[-1]["train_s"] > 2.0 and r[name]["compile_s"] > 0
        assert all(0.0 <= p["return"] <= 200.0 for p in pts)
        if name == "qvpo":   # the episodes' spread around each evaluation's mean
            assert all(p["return_min"] <= p["return"] <= p["return_max"] for p in pts)
            # and the losses of the chunk before each evaluation after the first
            assert "train" not in pts[0] and all(p["train"]["critic_loss"] >= 0 for p in pts[1:])
        # Each evaluation's wall-clock (off the training clock) and the learner's whole time.
        assert len(r[name]["eval_s"]) == len(pts) and all(t > 0 for t in r[name]["eval_s"])
        assert r[name]["wall_s"] > pts[-1]["train_s"] + sum(r[name]["eval_s"])
    assert (out / "race.png").stat().st_size > 10_000
    assert (out / "race.md").read_text().count("s of wall-clock in all") == 2
    # SAC alone, QVPO's curves reused from the race above (same config, budget and device).
    again = tmp_path / "sac_only"
    assert race.main(["--config", "configs/inverted_pendulum.py", "--budget-s", "4",
                      "--config.log_every_env_steps=512", "--config.num_eval_envs=2",
                      "--config.episode_length=200", "--qvpo-from", str(out),
                      "--out", str(again)]) == 0
    r2 = json.loads((again / "race.json").read_text())
    assert r2["qvpo"]["seeds"] == r["qvpo"]["seeds"] and r2["qvpo_from"]["path"].startswith(str(out))
    assert "wall_s" not in r2["qvpo"] and "wall_s" in r2["sac"]   # only what this race ran
    assert r2["sac"]["seeds"]["0"][-1]["train_s"] > 2.0


def test_fresh_compile_cache_is_used_even_after_earlier_compiles():
    """JAX opens its persistent cache at a process's first compile and ignores a later change of
    directory: the race's cache must still receive the programs compiled inside it (SAC's timed
    runs load them from there), and the process's own cache be in use again after it."""
    import jax
    import jax.numpy as jnp

    def compile_new(scale):   # a program no cache holds yet
        jax.jit(lambda x: x * scale + 1.0).lower(jnp.ones(7)).compile()

    before = jax.config.jax_compilation_cache_dir
    compile_new(3.0)          # the process's cache is open (the suite's, from conftest)
    with race.fresh_compile_cache() as cache:
        assert jax.config.jax_compilation_cache_dir == cache and os.listdir(cache) == []
        compile_new(5.0)
        assert os.listdir(cache), "the race's cache received nothing"
    assert not os.path.exists(cache) and jax.config.jax_compilation_cache_dir == before
    old, min_s = set(os.listdir(before)), jax.config.jax_persistent_cache_min_compile_time_secs
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)   # keep a tiny program
    try:
        compile_new(11.0)
    finally:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", min_s)
    assert set(os.listdir(before)) - old, "the process's own cache is not in use after the race"
