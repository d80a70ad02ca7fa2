"""Config files, validation and the saved-config round trip (no compilation here)."""

import glob
import json

import pytest

from mjx_qvpo.config import (ConfigError, apply_overrides, derive, first_update_env_steps,
                             from_json, load_config_file, resolve, to_json)


@pytest.mark.parametrize("path", sorted(glob.glob("configs/**/*.py", recursive=True)))
def test_every_config_file_validates(path):
    cfg = resolve(load_config_file(path))
    assert cfg.workdir  # filled in by resolve
    d = derive(cfg)
    assert d.total_env_steps >= cfg.total_env_steps
    assert d.update_to_data == cfg.updates_per_step / cfg.num_envs


def test_paper_task_configs_use_the_paper_learner():
    for task in ("humanoid", "ant", "halfcheetah", "hopper", "walker2d"):
        c = load_config_file(f"configs/{task}.py")
        assert c.task == task
        assert (c.batch_size, c.diffusion_steps, c.num_train_samples, c.num_behavior_samples,
                c.num_target_samples, c.num_eval_samples, c.num_entropy_samples) == (
                    256, 20, 64, 4, 4, 32, 10)
        assert (c.actor_lr, c.critic_lr, c.adam_eps, c.grad_clip, c.gamma, c.tau) == (
            1e-4, 3e-4, 1e-5, 2.0, 0.99, 0.005)
        assert c.warmup_env_steps == 10_000 and c.q_transform == "qadv"


def test_saved_config_round_trips_and_old_files_get_new_defaults():
    cfg = resolve(apply_overrides(load_config_file("configs/bandit.py"),
                                  {"network.actor_hidden": (32, 16), "seed": 3}))
    assert from_json(to_json(cfg)).to_dict() == cfg.to_dict()
    saved = json.loads(to_json(cfg))
    del saved["num_devices"]                    # a file written before the field existed
    assert from_json(json.dumps(saved)).num_devices == 0
    saved["num_envz"] = 3                       # a field that does not exist
    with pytest.raises(ConfigError, match="unknown config field 'num_envz'"):
        resolve(from_json(json.dumps(saved)))


@pytest.mark.parametrize("override, message", [
    ({"num_chosen": 65}, "'num_chosen' must be <= num_train_samples"),
    ({"buffer_size": 10}, "'buffer_size' must be >= num_envs"),
    ({"actor_update_every": 3}, "'actor_update_every' must divide updates_per_step"),
    ({"matmul_precision": "fp8"}, "'matmul_precision' must be one of"),
    ({"network.time_dim": 5}, "'network.time_dim' must be an even integer"),
    ({"normalize_observations": 1}, "'normalize_observations' must be true or false"),
    ({"bandit.widths": (0.1, 0.1)}, "must have the same length"),
    ({"ls_iterations": -1}, "'ls_iterations' must be an integer >= 0"),
    ({"task": "bandit", "ls_iterations": 8}, "'ls_iterations': task 'bandit' has no physics"),
])
def test_relations_and_types_are_checked(override, message):
    with pytest.raises(ConfigError) as e:
        resolve(apply_overrides(load_config_file("configs/humanoid.py"), override))
    assert message in str(e.value)


def test_first_update_counts_whole_training_steps():
    c = load_config_file("configs/humanoid.py")
    c.num_envs, c.warmup_env_steps = 1000, 2500
    assert first_update_env_steps(c) == 3000
