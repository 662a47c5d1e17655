"""Resolution schedule: advance on the success threshold and on the iteration cap."""

from __future__ import annotations

import math

import pytest

from training_helpers import point_factory, small_config
from excavation_training.config import PRPDConfig
from excavation_training.runners import PRPDRunner, ResolutionScheduler


def _scheduler(resolutions, threshold, max_iterations, **kw):
    return ResolutionScheduler(PRPDConfig(resolutions_mm=tuple(resolutions), success_threshold=threshold,
                                          max_iterations_per_stage=max_iterations, **kw))


def test_scheduler_advances_on_threshold():
    s = _scheduler([70, 60, 50], threshold=0.95, max_iterations=400)
    assert s.step(0.5) is None
    assert s.step(float("nan")) is None  # no finished episodes: no decision
    assert s.step(0.949) is None
    assert s.step(0.95) == "threshold"
    assert s.advance() and s.delta_mm == 60 and s.stage_iterations == 0


def test_scheduler_advances_on_cap_and_finishes():
    s = _scheduler([70, 10], threshold=0.95, max_iterations=3)
    assert [s.step(0.0) for _ in range(3)] == [None, None, "cap"]
    assert s.advance() and s.delta_mm == 10
    assert s.remaining_iterations_bound() == 3
    assert [s.step(0.1) for _ in range(3)] == [None, None, "cap"]
    assert not s.advance() and s.finished
    with pytest.raises(RuntimeError):
        s.step(1.0)


def test_last_stage_can_ignore_threshold():
    s = _scheduler([10], threshold=0.5, max_iterations=2, finish_on_threshold=False)
    assert s.step(1.0) is None
    assert s.step(1.0) == "cap"


def test_the_threshold_is_judged_on_a_full_window_of_the_last_episodes():
    s = _scheduler([70, 60], threshold=0.7, max_iterations=100, advance_window_episodes=10)
    assert s.step(1.0, outcomes=[True] * 9) is None  # 9 of 10: not yet a decision, whatever the rate
    assert math.isnan(s.window_rate)
    assert s.step(1.0, outcomes=[False] * 3) == "threshold"  # the last 10: 7 successes, 3 failures
    assert s.window_rate == 0.7
    assert s.advance() and len(s.window) == 0  # the last resolution's episodes do not count here
    assert s.step(1.0, outcomes=[True] * 5) is None
    # With outcomes, the rate the runner logs for the iteration does not decide; the window does.
    t = _scheduler([70, 60], threshold=0.8, max_iterations=100, advance_window_episodes=4)
    assert t.step(0.0, outcomes=[True] * 4) == "threshold"
    u = _scheduler([70, 60], threshold=0.8, max_iterations=100, advance_window_episodes=4)
    assert u.step(1.0, outcomes=[True, True, False, False]) is None and u.window_rate == 0.5


def test_the_window_survives_a_checkpoint():
    a = _scheduler([70, 60], threshold=0.9, max_iterations=100, advance_window_episodes=4)
    a.step(0.5, outcomes=[True, False, True])
    b = _scheduler([70, 60], threshold=0.9, max_iterations=100, advance_window_episodes=4)
    b.load_state_dict(a.state_dict())
    assert list(b.window) == [True, False, True]
    assert b.step(1.0, outcomes=[True]) is None and b.window_rate == 0.75


def test_the_runner_waits_for_the_window_before_advancing(tmp_path):
    # 16 envs, every episode a success, first episodes counted: 16 per iteration, so a 64-episode
    # window ends the stage at its 4th iteration, not its first.
    cfg = small_config(tmp_path / "run", resolutions=(30.0, 20.0),
                       **{"prpd.max_iterations_per_stage": 10, "prpd.advance_window_episodes": 64})
    runner = PRPDRunner(cfg, point_factory(16, success_radius=10.0), cfg.runner.log_dir)
    seen = []
    result = runner.learn(callback=lambda r, m: seen.append((m["episodes"], m["advance_window_episodes"])))
    assert [s["iterations"] for s in result.stages] == [4, 4]
    assert [s["success_rate"] for s in result.stages] == [1.0, 1.0]
    assert seen[0] == (16, 16) and seen[3] == (16, 64) and seen[4] == (16, 16)


def test_runner_advances_on_threshold(tmp_path):
    # Every episode succeeds at once (huge success radius): each stage ends after one iteration.
    cfg = small_config(tmp_path / "run", **{"prpd.max_iterations_per_stage": 5})
    runner = PRPDRunner(cfg, point_factory(16, success_radius=10.0), cfg.runner.log_dir)
    result = runner.learn()
    assert result.finished and result.iterations == 3
    assert [s["reason"] for s in result.stages] == ["threshold"] * 3
    assert [s["resolution_mm"] for s in result.stages] == [30.0, 20.0, 10.0]
    assert sorted(p.name for p in (tmp_path / "run" / "stages").iterdir()) == [
        "stage0_30mm.pt", "stage1_20mm.pt", "stage2_10mm.pt"]


def test_runner_advances_on_cap(tmp_path):
    # No episode can succeed (zero success radius): every stage runs to the cap.
    cfg = small_config(tmp_path / "run", **{"prpd.max_iterations_per_stage": 2})
    deltas = []
    factory = point_factory(16, success_radius=0.0)
    runner = PRPDRunner(cfg, lambda d: deltas.append(d) or factory(d), cfg.runner.log_dir)
    result = runner.learn()
    assert result.finished and result.iterations == 6
    assert [s["reason"] for s in result.stages] == ["cap"] * 3
    assert all(s["success_rate"] == 0.0 for s in result.stages)
    assert deltas == [30.0, 20.0, 10.0]  # the env was rebuilt once per resolution via the factory
    assert not math.isnan(result.final_success_rate)


def test_direct_transfer_and_fixed_baselines_use_the_same_runner(tmp_path):
    from excavation_training.config import TrainConfig, apply_preset

    direct = apply_preset(TrainConfig(), "direct")
    assert direct.prpd.resolutions_mm == (70.0, 10.0)
    fixed = apply_preset(TrainConfig(), "fixed")
    assert fixed.prpd.resolutions_mm == (10.0,) and not fixed.prpd.finish_on_threshold
    cfg = small_config(tmp_path / "run", resolutions=(40.0,), **{"prpd.max_iterations_per_stage": 2, "prpd.finish_on_threshold": False})
    result = PRPDRunner(cfg, point_factory(16, success_radius=10.0), cfg.runner.log_dir).learn()
    assert result.iterations == 2 and result.stages[0]["reason"] == "cap"


@pytest.mark.parametrize("keep", [True, False])
def test_stage_change_keeps_the_adapted_learning_rate_unless_told_not_to(tmp_path, keep):
    """A new optimiser per resolution; the actor's rate carries over (prpd.keep_learning_rate_on_advance),
    since restarting at ppo.learning_rate jolted every transferred policy."""
    cfg = small_config(tmp_path / "run", **{"prpd.max_iterations_per_stage": 1, "prpd.keep_learning_rate_on_advance": keep,
                                            "ppo.desired_kl": 1e-9})
    runner = PRPDRunner(cfg, point_factory(16, success_radius=0.0), cfg.runner.log_dir)
    seen = []
    runner.learn(num_iterations=1, callback=lambda r, m: seen.append(m["learning_rate"]))
    adapted = seen[-1]  # the rate the first stage's update ended with
    assert adapted < cfg.ppo.learning_rate  # desired_kl ~ 0: the rule lowered it in the first stage
    assert runner.scheduler.stage == 1  # the cap moved it on to the next resolution
    assert runner.alg.learning_rate == (adapted if keep else cfg.ppo.learning_rate)
    assert all(not s for s in runner.alg.optimizer.state.values())  # fresh Adam moments either way
