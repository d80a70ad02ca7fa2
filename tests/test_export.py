"""`python -m mjx_qvpo.export` and `mjx_qvpo.load_policy`: a tiny run's checkpoint exported,
loaded and acted with gives the checkpoint's own policy's actions; the file holds no buffer or
optimizer state; evaluate and render accept the file."""

import json
import os

import numpy as np
import pytest

import mjx_qvpo
from mjx_qvpo import evaluate, export
from mjx_qvpo.config import ConfigError
from test_render import make_tiny_run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny run whose checkpoint has a non-trivial observation normalizer (make_tiny_run's is
    zeros), so that the round trip shows the normalizer travelling with the policy."""
    import jax

    from envs.quiet import import_mjx_quietly
    from mjx_qvpo import checkpoint, runs

    import_mjx_quietly()  # before this test's own brax import
    from brax.training.acme import running_statistics

    workdir = make_tiny_run(tmp_path_factory.mktemp("export") / "run", step=32,
                            normalize_observations=True)
    _, trainer, state, _ = runs.load_state(workdir)
    obs = 1.0 + 3.0 * jax.random.normal(jax.random.PRNGKey(0), (64, trainer.env.observation_size))
    fresh = running_statistics.init_state(jax.ShapeDtypeStruct(obs.shape[1:], obs.dtype))
    normalizer = jax.tree.map(lambda new, old: jax.numpy.asarray(new, old.dtype),
                              running_statistics.update(fresh, obs), state.normalizer)
    state = state.replace(normalizer=normalizer)
    checkpoint.save(os.path.join(workdir, "checkpoints"), state, 32)
    return workdir


def test_export_load_act_round_trip(tiny_run, tmp_path):
    import jax

    from mjx_qvpo import acting, runs

    out = tmp_path / "policy.npz"
    assert export.main(["--workdir", tiny_run, "--out", str(out)]) == 0
    ckpt = os.path.join(tiny_run, "checkpoints", "ckpt_000000000032.npz")
    assert out.stat().st_size < 100_000 < os.path.getsize(ckpt) or \
        out.stat().st_size < os.path.getsize(ckpt) / 2
    with np.load(out) as f:
        meta = json.loads(str(f["__meta__"]))
        assert meta["step"] == 32 and meta["task"] == "inverted_pendulum"
        for path in meta["paths"]:  # actor, critic, normalizer only
            assert path.startswith(("[0]", "[1]", "[2]")), path
        assert not any("buffer" in p or "opt" in p or "target" in p for p in meta["paths"])
        assert len(f.files) == len(meta["paths"]) + 2

    cfg, trainer, state, _ = runs.load_state(tiny_run)
    expected_fn = jax.jit(acting.make_inference_fn(trainer.nets, cfg.num_eval_samples)(
        trainer.policy_params(state)))
    policy = jax.jit(mjx_qvpo.load_policy(str(out)))
    obs = jax.random.normal(jax.random.PRNGKey(3), (5, trainer.env.observation_size))
    key = jax.random.PRNGKey(4)
    a = np.asarray(policy(obs, key))
    np.testing.assert_array_equal(a, np.asarray(expected_fn(obs, key)))
    assert a.shape == (5, trainer.env.action_size) and np.all(np.abs(a) <= 1)
    one = np.asarray(mjx_qvpo.load_policy(str(out))(obs[0], key))
    assert one.shape == (trainer.env.action_size,)


def test_export_default_out_and_bad_input(tiny_run, tmp_path, capsys):
    assert export.main([tiny_run]) == 0  # positional RUN, default RUN/policy_<step>.npz
    assert os.path.exists(os.path.join(tiny_run, "policy_32.npz"))
    capsys.readouterr()
    for args, message in [(["--workdir", str(tmp_path / "nope")], "is not a run directory"),
                          (["--workdir", tiny_run, "--checkpoint", "5"], "no checkpoint at env "
                                                                           "step 5"),
                          (["--workdir", tiny_run, "--out", "x.pt"], "--out must end in .npz"),
                          ([], "give the run directory")]:
        assert export.main(args) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    bogus = tmp_path / "bogus.npz"
    np.savez(bogus, x=np.zeros(2))
    with pytest.raises(ConfigError, match="is not an exported policy"):
        export.load_policy(str(bogus))


@pytest.mark.slow  # two MJX evaluation compiles: about 1.5 minutes on a shared 2-core CPU
def test_evaluate_accepts_an_exported_policy(tiny_run, tmp_path):
    """Same episodes, same returns: the policy file and the run act through the same code."""
    out = str(tmp_path / "p.npz")
    export.export_policy(tiny_run, out)
    from_run = evaluate.evaluate_run(tiny_run, 2, seed=1)
    from_file = evaluate.evaluate_run(out, 2, seed=1)
    assert from_file["returns"] == from_run["returns"]
    assert from_file["checkpoint"] == 32
    assert evaluate.default_out(out, 32) == str(tmp_path / "p_eval.json")


@pytest.mark.slow  # an MJX rollout compile and off-screen drawing: about a minute on the CPU
def test_render_accepts_an_exported_policy(tiny_run, tmp_path):
    from mjx_qvpo import render
    out = str(tmp_path / "p.npz")
    export.export_policy(tiny_run, out)
    assert render.main(["--policy", out, "--steps", "5", "--width", "32", "--height", "32"]) == 0
    assert os.path.getsize(str(tmp_path / "p.mp4")) > 0  # default output beside the file
