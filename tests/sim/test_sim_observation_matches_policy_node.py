"""The simulator and the ROS policy node build the same observation vector from the same state.

The simulated arm publishes the bucket pose the physics realised (``ros_common.pose_msg``), the policy
node parses it (``ros_common.pose_from_msg``) and packs the observation (``contract.build_observation``);
the trainer saw ``ExcavationEnv.observe()``. With the observation noise off, both must agree on every
field, so a policy trained on one reads the other correctly."""

from __future__ import annotations

import numpy as np
import torch
from builtin_interfaces.msg import Time

import excavation_contract as contract
from excavation import ros_common as rc
from excavation_sim.config import ExcavationEnvConfig
from excavation_sim.excavation_env import ExcavationEnv


def test_the_node_and_the_env_pack_the_same_vector():
    cfg = ExcavationEnvConfig(num_envs=3, delta_mm=70.0, seed=3)
    cfg.randomization.enabled = False  # no observation noise or bias: the truth on both sides
    env = ExcavationEnv(cfg)
    env.reset()
    gen = torch.Generator().manual_seed(0)
    limit = torch.as_tensor(contract.ACTION_LIMIT)
    for _ in range(6):  # somewhere away from the start, with pitch
        env.step((torch.rand(3, contract.ACT_DIM, generator=gen) * 2 - 1) * limit)
    sim_obs = env.observe().numpy()
    rock, _ = env.rock_pose()
    rib = env.rock_in_bucket_truth()
    for i in range(3):
        msg = rc.pose_msg(Time(sec=1), contract.TRAY_FRAME, env.tip[i].tolist(), float(env.pitch[i]))
        tip, pitch, off = rc.pose_from_msg(msg)
        assert off < 1e-9
        node_obs = contract.build_observation(tip, pitch, rock[i].tolist(), bool(rib[i]))
        np.testing.assert_allclose(node_obs, sim_obs[i], atol=1e-6,
                                   err_msg=f"env {i}: fields {[f.name for f in contract.OBSERVATION]}")
    assert np.ptp(sim_obs[:, contract.OBS_INDEX["bucket_pitch"]]) > 0.0, "the envs differ, so order matters"
