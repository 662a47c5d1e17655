"""Rock-in-bucket from the TCP force: bias, hysteresis, spike rejection, simulated flag."""

import numpy as np
import pytest

from excavation.perception import RockInBucketConfig, RockInBucketEstimator, SimulatedRockInBucket, simulated_tcp_force

BIAS = np.array([1.5, -2.0, 4.0, 0.1, -0.05, 0.02])


def wrench(load_n, extra=(0.0, 0.0, 0.0)):
    w = BIAS.copy()
    w[2] -= load_n  # weight pulls along base -z
    w[:3] += extra
    return w


def make(**kw):
    est = RockInBucketEstimator(RockInBucketConfig(**kw))
    est.tare(np.stack([BIAS + np.random.default_rng(i).normal(0, 0.2, 6) for i in range(20)]))
    return est


def test_needs_bias_first():
    with pytest.raises(RuntimeError, match="tare"):
        RockInBucketEstimator().update(wrench(0.0))


def test_hysteresis_between_thresholds():
    est = make(on_threshold_n=6.0, off_threshold_n=3.0, median_window=1, debounce_samples=1)
    assert not est.update(wrench(4.5))  # between thresholds, starting empty: stays empty
    assert est.update(wrench(9.8))
    assert est.update(wrench(4.5))  # between thresholds, starting loaded: stays loaded
    assert not est.update(wrench(1.0))
    assert est.load_n == pytest.approx(1.0, abs=0.5)


def test_acceleration_spikes_do_not_flip_the_state():
    est = make()
    states = [est.update(wrench(0.0)) for _ in range(10)]
    states += [est.update(wrench(25.0)), est.update(wrench(-20.0)), est.update(wrench(30.0))]
    states += [est.update(wrench(0.0)) for _ in range(5)]
    assert not any(states)
    loaded = [est.update(wrench(9.8)) for _ in range(10)]
    assert loaded[-1] and not loaded[0]  # debounced: not on the first sample
    spikes = [est.update(wrench(-15.0)), est.update(wrench(9.8)), est.update(wrench(-15.0))]
    assert all(spikes)


def test_sideways_digging_force_is_not_weight():
    est = make()
    assert not any(est.update(wrench(0.0, extra=(40.0, -30.0, 0.0))) for _ in range(20))


def test_bad_samples():
    est = make()
    with pytest.raises(ValueError, match="actual_TCP_force.*6 values"):
        est.update([1.0, 2.0, 3.0])
    est.update(wrench(0.0))
    assert est.update(np.full(6, np.nan)) is False
    assert est.rejected_samples == 1
    with pytest.raises(ValueError, match="off_threshold_n"):
        RockInBucketConfig(on_threshold_n=2.0, off_threshold_n=5.0).validate()


def test_estimator_on_simulated_wrench_follows_truth():
    rng = np.random.default_rng(3)
    est = RockInBucketEstimator(RockInBucketConfig.for_rock_mass(1.0))
    est.tare(np.stack([simulated_tcp_force(False, bias=BIAS, rng=rng) for _ in range(30)]))
    truth = [False] * 30 + [True] * 40 + [False] * 30
    out = [est.update(simulated_tcp_force(t, 1.0, BIAS, noise_n=1.0, rng=rng)) for t in truth]
    agree = np.mean(np.array(out) == np.array(truth))
    assert agree > 0.9


def test_simulated_flag_error_rate_and_seed():
    a = SimulatedRockInBucket(0.2, seed=7)
    flags = np.array([a.update(True) for _ in range(5000)])
    assert 0.18 < 1.0 - flags.mean() < 0.22
    s1, s2 = SimulatedRockInBucket(0.2, seed=1), SimulatedRockInBucket(0.2, seed=1)
    assert [s1.update(False) for _ in range(50)] == [s2.update(False) for _ in range(50)]
    assert all(SimulatedRockInBucket(0.0).update(True) for _ in range(20))
    with pytest.raises(ValueError, match="error_rate"):
        SimulatedRockInBucket(1.5)
