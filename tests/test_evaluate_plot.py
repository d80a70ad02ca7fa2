"""`python -m mjx_qvpo.evaluate` on a tiny checkpoint and `python -m mjx_qvpo.plot` on handmade
metrics files (no training needed)."""

import json
import os

import numpy as np
import pytest

from mjx_qvpo import evaluate, plot
from mjx_qvpo.config import load_config_file, resolve, to_json
from test_render import make_tiny_run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("evaluate") / "run", step=64)


def test_evaluate_cli_prints_and_writes_the_statistics(run_cli, tiny_run, tmp_path):
    out = tmp_path / "sub" / "eval.json"
    r = run_cli("mjx_qvpo.evaluate", "--workdir", tiny_run, "--episodes", 3, "--out", out)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(out.read_text())
    assert set(evaluate.SUMMARY_KEYS) <= set(s)
    assert s["task"] == "inverted_pendulum" and s["checkpoint"] == 64 and s["episodes"] == 3
    assert s["num_eval_samples"] == 2 and s["episode_length"] == 30
    returns = np.array(s["returns"])
    assert len(returns) == 3 and len(s["lengths"]) == 3
    assert all(1 <= n <= 30 for n in s["lengths"])
    # inverted_pendulum pays 1 per step alive, so each return is its episode's length.
    np.testing.assert_allclose(returns, s["lengths"])
    assert s["return_mean"] == pytest.approx(returns.mean())
    assert s["return_std"] == pytest.approx(returns.std())
    assert (s["return_min"], s["return_max"]) == (returns.min(), returns.max())
    assert "over 3 episodes" in r.stdout and f"{s['return_mean']:.6g}" in r.stdout


def test_evaluate_samples_overrides_k_eval(monkeypatch, tiny_run):
    """--samples K acts best-of-K instead of the run's num_eval_samples (2 in the tiny run)."""
    from mjx_qvpo import acting

    asked = []
    make = acting.make_inference_fn
    monkeypatch.setattr(acting, "make_inference_fn",
                        lambda nets, k: asked.append(k) or make(nets, k))
    s = evaluate.evaluate_run(tiny_run, 2, samples=5)
    assert asked[-1] == 5 and s["num_eval_samples"] == 5  # the last policy built is the one run
    assert "best-of-5" in evaluate.describe(s) and len(s["returns"]) == 2
    assert s["run_num_eval_samples"] == 2
    assert evaluate.default_out(tiny_run, 64, 5) == os.path.join(tiny_run, "eval_64_k5.json")
    assert evaluate.default_out(tiny_run, 64) == os.path.join(tiny_run, "eval_64.json")


@pytest.mark.parametrize("args, message", [
    (["--workdir", "/nonexistent/run", "--episodes", "2"], "is not a run directory"),
    (["--workdir", "RUN", "--episodes", "2", "--checkpoint", "5"], "no checkpoint at env step 5"),
    (["--workdir", "RUN", "--episodes", "0"], "--episodes must be an integer >= 1"),
    (["--workdir", "RUN", "--episodes", "2", "--samples", "0"],
     "--samples must be an integer >= 1"),
    (["--workdir", "RUN", "--episodes", "two"], "invalid int value"),
    (["--workdir", "RUN"], "--episodes"),
])
def test_evaluate_bad_input_is_one_line_and_exit_2(capsys, tiny_run, args, message):
    args = [tiny_run if a == "RUN" else a for a in args]
    assert evaluate.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ") and err.count("\n") == 1


def test_evaluate_cli_bad_input_has_no_traceback(run_cli, tmp_path):
    os.makedirs(tmp_path / "run")
    (tmp_path / "run" / "config.json").write_text(
        to_json(resolve(load_config_file("configs/inverted_pendulum.py"))))
    r = run_cli("mjx_qvpo.evaluate", "--workdir", tmp_path / "run", "--episodes", 2, timeout=300)
    assert r.returncode == 2 and "holds no checkpoint" in r.stderr
    assert "Traceback" not in r.stderr


# ------------------------------------------------------------------------------------- plot
def fake_run(root, name, seed=0, lr=3e-4, evals=(10.0, 30.0, 50.0), wall_scale=1.0):
    """A run directory with a real config and a handmade metrics file (train rows between
    eval rows, as train writes them)."""
    workdir = os.path.join(root, name)
    os.makedirs(workdir)
    cfg = load_config_file("configs/inverted_pendulum.py")
    cfg.seed, cfg.workdir, cfg.critic_lr = seed, workdir, lr
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(to_json(resolve(cfg)))
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        for i, ret in enumerate(evals):
            step = 1000 * (i + 1)
            f.write(json.dumps({"env_steps": step - 500, "wall_time": wall_scale * (step - 500),
                                "train/episode_return": ret / 2}) + "\n")
            f.write(json.dumps({"env_steps": step, "wall_time": wall_scale * step,
                                "train/episode_return": ret / 2,
                                "eval/episode_return": ret}) + "\n")
    return workdir


def _png_size(path):
    import imageio.v2 as imageio
    return imageio.imread(path).shape


def test_plot_cli_writes_png_and_svg(run_cli, tmp_path):
    a = fake_run(tmp_path, "a", seed=0)
    b = fake_run(tmp_path, "b", seed=1, evals=(20.0, 40.0, 80.0))
    c = fake_run(tmp_path, "c", lr=1e-3, evals=(5.0, 6.0, 7.0))
    out = tmp_path / "plots" / "curve.png"
    r = run_cli("mjx_qvpo.plot", a, b, c, "--out", out, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    h, w, _ = _png_size(str(out))
    assert h > 200 and w > 300
    svg = (tmp_path / "plots" / "curve.svg").read_text()
    for text in ("environment steps", "evaluation return", "QVPO learning curve",
                 "2 seeds, mean ± std", "critic_lr=0.0003", "critic_lr=0.001"):
        assert text in svg, text


def test_plot_groups_seeds_and_averages(tmp_path):
    a = fake_run(tmp_path, "a", seed=0)
    b = fake_run(tmp_path, "b", seed=1, evals=(20.0, 40.0, 80.0))
    c = fake_run(tmp_path, "c", lr=1e-3)
    groups = plot.group_runs([a, c, b])
    assert [g["runs"] for g in groups] == [[a, b], [c]]
    assert groups[0]["label"] == "inverted_pendulum, critic_lr=0.0003"
    x, mean, std = plot.aggregate([plot.load_curve(a), plot.load_curve(b)])
    np.testing.assert_array_equal(x, [1000, 2000, 3000])
    np.testing.assert_allclose(mean, [15, 35, 65])
    np.testing.assert_allclose(std, [5, 5, 15])
    # wall-clock x values differ between seeds: interpolated on the common range
    d = fake_run(tmp_path, "d", seed=2, wall_scale=2.0)
    x, mean, _ = plot.aggregate([plot.load_curve(a, x="wall_time"),
                                 plot.load_curve(d, x="wall_time")])
    assert x[0] == 2000 and x[-1] == 3000
    np.testing.assert_allclose(mean[0], (30 + 10) / 2)


def test_plot_wall_time_and_train_metric(tmp_path):
    a = fake_run(tmp_path, "a")
    paths = plot.plot_runs([a], str(tmp_path / "p.svg"), x="wall_time",
                           metric="train/episode_return")
    assert paths == [str(tmp_path / "p.png"), str(tmp_path / "p.svg")]
    svg = open(paths[1]).read()
    assert "wall-clock time" in svg and "training episode return" in svg and "1 seed" in svg


@pytest.mark.parametrize("make_args, message", [
    (lambda t: [str(t / "missing")], "does not exist"),
    (lambda t: [fake_run(t, "r", evals=())], "has no 'eval/episode_return' values"),
    (lambda t: [fake_run(t, "r"), "--x", "steps"], "invalid choice"),
])
def test_plot_bad_input_is_one_line_and_exit_2(capsys, tmp_path, make_args, message):
    assert plot.main([*make_args(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ") and err.count("\n") == 1


def test_plot_misspelled_metric_suggests_the_nearest_keys(capsys, tmp_path):
    a = fake_run(tmp_path, "a")
    assert plot.main([a, "--metric", "eval/episode_retrun", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "did you mean 'eval/episode_return'" in err
    assert "its keys: env_steps, eval/episode_return, train/episode_return, wall_time" in err
    assert not (tmp_path / "x.png").exists()


def test_plot_takes_workdir_flags_and_defaults_outside_results(tmp_path):
    a = fake_run(tmp_path, "a")
    assert plot.default_out([a], "env_steps") == os.path.join("runs", "plots",
                                                               "inverted_pendulum_env_steps.png")
    assert plot.main(["--workdir", a, "--out", str(tmp_path / "w.png")]) == 0
    assert (tmp_path / "w.png").exists()
