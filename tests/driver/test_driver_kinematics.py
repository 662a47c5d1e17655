import numpy as np

from excavation.drivers import ur5e_kinematics as kin


def test_fk_matches_published_zero_pose():
    # UR5e at q = 0: arm stretched along base -x; tool0 offset by d4/d6 (published DH geometry).
    T = kin.fk(np.zeros(6))
    np.testing.assert_allclose(T[:3, 3], [-0.425 - 0.3922, -(0.1333 + 0.0996), 0.1625 - 0.0997], atol=1e-9)


def test_ik_roundtrip_random():
    rng = np.random.default_rng(1)
    for _ in range(100):
        q = rng.uniform(-np.pi, np.pi, 6)
        T = kin.fk(q)
        sols = kin.ik_analytic(T)
        assert sols, q
        for s in sols:
            dp, da = kin.pose_error(kin.fk(s), T)
            assert dp < 1e-7 and da < 1e-6
        q2 = kin.ik(T, q + 0.03)
        np.testing.assert_allclose(q2, q, atol=1e-5)  # nearest branch to the seed


def test_pose_vector_roundtrip():
    rng = np.random.default_rng(2)
    for _ in range(50):
        p = np.concatenate([rng.normal(size=3), rng.normal(size=3)])
        if np.linalg.norm(p[3:]) > 3.0:
            continue
        np.testing.assert_allclose(kin.matrix_to_pose(kin.pose_to_matrix(p)), p, atol=1e-9)


def test_bucket_tool0_roundtrip():
    T_base_tray = np.array([[-1.0, 0, 0, -0.5], [0, -1.0, 0, -0.13], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    for tip, pitch in (([0.0, 0.0, 0.2], 0.0), ([0.1, -0.05, 0.0], 0.6), ([-0.1, 0.1, 0.3], -0.5)):
        T = kin.base_tool0_from_bucket(T_base_tray, tip, pitch)
        tip2, pitch2 = kin.bucket_from_base_tool0(T_base_tray, T)
        np.testing.assert_allclose(tip2, tip, atol=1e-12)
        assert abs(pitch2 - pitch) < 1e-12
        # tool0 z looks down at the bucket: opposite to the bucket z axis
        assert T[2, 2] < 0 or abs(pitch) > 0.5
        assert kin.ik(T, [0, -1.67, 2.0, -1.9, -1.571, -1.578]) is not None
