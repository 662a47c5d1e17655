"""Resume with the real Newton env inside the runner: a stopped and resumed PRPD run ends exactly where
the uninterrupted run does.

The toy resume tests (test_training_resume.py) prove the runner's own state round-trips; this one adds
what only the simulator has: particle and rigid-body state, per-episode domain-randomisation draws and
the env's two random generators, saved in the checkpoint (``ExcavationEnv.state_dict``) and rebuilt by
``excavation-train resume`` from the config alone (``build_env_factory``). On the CPU the code promises
bit-identical continuation (runner docstring: "continues a run exactly where it stopped"), so everything
is compared with ``torch.equal`` / ``==``, as the toy tests do.

Schedule: 70 mm then 60 mm, two iterations per stage at most, three iterations in all, 2 envs x 8 steps.
Split 1 resumes inside the 70 mm stage (mid-stage env state); split 2 resumes at 60 mm, after the
stage change, where a teacher and a fresh Q exist (the 60 mm env there is freshly built and reset, so
that split tests the learner's state more than the env's).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from training_helpers import small_config
from excavation_training import cli
from excavation_training.runners import PRPDRunner, build_env_factory
from excavation_training.runners.checkpoint import load_checkpoint

TOTAL = 3
# Wall-clock fields differ between any two runs; everything else in a metrics row must not.
TIMING_KEYS = {"iteration_seconds", "wall_seconds", "sim_seconds"}


def _cfg(path, reset_every_iteration):
    return small_config(path, env="excavation", num_envs=2, steps=8, resolutions=(70.0, 60.0),
                        **{"prpd.max_iterations_per_stage": 2, "runner.checkpoint_every": 1,
                           "runner.reset_every_iteration": reset_every_iteration})


def _metrics(run_dir):
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


def _same(a, b):
    """Bit-equality of nested checkpoint parts (tensors, numbers incl. NaN, RNG states)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _rows_equal(a, b):
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference for a reset mode: three iterations in one go (70, 70, 60 mm); built once each."""
    done = {}

    def run(reset_every_iteration):
        if reset_every_iteration not in done:
            run_dir = tmp_path_factory.mktemp("full")
            cfg = _cfg(run_dir, reset_every_iteration)
            runner = PRPDRunner(cfg, build_env_factory(cfg), run_dir)
            result = runner.learn(num_iterations=TOTAL)
            assert result.iterations == TOTAL and not result.interrupted
            done[reset_every_iteration] = (runner.state_dict(), _metrics(run_dir))
            runner.env.close()
        return done[reset_every_iteration]

    return run


# (split, reset_every_iteration). With resets at each iteration start (the default) the next rollout
# starts from a fresh episode, so the soil and rock state at the split is overwritten; without them
# the episodes run on across the split and the saved physics state is what the next step starts from.
CASES = [(1, True), (1, False), (2, False)]


@pytest.mark.parametrize("split,reset_every_iteration", CASES, ids=[f"split{s}-reset{r}" for s, r in CASES])
def test_cli_resume_with_the_newton_env_continues_bit_identically(tmp_path, capsys, uninterrupted, split, reset_every_iteration):
    full_state, full_rows = uninterrupted(reset_every_iteration)
    # The reference itself is the run this test is about: the real env at both resolutions, a teacher
    # and a Q in the second stage (else "identical" could be two runs that never left 70 mm).
    assert [r["resolution_mm"] for r in full_rows] == [70.0, 70.0, 60.0]
    assert full_state["teacher"] is not None and full_state["q"] is not None
    assert full_state["env"]["delta_mm"] == 60.0 and full_state["env"]["particle_q"].numel() > 0
    assert full_rows[-1]["alpha"] == full_rows[-1]["alpha"]  # not NaN: the transfer ran at 60 mm

    run_dir = tmp_path / "split"
    cfg = _cfg(run_dir, reset_every_iteration)
    first = PRPDRunner(cfg, build_env_factory(cfg), run_dir)
    assert first.learn(num_iterations=split).iterations == split
    first.env.close()
    del first

    # Resume as a user would: the CLI, from the run folder; it rebuilds the env from the saved config.
    capsys.readouterr()
    assert cli.main(["resume", str(run_dir), "--iterations", str(TOTAL - split), "--no-progress"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{\n"):])  # the CLI's JSON report (Warp may log lines before it)
    assert report["iterations"] == TOTAL and not report["interrupted"]

    resumed = load_checkpoint(run_dir)
    assert resumed["iteration"] == TOTAL
    # The learner: networks, optimiser moments, learning rate and beta, teacher, Q, schedule, counters.
    for part in ("policy", "ppo", "teacher", "q", "scheduler"):
        assert _same(resumed[part], full_state[part]), part
    untimed = lambda hist: [{k: v for k, v in h.items() if k not in TIMING_KEYS} for h in hist]  # noqa: E731
    assert _same(untimed(resumed["history"]), untimed(full_state["history"]))
    assert resumed["counters"]["samples"] == full_state["counters"]["samples"]
    # The random streams and the last observation the next iteration would start from.
    assert _same(resumed["rng"], full_state["rng"])
    assert torch.equal(resumed["obs"], full_state["obs"])
    # The simulator: physics state, episode draws and generators (what the toy env cannot show).
    for key in ("particle_q", "particle_qd", "body_q", "body_qd", "params", "tensors", "model", "gen", "np_rng", "sim_time"):
        assert _same(resumed["env"][key], full_state["env"][key]), f"env.{key}"
    # And the log: one row per iteration, each the uninterrupted run's row (returns, losses, alpha...).
    rows = _metrics(run_dir)
    assert [r["iteration"] for r in rows] == list(range(1, TOTAL + 1))
    assert _rows_equal(rows, full_rows)
