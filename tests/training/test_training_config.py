"""Config tree: YAML, overrides, presets, and clear errors on bad values."""

from __future__ import annotations

import pytest

from excavation_training.config import ConfigError, TrainConfig, apply_preset


def test_defaults_follow_the_paper():
    cfg = TrainConfig().validate()
    assert cfg.prpd.resolutions_mm == (70.0, 60.0, 50.0, 40.0, 30.0, 20.0, 10.0)
    assert cfg.prpd.success_threshold == 0.95 and cfg.prpd.max_iterations_per_stage == 400
    assert cfg.prpd.alpha_0 == 2.0 and cfg.prpd.alpha_mode == "dynamic"
    assert cfg.ppo.clip_param == 0.2 and cfg.ppo.gamma == 0.99 and cfg.ppo.schedule == "adaptive"
    assert cfg.env.num_envs == 128 and cfg.runner.steps_per_iteration == 128


def test_yaml_round_trip_and_overrides(tmp_path):
    cfg = TrainConfig()
    cfg.apply_overrides(["ppo.learning_rate=3e-4", "prpd.resolutions_mm=[70, 40, 10]", "runner.tensorboard=false",
                         "env.options.physics.substeps=4", "policy.actor_hidden_dims=64,64"])
    assert cfg.ppo.learning_rate == 3e-4 and cfg.prpd.resolutions_mm == (70.0, 40.0, 10.0)
    assert cfg.runner.tensorboard is False and cfg.env.options == {"physics.substeps": 4}
    assert cfg.policy.actor_hidden_dims == (64, 64)
    path = tmp_path / "c.yaml"
    cfg.to_yaml(path)
    again = TrainConfig.from_yaml(path)
    assert again == cfg


@pytest.mark.parametrize(
    "override, message",
    [
        ("ppo.learning_rate=-1", "ppo.learning_rate must be > 0"),
        ("ppo.learning_rate=fast", "ppo.learning_rate must be a number"),
        ("prpd.resolutions_mm=[10, 70]", "strictly decreasing"),
        ("prpd.resolutions_mm=[]", "at least one resolution"),
        ("prpd.success_threshold=1.5", r"prpd.success_threshold must be in \[0.0, 1.0\]"),
        ("prpd.alpha_mode=sometimes", "prpd.alpha_mode must be one of \\['dynamic', 'fixed'\\]"),
        ("prpd.alpha_fixed=2", "prpd.alpha_fixed must be in"),
        ("prpd.max_iterations_per_stage=0", "prpd.max_iterations_per_stage must be a positive integer"),
        ("prpd.max_iterations_per_stage=2.5", "must be an integer"),
        ("ppo.lr=1e-3", "unknown config key 'ppo.lr'"),
        ("nonsense.key=1", "unknown config key 'nonsense'"),
        ("env.name=mujoco", "env.name must be one of"),
        ("runner.tensorboard=maybe", "runner.tensorboard must be a boolean"),
        ("ppo.num_mini_batches=100000", "must not exceed the samples per iteration"),
        ("q.target=montecarlo", "q.target must be one of"),
        ("policy.actor_hidden_dims=[]", "policy.actor_hidden_dims must be a non-empty list"),
        ("ppo", "must look like key.path=value"),
    ],
)
def test_bad_values_name_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig().apply_overrides([override]).validate()


def test_bad_yaml_names_the_key(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("ppo:\n  clip: 0.3\n")
    with pytest.raises(ConfigError, match="unknown config key 'ppo.clip'"):
        TrainConfig.from_yaml(p)
    p.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        TrainConfig.from_yaml(p)
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.from_yaml(tmp_path / "missing.yaml")


def test_presets():
    assert apply_preset(TrainConfig(), "alpha0").prpd.alpha_fixed == 0.0
    cpu = apply_preset(TrainConfig(), "cpu").validate()
    assert cpu.env.num_envs * cpu.runner.steps_per_iteration < 128 * 128
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        apply_preset(TrainConfig(), "huge")


def test_excavation_env_options_are_checked_against_the_env_config():
    pytest.importorskip("excavation_sim.config")
    from excavation_training.runners import build_eval_factory

    cfg = TrainConfig().apply_overrides(["env.options.physics.substepz=4"])
    with pytest.raises(ConfigError, match="env.options: unknown config key 'physics.substepz'"):
        build_eval_factory(cfg)
