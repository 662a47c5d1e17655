"""Config tree: YAML, overrides, presets, and clear errors on bad values."""

from __future__ import annotations

import pytest

from excavation_training.config import ConfigError, TrainConfig, apply_preset, set_dotted


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
    assert cfg.runner.tensorboard is False and cfg.env.options == {"physics": {"substeps": 4}}
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
        ("policy.actor_hidden_dims=[64, x]", r"policy.actor_hidden_dims\[1\] must be an integer, got 'x'"),
        ("ppo.critic_learning_rate=fast", "ppo.critic_learning_rate must be a number or null, got 'fast'"),
        ("ppo=3", r"ppo must be a section of \['num_learning_epochs'.*got 3"),
        ("env.options=3", "env.options must be a mapping"),
        ("ppo.learning_rate=[1", "override ppo.learning_rate: cannot parse value '\\[1'"),
        ("runner.log_dir=${nope}", "runner.log_dir: Interpolation key 'nope' not found"),
    ],
)
def test_bad_values_name_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig().apply_overrides([override]).validate()


def test_overrides_convert_through_omegaconf():
    cfg = TrainConfig().apply_overrides(["ppo.critic_learning_rate=null", "prpd.resolutions_mm=10",
                                         "runner.log_dir=runs/${env.name}", "env.num_envs='32'"])
    assert cfg.ppo.critic_learning_rate is None and cfg.prpd.resolutions_mm == (10.0,)
    assert cfg.runner.log_dir == "runs/excavation" and cfg.env.num_envs == 32
    assert TrainConfig().apply_overrides({"policy.critic_hidden_dims": [8, 8]}).policy.critic_hidden_dims == (8, 8)
    # set_dotted takes strings as bench/prpd_vs_fixed.py passes them.
    set_dotted(cfg, "prpd.resolutions_mm", "[70,40,10]")
    set_dotted(cfg, "runner.progress", "false")
    set_dotted(cfg, "prpd.success_threshold", "0.9")
    assert cfg.prpd.resolutions_mm == (70.0, 40.0, 10.0) and cfg.runner.progress is False
    assert cfg.prpd.success_threshold == 0.9
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_bad_yaml_names_the_key(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("ppo:\n  clip: 0.3\n")
    with pytest.raises(ConfigError, match="unknown config key 'ppo.clip'"):
        TrainConfig.from_yaml(p)
    p.write_text("ppo:\n  learning_rate: [1\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        TrainConfig.from_yaml(p)
    p.write_text("prpd:\n  resolutions_mm: [70, x]\n")
    with pytest.raises(ConfigError, match=r"prpd.resolutions_mm\[1\] must be a number, got 'x'"):
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


def test_env_options_nested_or_dotted_reach_the_env_config(tmp_path):
    pytest.importorskip("excavation_sim.config")
    from excavation_training.runners.env_factory import dotted_options, excavation_env_config

    assert dotted_options({"physics": {"substeps": 4}, "scene.rock_xy": [0.01, 0.0], "a": {}}) == {
        "physics.substeps": 4, "scene.rock_xy": [0.01, 0.0], "a": {}}
    nested = TrainConfig().apply_overrides(["env.options.physics.substeps=4", "env.options.scene.rock_xy=[0.01, 0]"])
    p = tmp_path / "old.yaml"  # the dotted form that configs and checkpoints written before OmegaConf hold
    p.write_text("env:\n  options:\n    physics.substeps: 4\n    scene.rock_xy: [0.01, 0]\n")
    for cfg in (nested, TrainConfig.from_yaml(p)):
        env_cfg = excavation_env_config(cfg, num_envs=3)
        assert env_cfg.physics.substeps == 4 and env_cfg.scene.rock_xy == (0.01, 0.0) and env_cfg.num_envs == 3
    bad = TrainConfig().apply_overrides(["env.options.scene.rock_xy=[0.01]"])
    with pytest.raises(ConfigError, match=r"env.options: scene.rock_xy must be a list of 2 numbers, got \[0.01\]"):
        excavation_env_config(bad)
    bad = TrainConfig().apply_overrides(["env.options.physics.substeps=many"])
    with pytest.raises(ConfigError, match="env.options: physics.substeps must be an integer, got 'many'"):
        excavation_env_config(bad)
