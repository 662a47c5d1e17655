"""Loop pacing and thread-scheduling options of the control loop: logic only, no timing asserts.

A fake clock stands in for time.perf_counter, so these check what the pacer asks for (sleep how
long, spin to when, which deadline ur_rtde gets), never how well the machine keeps time; the
figures live in bench/results/rtde_loop.json (bench/rtde_loop_bench.py).
"""

from __future__ import annotations

import datetime
import logging
import os
import pickle

import pytest

from excavation.drivers import ur5e_control_loop as cl
from excavation.drivers.ur5e_control_loop import PACING_CHOICES, LoopConfig, LoopPacer, apply_thread_scheduling


class FakeClock:
    """time.perf_counter stand-in: every read advances by ``tick``; sleep advances by the request."""

    def __init__(self, t: float = 100.0, tick: float = 1e-5):
        self.t, self.tick, self.sleeps, self.reads = t, tick, [], 0

    def __call__(self) -> float:
        self.reads += 1
        self.t += self.tick
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


class FakeControl:
    def __init__(self, clock: FakeClock, fail: bool = False):
        self.clock, self.fail, self.waits = clock, fail, []

    def initPeriod(self):
        if self.fail:
            raise RuntimeError("no ur_rtde here")
        return datetime.timedelta(seconds=self.clock.t + 5000.0)  # steady_clock has another origin

    def waitPeriod(self, t_start):
        self.waits.append(t_start)
        end = t_start + datetime.timedelta(seconds=0.002) - datetime.timedelta(seconds=5000.0)
        self.clock.t = max(self.clock.t, end.total_seconds())


def test_default_pacing_is_valid_and_documented():
    cfg = LoopConfig()
    cfg.validate()
    assert cfg.pacing in PACING_CHOICES
    assert cfg.pacing == "hybrid"
    assert "pacing" in LoopConfig.__annotations__ and LoopConfig.__annotations__["pacing"] in ("str", str)
    assert pickle.loads(pickle.dumps(LoopConfig(pacing="ur_rtde", rt_priority=20, cpu_affinity=(1,)))).pacing == "ur_rtde"


@pytest.mark.parametrize("kw, words", [
    ({"pacing": "busy"}, "pacing must be one of"),
    ({"pacing_spin_s": 0.01}, "pacing_spin_s"),
    ({"rt_priority": 100}, "rt_priority"),
    ({"rt_priority": -1}, "rt_priority"),
    ({"cpu_affinity": (-1,)}, "cpu_affinity"),
    ({"pacing": "ur_rtde", "rate_hz": 300.0}, "whole milliseconds"),
])
def test_invalid_timing_options_are_refused_by_name(kw, words):
    with pytest.raises(ValueError, match=words):
        LoopConfig(**kw).validate()


@pytest.mark.parametrize("pacing", PACING_CHOICES)
def test_every_pacing_choice_validates_at_500_and_125_hz(pacing):
    for rate in (500.0, 125.0):
        LoopConfig(pacing=pacing, rate_hz=rate).validate()


def test_hybrid_sleeps_to_spin_window_then_spins_to_the_deadline():
    clk = FakeClock()
    p = LoopPacer(0.002, "hybrid", spin_s=0.0004, clock=clk, sleep=clk.sleep)
    first = p.next_t
    for k in range(1, 4):
        p.wait()
        assert clk.t >= first + k * 0.002  # never returns before the deadline
        assert p.next_t == pytest.approx(first + k * 0.002)  # absolute schedule, no drift
    assert all(0 < s < 0.002 - 0.0004 + 1e-9 for s in clk.sleeps)  # each sleep ends spin_s early


def test_sleep_pacing_sleeps_all_the_way_without_spinning():
    clk = FakeClock(tick=0.0)
    p = LoopPacer(0.002, "sleep", clock=clk, sleep=clk.sleep)
    p.wait()
    assert clk.sleeps == [pytest.approx(0.002)]


def test_late_cycle_keeps_the_schedule_and_big_overrun_resyncs():
    clk = FakeClock(tick=0.0)
    p = LoopPacer(0.002, "sleep", resync_s=0.05, clock=clk, sleep=clk.sleep)
    t0 = p.next_t
    clk.t += 0.003  # a cycle that took 3 ms: next deadline already past, no wait, schedule kept
    p.wait()
    assert p.overruns == 1 and p.next_t == pytest.approx(t0 + 0.002) and clk.sleeps == []
    p.wait()  # catches up on the original grid
    assert clk.t == pytest.approx(t0 + 0.004)
    clk.t += 0.2  # stuck for 200 ms: restart from now instead of bursting 100 cycles
    p.wait()
    assert p.overruns == 2 and p.next_t == pytest.approx(clk.t)


def test_ur_rtde_pacing_gives_waitperiod_the_absolute_deadline_minus_one_period():
    clk = FakeClock(tick=1e-7)
    ctl = FakeControl(clk)
    p = LoopPacer(0.002, "ur_rtde", clock=clk, sleep=clk.sleep)
    first = p.next_t
    for k in range(1, 4):
        p.wait(ctl)
        assert clk.t >= first + k * 0.002 - 2e-6  # timedelta keeps microseconds
    assert len(ctl.waits) == 3 and clk.sleeps == []
    steps = [(b - a).total_seconds() for a, b in zip(ctl.waits, ctl.waits[1:])]
    assert steps == [pytest.approx(0.002, abs=2e-6)] * 2  # a fixed grid, not "now + period"


def test_ur_rtde_pacing_falls_back_to_hybrid_when_ur_rtde_fails(caplog):
    clk = FakeClock()
    p = LoopPacer(0.002, "ur_rtde", clock=clk, sleep=clk.sleep)
    with caplog.at_level(logging.INFO, logger="ur5e_control_loop"):
        p.wait(FakeControl(clk, fail=True))
    assert p.mode == "hybrid" and clk.sleeps
    assert "falls back to hybrid" in caplog.text
    p.wait(None)  # no control interface (disconnected): plain absolute wait
    assert p.mode == "hybrid"


def test_unknown_pacing_is_refused_by_the_pacer():
    with pytest.raises(ValueError, match="pacing"):
        LoopPacer(0.002, "spin")


def test_refused_realtime_scheduling_is_logged_once_and_not_raised(monkeypatch, caplog):
    def refuse(*a):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse, raising=False)
    monkeypatch.setattr(os, "sched_setaffinity", refuse, raising=False)
    monkeypatch.setattr(cl, "_SCHED_LOGGED", set())
    with caplog.at_level(logging.INFO, logger="ur5e_control_loop"):
        out1 = apply_thread_scheduling(20, (0,))
        out2 = apply_thread_scheduling(20, (0,))
    assert out1["rt_priority"] == 0 and out1["cpus"] is None and len(out1["refused"]) == 2
    assert out2["refused"] == out1["refused"]
    infos = [r for r in caplog.records if r.levelno == logging.INFO and "not applied" in r.getMessage()]
    assert len(infos) == 2  # one per refused setting, not one per call
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_no_scheduling_requested_touches_nothing(monkeypatch):
    def boom(*a):
        raise AssertionError("must not be called")

    monkeypatch.setattr(os, "sched_setscheduler", boom, raising=False)
    monkeypatch.setattr(os, "sched_setaffinity", boom, raising=False)
    assert apply_thread_scheduling(0, ()) == {"rt_priority": 0, "cpus": None, "refused": []}
