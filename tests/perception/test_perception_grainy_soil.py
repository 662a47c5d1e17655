"""Rock detection over soil made of grains (spheres) as big as a simulator's coarse particles.

The soil's surface is then the top of its grains, not the median of what the camera sees between
them: grains must not be taken for the rock, and a rock standing above the grains must still be found.
"""

import numpy as np
import pytest

from excavation.perception import PerceptionConfig, Reason, RockDetector, decode_depth, look_at
from excavation.perception.heightmap import (
    UNKNOWN,
    envelope_offset,
    fill_small_holes,
    peak_heights,
    suppress_near_peaks,
)
from box_scenes import (
    TrayScene,
    add_noise,
    d435_intrinsics,
    grain_bed,
    render_scene,
    rock_on_ground,
    to_16uc1,
)

INTR = d435_intrinsics()
T_DOWN = look_at([0.0, 0.0, 0.6], [0.0, 0.0, 0.0], up=(1.0, 0.0, 0.0))
TRAY = (0.16, 0.16)  # the simulator's tray

# (grain diameter, layers, share of the top layer kept): the simulator's beds at 20..70 mm, some dug.
BEDS = [
    (0.02, 3, 1.0),
    (0.03, 3, 1.0),
    (0.03, 3, 0.6),
    (0.04, 2, 1.0),
    (0.05, 2, 1.0),
    (0.05, 2, 0.6),
    (0.06, 1, 1.0),
    (0.07, 1, 1.0),
]


def coarse_soil(scene):
    """The simulator's coarse-soil settings (config/perception_sim.yaml) for the scene's grains."""
    d = max((2 * r for _, r in scene.grains), default=0.0)
    return {"soil_grain_size": d, "min_height_above_ground": 0.015} if d else {}


def detect(scene, seed, **cfg):
    depth, _ = render_scene(scene, INTR, T_DOWN)
    depth = add_noise(depth, np.random.default_rng(seed), rel_std=0.01, dropout=0.02)
    det = RockDetector(PerceptionConfig(tray_size=TRAY, **{**coarse_soil(scene), **cfg}))
    return det.detect(decode_depth(to_16uc1(depth), "16UC1", INTR), INTR, T_DOWN)


@pytest.mark.parametrize("diameter, layers, keep", BEDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grains_alone_are_not_a_rock_and_the_ground_is_their_top(diameter, layers, keep, seed):
    scene = TrayScene(tray_size=TRAY)
    top = grain_bed(scene, diameter, layers, jitter=0.05, rng=np.random.default_rng(seed), keep=keep)
    est = detect(scene, seed)
    assert not est.detected and est.position is None
    assert est.reason == Reason.NONE_ABOVE_GROUND
    # The ground is the grains' upper envelope, not the median of grains and the gaps between them
    # (with a sparse top layer the envelope may sit between the top and the layer under it).
    tol = 0.2 * diameter + 0.003 if keep == 1.0 else 0.5 * diameter
    assert abs(est.ground_height - top) < tol, (est.ground_height, top)


@pytest.mark.parametrize("diameter, layers, keep", BEDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_rock_standing_above_the_grains_is_found(diameter, layers, keep, seed):
    rng = np.random.default_rng(100 + seed)
    scene = TrayScene(tray_size=TRAY)
    top = grain_bed(scene, diameter, layers, jitter=0.05, rng=rng, keep=keep)
    xy = rng.uniform(-0.035, 0.035, 2)
    stand = rng.uniform(0.02, 0.045)  # the rock's top this much above the grains' tops
    centre = np.array([xy[0], xy[1], top + stand - 0.025])
    scene.rocks.append((centre, 0.05, float(rng.uniform(0, np.pi / 2))))
    est = detect(scene, seed)
    assert est.detected and est.reason == Reason.DETECTED
    assert np.linalg.norm(est.position[:2] - centre[:2]) < 0.008, (est.position, centre)
    assert abs(est.position[2] - centre[2]) < 0.012, (est.position, centre)


def test_grainy_soil_fools_a_detector_without_the_envelope_and_the_grain_shape_test():
    # The same bed with the envelope switched off (never enough peaks): the median ground makes the top
    # grains stick out like rocks. This is what the envelope is for; the grains' round tops (see
    # test_perception_grain_shape.py) are a second, independent guard.
    scene = TrayScene(tray_size=TRAY)
    grain_bed(scene, 0.05, 2, jitter=0.05, rng=np.random.default_rng(0))
    no_envelope = {"envelope_min_peaks": 1000, "envelope_rough_sigma": 1.0}
    assert not detect(scene, 0).detected
    assert not detect(scene, 0, **no_envelope).detected
    assert not detect(scene, 0, reject_spherical_tops=False).detected
    assert detect(scene, 0, reject_spherical_tops=False, **no_envelope).detected


def test_soil_banked_along_a_wall_is_not_a_rock_but_a_rock_at_the_wall_is():
    scene = TrayScene(tray_size=TRAY)
    # A ridge 25 mm high and 22 mm wide against the +y wall, 80 mm long (short enough to pass as a rock
    # by its length).
    scene.bumps.append((np.array([0.0, 0.08 - 0.011, 0.0]), np.array([0.04, 0.011, 0.025])))
    est = detect(scene, 0)
    assert not est.detected and est.reason == Reason.NONE_ABOVE_GROUND
    scene.rocks.append(rock_on_ground(scene, (0.0, -0.08 + 0.026), 0.05, 0.4))
    est = detect(scene, 0)
    assert est.detected and np.linalg.norm(est.position[:2] - scene.rocks[0][0][:2]) < 0.008


@pytest.mark.parametrize("soil, sliver_half_width", [
    ({"soil_grain_size": 0.05, "min_height_above_ground": 0.015}, 0.006),  # coarse: 12 mm is a sliver
    ({}, 0.002),  # fine soil: a slab on edge is a rock; 4 mm (a line of mixed pixels) is not
])
def test_a_sliver_narrower_than_a_rock_is_not_a_rock(soil, sliver_half_width):
    scene = TrayScene(tray_size=TRAY)
    scene.bumps.append((np.array([0.0, 0.0, 0.0]), np.array([0.03, sliver_half_width, 0.025])))  # 25 mm high
    assert not detect(scene, 0, **soil).detected
    scene.bumps[0] = (np.array([0.0, 0.0, 0.0]), np.array([0.03, 0.02, 0.025]))  # 40 mm wide: rock-sized
    assert detect(scene, 0, **soil).detected


# ----------------------------------------------------------------------------- height-map tools
def bumps_map(centres_heights_sigmas, shape=(40, 40)):
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    hm = np.zeros(shape, np.float32)
    for (r, c), h, s in centres_heights_sigmas:
        hm = np.maximum(hm, h * np.exp(-((y - r) ** 2 + (x - c) ** 2) / (2 * s * s)).astype(np.float32))
    return hm


def test_peaks_need_the_dynamic_and_a_flat_top_is_one_peak():
    hm = bumps_map([((10, 10), 0.020, 3.0), ((30, 28), 0.012, 3.0), ((10, 30), 0.003, 3.0)])
    h, r, c = peak_heights(hm, 0.005)
    assert sorted(zip(r.tolist(), c.tolist())) == [(10, 10), (30, 28)]
    assert np.allclose(sorted(h), [0.012, 0.020], atol=1e-4)
    # A plateau whose maximum value occurs at two separate cells is still one peak.
    flat = np.zeros((20, 20), np.float32)
    flat[5:15, 5:15] = 0.030
    flat[6, 6] = flat[13, 13] = 0.031
    assert len(peak_heights(flat, 0.005)[0]) == 1
    # Unknown cells neither make nor join peaks.
    holed = hm.copy()
    holed[:, 20] = UNKNOWN
    assert len(peak_heights(holed, 0.005)[0]) == 2


def test_near_peaks_are_suppressed_highest_first():
    h = np.array([0.02, 0.03, 0.01])
    r = np.array([10, 12, 30])
    c = np.array([10, 11, 30])
    kh, kr, kc = suppress_near_peaks(h, r, c, 5.0)
    assert kh.tolist() == [0.03, 0.01] and kr.tolist() == [12, 30]


def test_envelope_rules():
    assert envelope_offset(np.array([]), 4, 0.75) == 0.0
    assert envelope_offset(np.array([0.05]), 4, 0.75) == 0.0  # one peak may be the rock
    assert envelope_offset(np.array([0.05, 0.01]), 4, 0.75, rough=True) == pytest.approx(0.01)
    assert envelope_offset(np.array([0.05, 0.01]), 4, 0.75, rough=False) == 0.0  # smooth soil: two rocks
    # Four grains and a rock: the rock (highest) is left out of the quantile.
    assert envelope_offset(np.array([0.06, 0.010, 0.011, 0.012, 0.013]), 4, 0.75) == pytest.approx(0.01225)
    assert envelope_offset(np.array([0.06, 0.010, 0.011, 0.012, 0.013]), 4, 0.75, rough=False) == 0.0
    assert envelope_offset(np.array([-0.02, -0.03, -0.01, -0.02, 0.0]), 4, 0.75) == 0.0  # never below the plane


def test_small_holes_are_filled_large_ones_kept():
    hm = np.full((10, 10), 0.01, np.float32)
    hm[5, 5] = UNKNOWN
    hm[0:4, 0:4] = UNKNOWN
    out = fill_small_holes(hm)
    assert out[5, 5] == pytest.approx(0.01)
    assert out[1, 1] == UNKNOWN and out[2, 2] == UNKNOWN
