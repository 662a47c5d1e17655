"""Depth rendering of a world with Newton's raytraced SensorCamera."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from excavation_sim.camera import CameraConfig, DepthCamera, look_down_pose
from excavation_sim.config import ExcavationEnvConfig
from excavation_sim.excavation_env import ExcavationEnv


@pytest.fixture(scope="module")
def empty_tray():
    cfg = ExcavationEnvConfig(num_envs=2, delta_mm=40.0)
    cfg.randomization.enabled = False
    env = ExcavationEnv(cfg)
    for _ in range(3):
        env.step(torch.zeros(2, 4))
    # Empty the tray of env 1: rock and bucket far away below the world.
    for k in range(2):
        env._bq[k][env.rock_body[1], 2] -= 10.0
        env._bq[k][env.bucket_body[1], 2] -= 10.0
    return env


def project(cfg: CameraConfig, p_tray: np.ndarray) -> tuple[int, int, float]:
    T = np.asarray(cfg.T_tray_camera)
    pc = T[:3, :3].T @ (p_tray - T[:3, 3])
    u = cfg.fx * pc[0] / pc[2] + cfg.cx
    v = cfg.fy * pc[1] / pc[2] + cfg.cy
    return int(round(u)), int(round(v)), float(pc[2])


def test_empty_tray_depth_matches_the_geometry(empty_tray):
    env = empty_tray
    cam = DepthCamera(env)
    frame = cam.render(1, noise=False)
    c = cam.cfg
    assert frame.depth.shape == (c.height, c.width) and frame.depth.dtype == np.float32
    assert np.allclose(frame.K, c.K)
    sc = env.cfg.scene
    w = env.scene.worlds[1]
    # Wall tops: a flat face at a known height.
    wall_top = w.surface_z + sc.tray_wall_height
    half = sc.tray_size / 2
    u, v, z = project(c, np.array([0.0, half + sc.tray_wall_thickness / 2, wall_top]))
    assert frame.depth[v, u] == pytest.approx(z, abs=1e-3)
    # Soil: straight above a particle of the top layer the camera sees that particle's top.
    soil = env.soil_particles(1)
    top_layer = soil[soil[:, 2] > soil[:, 2].max() - 0.005]
    checked = 0
    for p in top_layer:
        u, v, _ = project(c, p + np.array([0.0, 0.0, env.particle_radius]))
        expected = c.T_tray_camera[2][3] - (p[2] + env.particle_radius)
        assert frame.depth[v, u] == pytest.approx(expected, abs=0.002), p
        checked += 1
    assert checked >= 4
    # Outside the tray there is nothing to see: no return.
    u, v, _ = project(c, np.array([0.0, half + sc.tray_wall_thickness + 0.05, 0.0]))
    assert frame.depth[v, u] == 0.0


def test_rock_is_visible_above_the_soil_and_noise_model_applies():
    cfg = ExcavationEnvConfig(num_envs=1, delta_mm=40.0)
    cfg.randomization.enabled = False
    env = ExcavationEnv(cfg)
    env._bq[0][env.bucket_body[0], 2] -= 10.0  # keep the bucket out of the picture
    env._bq[1][env.bucket_body[0], 2] -= 10.0
    cam = DepthCamera(env, seed=0)
    clean = cam.render(0, noise=False)
    rock = env.rock_pose()[0][0].numpy()
    u, v, _ = project(cam.cfg, rock)
    # The rock's top is nearer the camera than the soil around it.
    near = clean.depth[v - 3 : v + 4, u - 3 : u + 4]
    u2, v2, _ = project(cam.cfg, np.array([rock[0] + 0.06, rock[1] + 0.06, 0.0]))
    assert np.median(near[near > 0]) < clean.depth[v2, u2] - 0.01
    noisy = cam.render(0, noise=True)
    valid = (clean.depth > 0) & (noisy.depth > 0)
    diff = noisy.depth[valid] - clean.depth[valid]
    assert 0.0003 < diff.std() < 0.005
    dropped = (clean.depth > 0) & (noisy.depth == 0)
    assert 0.005 < dropped.sum() / (clean.depth > 0).sum() < 0.2
    assert noisy.to_16uc1().dtype == np.uint16


def test_bad_camera_config_is_refused():
    with pytest.raises(ValueError, match="T_tray_camera"):
        CameraConfig(T_tray_camera=np.zeros((4, 4)).tolist()).validate()
    with pytest.raises(ValueError, match="fx"):
        CameraConfig(fx=0.0).validate()
    assert np.allclose(look_down_pose(0.5)[:3, 3], [0, 0, 0.5])
