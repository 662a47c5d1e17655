"""Tracker: smoothing, gating, re-acquisition, holding with age while occluded."""

import numpy as np
import pytest

from excavation.perception import Reason, RockEstimate, RockTracker, TrackerConfig


def seen(x, y=0.0, z=0.0, conf=0.9):
    return RockEstimate(np.array([x, y, z]), conf, Reason.DETECTED, 0.0, detected=True, num_points=100)


def unseen(reason=Reason.OCCLUDED_BY_BUCKET):
    return RockEstimate(None, 0.0, reason, 0.0)


def test_no_track_no_position():
    tr = RockTracker()
    out = tr.update(unseen(Reason.NONE_ABOVE_GROUND), 0.0)
    assert out.position is None and out.reason == Reason.NONE_ABOVE_GROUND


def test_smoothing_and_noise_reduction():
    tr = RockTracker(TrackerConfig(smoothing=0.3))
    rng = np.random.default_rng(0)
    raw, smooth = [], []
    for i in range(60):
        x = 0.05 + rng.normal(0, 0.003)
        raw.append(x)
        smooth.append(tr.update(seen(x), i * 0.1).position[0])
    assert np.std(smooth[20:]) < 0.6 * np.std(raw[20:])
    assert abs(np.mean(smooth[20:]) - 0.05) < 0.002


def test_holds_last_estimate_with_age_and_decaying_confidence():
    tr = RockTracker(TrackerConfig(confidence_time_constant=2.0))
    tr.update(seen(0.02, 0.01), 1.0)
    a = tr.update(unseen(), 1.5)
    b = tr.update(unseen(), 3.0)
    assert np.allclose(a.position, [0.02, 0.01, 0.0]) and np.allclose(b.position, a.position)
    assert not a.detected and a.reason == Reason.OCCLUDED_BY_BUCKET
    assert a.age_s == pytest.approx(0.5) and b.age_s == pytest.approx(2.0)
    assert 0 < b.confidence < a.confidence < 0.9
    c = tr.update(seen(0.021, 0.01), 3.1)
    assert c.detected and c.age_s == 0.0


def test_gate_rejects_single_outlier_then_reacquires_on_consistent_jump():
    tr = RockTracker(TrackerConfig(gate=0.04, reacquire_frames=3))
    for i in range(5):
        tr.update(seen(0.0), i * 0.1)
    out = tr.update(seen(0.10), 0.5)  # one glitch far away
    assert out.reason == Reason.OUTSIDE_GATE and not out.detected
    assert abs(out.position[0]) < 1e-9
    back = tr.update(seen(0.001), 0.6)
    assert back.detected and abs(back.position[0]) < 0.002
    # The rock really moved: three agreeing detections in a row move the track.
    outs = [tr.update(seen(0.09 + 0.002 * k), 0.7 + 0.1 * k) for k in range(3)]
    assert [o.detected for o in outs] == [False, False, True]
    assert abs(outs[-1].position[0] - 0.092) < 0.003


def test_low_confidence_detection_counts_as_none():
    tr = RockTracker(TrackerConfig(min_confidence=0.3))
    out = tr.update(seen(0.05, conf=0.1), 0.0)
    assert out.position is None


def test_max_hold_expires_when_the_last_position_is_in_view_and_empty():
    tr = RockTracker(TrackerConfig(max_hold_s=1.0))
    tr.update(seen(0.0), 0.0)
    assert tr.update(unseen(Reason.NONE_ABOVE_GROUND), 0.9).position is not None
    out = tr.update(unseen(Reason.NONE_ABOVE_GROUND), 1.2)
    assert out.position is None and out.reason == Reason.TRACK_EXPIRED


def test_occlusion_is_held_but_blindness_is_not():
    tr = RockTracker()
    tr.update(seen(0.0), 0.0)
    assert tr.update(unseen(Reason.OCCLUDED_BY_BUCKET), 5.0).position is not None  # lifted in the bucket
    assert tr.update(unseen(Reason.NO_VALID_DEPTH), 5.1).position is None


def test_blind_frames_give_no_position_and_the_track_expires():
    tr = RockTracker()
    for i in range(10):
        tr.update(seen(0.05), i * 0.1)
    outs = [tr.update(unseen(Reason.NO_VALID_DEPTH), 1.0 + i * 0.1) for i in range(100)]  # 10 s blind
    assert all(o.position is None and o.reason == Reason.NO_VALID_DEPTH for o in outs)
    assert tr.position is None  # expired: a rock seen again later starts a new track
    assert outs[2].age_s > 0


@pytest.mark.parametrize("jump", [1000.0, -1000.0, -0.5])
def test_a_time_jump_resets_the_track_and_tracking_goes_on(jump):
    tr = RockTracker()
    tr.update(seen(0.0), 100.0)
    tr.update(seen(0.0), 100.1)
    out = tr.update(seen(0.1), 100.1 + jump)  # far from the old track: accepted at once after the reset
    assert out.detected and out.position[0] == pytest.approx(0.1)
    assert tr.time_jumps == 1
    back = tr.update(seen(0.1), 100.2)  # the clock comes back: another jump, never an error
    assert back.detected
    later = [tr.update(seen(0.1), 100.2 + 0.1 * i) for i in range(1, 5)]
    assert all(o.detected for o in later)


def test_doubtful_detections_move_the_track_less():
    moves = []
    for conf in (0.9, 0.2):
        tr = RockTracker(TrackerConfig(smoothing=0.5, min_confidence=0.1))
        tr.update(seen(0.0, conf=0.9), 0.0)
        moves.append(tr.update(seen(0.02, conf=conf), 0.1).position[0])
    assert 0 < moves[1] < moves[0] <= 0.02


def test_by_default_a_rock_gone_from_view_expires_after_half_a_second():
    tr = RockTracker()
    tr.update(seen(0.0), 0.0)
    assert tr.update(unseen(Reason.NONE_ABOVE_GROUND), 0.4).position is not None
    out = tr.update(unseen(Reason.NONE_ABOVE_GROUND), 0.6)
    assert out.position is None and out.reason == Reason.TRACK_EXPIRED


def test_a_rock_seen_in_the_bucket_moves_the_track_at_once_and_says_so():
    tr = RockTracker()
    tr.update(seen(0.0), 0.0)
    carried = RockEstimate(np.array([0.0, 0.1, 0.15]), 0.8, Reason.IN_BUCKET, 0.0, detected=True, in_bucket=True)
    out = tr.update(carried, 0.1)  # 18 cm away, far outside the gate: the bucket carried it there
    assert out.detected and out.in_bucket and out.reason == Reason.IN_BUCKET
    assert np.allclose(out.position, [0.0, 0.1, 0.15])
    # Hidden by the wrist afterwards: held (occlusion), never expired while occluded.
    held = tr.update(unseen(Reason.OCCLUDED_BY_BUCKET), 3.0)
    assert np.allclose(held.position, [0.0, 0.1, 0.15]) and not held.in_bucket and held.age_s == pytest.approx(2.9)


def test_a_rock_last_seen_against_the_bucket_and_then_gone_is_held_as_taken_by_it():
    from excavation.perception.candidates import RockCandidate

    tr = RockTracker()
    at_bucket = RockEstimate(np.array([0.0, 0.0, 0.0]), 0.9, Reason.DETECTED, 0.0, detected=True,
                             candidates=[RockCandidate(np.zeros(3), 0.03, 0.002, 0.9, True)], chosen=0)
    tr.update(at_bucket, 0.0)
    out = tr.update(unseen(Reason.NONE_ABOVE_GROUND), 3.0)  # its place empty: lifted with the bucket
    assert out.position is not None and out.reason == Reason.OCCLUDED_BY_BUCKET
    # Seen clear of the bucket instead: gone means gone.
    tr2 = RockTracker()
    tr2.update(seen(0.0), 0.0)
    assert tr2.update(unseen(Reason.NONE_ABOVE_GROUND), 3.0).position is None
