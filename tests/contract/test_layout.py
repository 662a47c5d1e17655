"""The contract's layout: one pack/unpack for numpy and torch, and no dependency on ROS or the simulator."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import excavation_contract as contract


def test_pack_puts_every_field_where_the_layout_says():
    tip, pitch, rock, rib = np.array([0.1, -0.2, 0.3]), 0.4, np.array([-0.05, 0.06, -0.07]), 1.0
    obs = contract.pack_observation(bucket_tip=tip, bucket_pitch=pitch, rock=rock, rock_in_bucket=rib)
    idx = contract.OBS_INDEX
    expected = {"bucket_tip_x": 0.1, "bucket_tip_y": -0.2, "bucket_tip_z": 0.3, "bucket_pitch": 0.4,
                "rock_x": -0.05, "rock_y": 0.06, "rock_z": -0.07, "rock_in_bucket": 1.0}
    assert set(expected) == set(idx), "the test lists every observation field"
    assert obs.shape == (contract.OBS_DIM,) and obs.dtype == np.float32
    for name, value in expected.items():
        assert obs[idx[name]] == pytest.approx(value), name


def test_numpy_and_torch_give_the_same_batch_and_unpack_inverts_pack():
    rng = np.random.default_rng(0)
    parts = {"bucket_tip": rng.normal(size=(5, 3)), "bucket_pitch": rng.normal(size=5),
             "rock": rng.normal(size=(5, 3)), "rock_in_bucket": (rng.random(5) > 0.5).astype(float)}
    a = contract.pack_observation(**parts)
    t = contract.pack_observation(**{k: torch.as_tensor(v) for k, v in parts.items()})
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.shape == (5, contract.OBS_DIM)
    np.testing.assert_allclose(t.numpy(), a, rtol=0, atol=0)
    back = contract.unpack_observation(t)
    for k, v in parts.items():
        np.testing.assert_allclose(back[k].numpy(), v.astype(np.float32), err_msg=k)
    act = contract.pack_action(displacement=[0.01, 0.02, 0.03], dpitch=0.1)
    assert act.tolist() == pytest.approx([0.01, 0.02, 0.03, 0.1])
    assert contract.unpack_action(act)["dpitch"] == pytest.approx(0.1)


def test_build_observation_is_pack_of_one_state():
    obs = contract.build_observation([0.1, 0.2, 0.3], -0.5, [0.0, 0.01, 0.02], True)
    ref = contract.pack_observation(bucket_tip=[0.1, 0.2, 0.3], bucket_pitch=-0.5, rock=[0.0, 0.01, 0.02],
                                    rock_in_bucket=1.0)
    np.testing.assert_array_equal(obs, ref)


def test_bad_shapes_and_groups_are_refused_by_name():
    with pytest.raises(ValueError, match="8 entries"):
        contract.unpack_observation(np.zeros(7))
    with pytest.raises(KeyError, match="missing \\['rock_in_bucket'\\]"):
        contract.layout._pack(  # noqa: SLF001  (the public packers always pass every group)
            contract.OBSERVATION, {"bucket_tip": [0, 0, 0], "bucket_pitch": 0, "rock": [0, 0, 0]})


def test_the_layout_written_into_bundles_names_each_field_once():
    layout = contract.layout_dict()
    assert [f["name"] for f in layout["observation"]] == [f.name for f in contract.OBSERVATION]
    assert [f["name"] for f in layout["action"]] == [f.name for f in contract.ACTION]
    assert all(set(f) == {"name", "unit", "frame", "description"} for f in layout["observation"] + layout["action"])


def test_the_contract_imports_without_ros_torch_or_the_simulator():
    code = ("import sys\n"
            "for m in ('torch', 'rclpy', 'newton', 'warp', 'excavation', 'excavation_sim', 'excavation_training'):\n"
            "    sys.modules[m] = None  # any import of these now fails\n"
            "import excavation_contract as c, excavation_contract.interfaces\n"
            "print(c.pack_observation(bucket_tip=[0,0,0], bucket_pitch=0, rock=[0,0,0], rock_in_bucket=0).shape)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"({contract.OBS_DIM},)"


def test_the_config_files_restate_the_contracts_limits():
    """The YAML a user edits shows the limits in force; they must equal the one home of those numbers."""
    import os

    import yaml

    from excavation.drivers.safety import SafetyConfig

    src = os.path.join(os.path.dirname(__file__), "..", "..", "ros2_ws", "src")
    sim = yaml.safe_load(open(os.path.join(src, "excavation_simulation", "config", "sim.yaml")))["sim_robot"]["ros__parameters"]
    assert sim["workspace_min"] == pytest.approx(contract.WORKSPACE_MIN.tolist())
    assert sim["workspace_max"] == pytest.approx(contract.WORKSPACE_MAX.tolist())
    assert (sim["pitch_min"], sim["pitch_max"]) == pytest.approx(contract.PITCH_LIMIT_RAD)
    drv = yaml.safe_load(open(os.path.join(src, "excavation", "config", "ur5e_driver.yaml")))["ur5e_driver"]["ros__parameters"]
    cfg = SafetyConfig()
    assert tuple(cfg.box_min) == contract.SAFETY_BOX_MIN and tuple(cfg.box_max) == contract.SAFETY_BOX_MAX
    assert drv["workspace_min"] == pytest.approx(list(contract.SAFETY_BOX_MIN))
    assert drv["workspace_max"] == pytest.approx(list(contract.SAFETY_BOX_MAX))
    assert (drv["pitch_min"], drv["pitch_max"]) == pytest.approx(contract.PITCH_LIMIT_RAD)
