"""Checkpoints: atomic writes, pruning, corrupt-file fallback, a full disk (issue 7)."""

import errno
import os

import jax.numpy as jnp
import numpy as np
import pytest

from mjx_qvpo import checkpoint


def _state(v):
    return {"params": {"w": jnp.full((3, 2), v, jnp.float32)}, "step": jnp.asarray(int(v), jnp.int32),
            "buffer": {"data": jnp.full((4,), v)}}


def test_save_load_round_trip_and_keep_the_newest(tmp_path):
    d = str(tmp_path)
    for step in (10, 20, 30, 40):
        checkpoint.save(d, _state(step), step, keep=3)
    assert [s for s, _ in checkpoint.list_checkpoints(d)] == [20, 30, 40]
    state, step = checkpoint.restore_latest(d, _state(0))
    assert step == 40 and float(state["params"]["w"][0, 0]) == 40.0
    assert state["step"].dtype == np.int32


def test_skipped_leaves_come_back_as_zeros(tmp_path):
    checkpoint.save(str(tmp_path), _state(5), 5, skip=("['buffer']",))
    state, _ = checkpoint.restore_latest(str(tmp_path), _state(0))
    assert float(state["params"]["w"][0, 0]) == 5.0
    np.testing.assert_array_equal(state["buffer"]["data"], 0.0)


def test_corrupt_latest_is_reported_and_the_previous_one_used(tmp_path, capsys):
    d = str(tmp_path)
    checkpoint.save(d, _state(1), 1)
    path = checkpoint.save(d, _state(2), 2)
    with open(path, "r+b") as f:  # a truncated file, as a crash in the middle of a copy leaves
        f.truncate(100)
    state, step = checkpoint.restore_latest(d, _state(0))
    assert step == 1 and float(state["params"]["w"][0, 0]) == 1.0
    assert "unreadable" in capsys.readouterr().err


def test_wrong_layout_is_refused(tmp_path):
    checkpoint.save(str(tmp_path), _state(1), 1)
    other = {"params": {"w": jnp.zeros((3, 2))}}
    with pytest.raises(ValueError, match="does not match"):
        checkpoint.load(checkpoint.list_checkpoints(str(tmp_path))[0][1], other)


def test_partial_write_is_never_taken_for_a_checkpoint(tmp_path):
    d = str(tmp_path)
    checkpoint.save(d, _state(1), 1)
    # What `kill -9` during a save leaves behind: a temporary file, never a ckpt_*.npz.
    open(os.path.join(d, ".tmp_ckpt_abc"), "wb").write(b"partial")
    assert [s for s, _ in checkpoint.list_checkpoints(d)] == [1]


def test_full_disk_is_a_clear_error_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    d = str(tmp_path)
    checkpoint.save(d, _state(1), 1)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(np, "savez", no_space)
    with pytest.raises(checkpoint.CheckpointError, match="No space left on device.*intact"):
        checkpoint.save(d, _state(2), 2)
    monkeypatch.undo()
    assert sorted(os.listdir(d)) == ["ckpt_000000000001.npz"]  # no temporary file left
    _, step = checkpoint.restore_latest(d, _state(0))
    assert step == 1


def test_layout_mismatch_is_not_taken_for_a_corrupt_file(tmp_path, capsys):
    d = str(tmp_path)
    checkpoint.save(d, _state(1), 1)
    checkpoint.save(d, {"params": {"w": jnp.zeros((5, 2))}, "step": jnp.asarray(2, jnp.int32),
                        "buffer": {"data": jnp.zeros((4,), jnp.int32)}}, 2)
    # The newest checkpoint reads fine but has another shape: an error, no silent fall back to 1.
    with pytest.raises(checkpoint.LayoutError, match=r"\['params'\]\['w'\] has shape \(5, 2\)"):
        checkpoint.restore_latest(d, _state(0))
    assert "unreadable" not in capsys.readouterr().err


def test_older_checkpoint_gets_defaults_for_leaves_added_since(tmp_path, capsys):
    d = str(tmp_path)
    checkpoint.save(d, _state(3), 3)
    newer = {**_state(0), "window": {"count": jnp.zeros((), jnp.int32)},
             "horizon": jnp.zeros((), jnp.int32)}
    state, step = checkpoint.restore_latest(d, newer, defaults={"['window']": 0,
                                                                "['horizon']": 500})
    assert step == 3 and float(state["params"]["w"][0, 0]) == 3.0
    assert int(state["horizon"]) == 500 and int(state["window"]["count"]) == 0
    assert "predates" in capsys.readouterr().err
    with pytest.raises(checkpoint.LayoutError, match="does not match"):
        checkpoint.restore_latest(d, newer, defaults={"['window']": 0})  # horizon has no default


def test_background_saver_copies_first_and_reports_write_errors(tmp_path, monkeypatch):
    d = str(tmp_path)
    saver = checkpoint.BackgroundSaver(d, keep=2)
    for step in (1, 2, 3):
        host = {"params": {"w": np.full((3, 2), step, np.float32)},
                "step": np.asarray(step, np.int32), "buffer": {"data": np.full((4,), step, np.int32)}}
        saver.submit(host, step)
        host["params"]["w"][:] = -1.0  # what the next chunk does to reused buffers: not saved
    saver.wait()
    assert [s for s, _ in checkpoint.list_checkpoints(d)] == [2, 3]
    state, step = checkpoint.restore_latest(d, _state(0))
    assert step == 3 and float(state["params"]["w"][0, 0]) == 3.0

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(np, "savez", no_space)
    saver.submit(_state(4), 4)
    with pytest.raises(checkpoint.CheckpointError, match="No space left"):
        saver.wait()
    assert [s for s, _ in checkpoint.list_checkpoints(d)] == [2, 3]
