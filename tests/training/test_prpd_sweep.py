"""bench/prpd_sweep.py: the censoring-aware aggregation on synthetic trials, and tiny sweeps on the
point env with Ray Tune (local, one CPU) and without it."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import prpd_stats
import prpd_trial

SWEEP = Path(__file__).resolve().parents[2] / "bench" / "prpd_sweep.py"


def trial(method, t, reached, seed=0, settings=None):
    """A synthetic trial row: reached tau at t, or censored at t."""
    return {"trial_id": f"{method}-{seed}", "method": method, "seed": seed, "settings": settings or {"tau": 0.8},
            "reached_tau": reached, "censored": not reached, "complete": True,
            "time_to_tau_wall_s": t if reached else None, "followup_wall_s": t,
            "time_to_tau_sampling_s": t / 10 if reached else None, "followup_sampling_s": t / 10,
            "samples_to_tau": int(t * 100) if reached else None, "followup_samples": int(t * 100)}


# ---------------------------------------------------------------------- the aggregation
def test_kaplan_meier_steps_follow_the_risk_set():
    # events at 10 and 40; three trials censored between them leave two at risk at 40
    steps = prpd_stats.kaplan_meier([10, 12, 14, 16, 40, 50], [True, False, False, False, True, False])
    assert steps[0] == (0.0, 1.0)
    assert [u for u, _ in steps[1:]] == [10.0, 40.0]
    assert steps[1][1] == pytest.approx(5 / 6)
    assert steps[2][1] == pytest.approx(5 / 6 * 1 / 2)


def test_censored_runs_are_not_averaged_as_finished():
    times = [10, 12, 14, 16, 40, 50]
    reached = [True, False, False, False, True, False]
    est = prpd_stats.estimate(times, reached, bootstrap=300)
    # taken as finished, the censored runs would give a median of 15; KM crosses 0.5 at 40 only
    assert np.median(times) == 15
    assert est["median"] == 40 and est["median_exact"] is True
    assert (est["reached"], est["censored"]) == (2, 4)


def test_a_curve_that_never_drops_to_one_half_is_a_bound():
    est = prpd_stats.estimate([10, 20, 30, 40, 50], [True, True, False, False, False], bootstrap=300)
    assert est["median_exact"] is False and est["median"] == 50
    assert est["median_text"].startswith("not reached: > 50")
    all_censored = prpd_stats.estimate([5, 7, 9], [False, False, False], bootstrap=300)
    assert all_censored["median_exact"] is False and all_censored["median"] == 9
    assert all_censored["ci95"]["high"] is None  # unbounded: no resample has a finite median
    assert all_censored["ci95"]["low"] is None and all_censored["ci95"]["low_exceeds"] >= 5


def test_bootstrap_ci_contains_the_median():
    rng = np.random.default_rng(3)
    times = list(rng.uniform(10, 100, 15))
    reached = [bool(x) for x in rng.uniform(size=15) < 0.8]
    est = prpd_stats.estimate(times, reached, bootstrap=500)
    assert est["median_exact"]
    lo, hi = est["ci95"]["low"], est["ci95"]["high"]
    assert lo is not None and lo <= est["median"]
    assert hi is None or est["median"] <= hi


def test_the_ratio_is_a_bound_when_fixed_fines_median_is_censored():
    rows = ([trial("prpd", t, True, seed=i) for i, t in enumerate([10, 11, 12, 13, 14])]
            + [trial("fixed_fine", t, r, seed=i) for i, (t, r) in enumerate([(30, True), (100, False), (100, False), (100, False), (100, False)])])
    (group,) = prpd_stats.aggregate(rows, bootstrap=300)
    fixed = group["methods"]["fixed_fine"]
    assert (fixed["finished"], fixed["censored"]) == (1, 4)
    assert fixed["time_to_tau"]["wall_s"]["median_exact"] is False
    r = group["ratio_prpd_over_fixed_fine"]["wall_s"]
    assert r["kind"] == "upper_bound"
    assert r["value"] == pytest.approx(12 / 100)  # PRPD's median over fixed-fine's bound, not over the finished run's 30
    assert r["text"].startswith("prpd / fixed_fine < 0.12")
    assert r["ci95"]["low"] == 0.0  # upper-bound resamples say nothing about how low it is


def test_an_exact_ratio_and_one_group_per_settings_combination():
    rows = []
    for tau in (0.5, 0.8):
        s = {"tau": tau}
        rows += [trial("prpd", t * tau, True, seed=i, settings=s) for i, t in enumerate([10, 20, 30])]
        rows += [trial("fixed_fine", t * tau, True, seed=i, settings=s) for i, t in enumerate([40, 50, 60])]
    summary = prpd_stats.aggregate(rows, bootstrap=300)
    assert [g["settings"]["tau"] for g in summary] == [0.5, 0.8]
    for g in summary:
        r = g["ratio_prpd_over_fixed_fine"]["wall_s"]
        assert r["kind"] == "exact" and r["value"] == pytest.approx(20 / 50)
        assert r["ci95"]["low"] <= r["value"] <= r["ci95"]["high"]
    json.dumps(prpd_stats.strip_private(summary), allow_nan=False)  # strict JSON: no arrays, NaN or inf left


# ---------------------------------------------------------------------- the sweep as a program
TINY = ["--env", "point", "--methods", "prpd", "fixed_fine", "--seeds", "0", "--resolutions", "70,40,10",
        "--num-envs", "8", "--steps", "16", "--budget-iterations", "8", "--max-stage-iterations", "3",
        "--advance-window", "8", "--tau", "0.3", "--checkpoint-every", "2", "--bootstrap", "100"]
ROW_KEYS = {"trial_id", "method", "seed", "settings", "reached_tau", "censored", "complete", "end", "time_to_tau_wall_s",
            "time_to_tau_sampling_s", "samples_to_tau", "followup_wall_s", "followup_sampling_s", "followup_samples",
            "wall_s", "sampling_s", "samples", "episodes", "successes", "iterations", "updates_per_resolution",
            "machine", "revision", "confirmation", "load1_max"}


def sweep(tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "out.json"
    cmd = [sys.executable, str(SWEEP), *TINY, "--storage", str(tmp_path / "runs"), "--out", str(out), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


def check_result(result: dict) -> None:
    trials = result["trials"]
    assert [t["method"] for t in trials] == ["prpd", "fixed_fine"]
    for t in trials:
        assert ROW_KEYS <= set(t), ROW_KEYS - set(t)
        assert t["complete"] and t["samples"] == 8 * 16 * t["iterations"]
        assert 0 <= t["successes"] <= t["episodes"] and t["episodes"] > 0
        assert 0 < t["sampling_s"] < t["wall_s"]
        assert sum(s["iterations"] for s in t["updates_per_resolution"]) == t["iterations"]
        assert t["censored"] == (not t["reached_tau"])
        if t["reached_tau"]:
            assert t["time_to_tau_wall_s"] == t["followup_wall_s"] and t["time_to_tau_sampling_s"] <= t["time_to_tau_wall_s"]
            c = t["confirmation"]  # evaluated on worlds of a seed no trial trains on
            assert c["episodes"] == 128 and 0 <= c["successes"] <= 128 and c["resolution_mm"] == 10.0
            assert c["seed"] == prpd_trial.CONFIRM_SEED_OFFSET + t["seed"] and c["ci95"][0] <= c["success_rate"] <= c["ci95"][1]
        else:
            assert t["time_to_tau_wall_s"] is None and t["confirmation"] is None
    assert [s["resolution_mm"] for s in trials[0]["updates_per_resolution"]][0] == 70.0
    assert [s["resolution_mm"] for s in trials[1]["updates_per_resolution"]] == [10.0]
    assert set(result["curves"]) == {t["trial_id"] for t in trials}
    (group,) = result["summary"]
    assert set(group["methods"]) == {"prpd", "fixed_fine"}
    assert result["complete"] and result["revision"] and result["machine"]["cpu_count"]
    assert result["commands"][0]["command"].startswith("python bench/prpd_sweep.py")


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="ray is not installed (optional: pip install -r requirements-sweep.txt)")
def test_a_two_trial_sweep_on_ray_tune(tmp_path):
    proc, result = sweep(tmp_path, "--num-cpus", "1", "--verbose", "0")
    assert result["runner"] == "ray_tune" and result["errored_trials"] == []
    check_result(result)
    (tmp_path / "out.json").with_suffix(".png").stat()
    # Tune kept the runner's checkpoints: each trial folder holds the reported ones
    exp = tmp_path / "runs" / "prpd_sweep"
    for t in result["trials"]:
        assert list((exp / t["trial_id"]).glob("checkpoint_*/latest.pt")), t["trial_id"]


def test_without_ray_the_same_trials_give_rows_of_the_same_schema(tmp_path):
    # -X importtime would be heavy; the program says whether ray was imported via -c below
    code = (f"import runpy, sys; sys.argv = [{str(SWEEP)!r}, '--no-ray', *{TINY!r}, '--storage', 'runs', '--out', 'out.json'];"
            "\ntry:\n    runpy.run_path(sys.argv[0], run_name='__main__')\nexcept SystemExit as e:\n    assert not e.code, e.code"
            "\nprint('RAY_IMPORTED', 'ray' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "RAY_IMPORTED False" in proc.stdout
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["runner"] == "sequential"
    check_result(result)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="ray is not installed (optional: pip install -r requirements-sweep.txt)")
def test_restore_continues_crashed_trials_from_their_last_tune_checkpoint(tmp_path):
    out = tmp_path / "out.json"
    base = [sys.executable, str(SWEEP), *TINY, "--methods", "fixed_fine", "--budget-iterations", "6", "--max-stage-iterations", "6",
            "--advance-window", "1000", "--num-cpus", "1", "--verbose", "0", "--out", str(out)]
    # every trial crashes at iteration 3, after the runner's checkpoint of iteration 2
    crashed = subprocess.run([*base, "--storage", str(tmp_path / "runs"), "--fail-at-iteration", "3"],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert crashed.returncode == 1, crashed.stdout[-3000:] + crashed.stderr[-3000:]
    first = json.loads(out.read_text())
    assert first["trials"] == [] and len(first["errored_trials"]) == 1 and not first["complete"]
    restored = subprocess.run([*base, "--restore", str(tmp_path / "runs" / "prpd_sweep")],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert restored.returncode == 0, restored.stdout[-3000:] + restored.stderr[-3000:]
    result = json.loads(out.read_text())
    (t,) = result["trials"]
    assert t["resumed_from_iteration"] == 2 and t["complete"] and t["censored"]  # the 1000-episode window never fills
    assert [r["iteration"] for r in result["curves"][t["trial_id"]]] == [1, 2, 3, 4, 5, 6]
    assert t["samples"] == 6 * 8 * 16  # the crashed iteration is redone, not counted twice
    walls = [r["wall_s"] for r in result["curves"][t["trial_id"]]]
    assert walls == sorted(walls)  # the wall clock continues from the checkpoint's row
    assert [c["command"].split(" --")[-1] for c in result["commands"]][-1].startswith("restore")


def test_the_confirmation_evaluates_the_trained_policy_on_worlds_never_trained_on(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from excavation_training.runners import env_factory

    p = SimpleNamespace(env="point", device="cpu", seed=3, resolutions=[70.0, 10.0], tau=0.3, num_envs=8, steps=16,
                        budget_iterations=2, max_stage_iterations=2, advance_window=8, checkpoint_every=1,
                        torch_threads=1, demo_steps=0, dagger_rounds=1, demo_noise=0.1, critic_warmup=0)
    prpd_trial.run_trial(p, "prpd", tmp_path)
    seeds = []
    real = env_factory.build_eval_factory
    monkeypatch.setattr(env_factory, "build_eval_factory", lambda cfg, **kw: seeds.append(cfg.runner.seed) or real(cfg, **kw))
    c = prpd_trial.confirm(p, "prpd", tmp_path, episodes=16)
    assert seeds == [prpd_trial.CONFIRM_SEED_OFFSET + 3] and c["seed"] == seeds[0]
    assert c["episodes"] == 16 and c["resolution_mm"] == 10.0 and 0 <= c["successes"] <= 16
    assert c["success_rate"] == c["successes"] / 16 and c["reaches_tau"] == (c["success_rate"] >= 0.3)


def test_the_result_file_names_no_machine_folder():
    import prpd_sweep

    root = prpd_sweep.BENCH.parent
    cmd = f"python bench/prpd_sweep.py --out /somewhere/else/x.json --storage {root / 'runs' / 's'} --tau 0.6"
    assert prpd_sweep.portable_command(cmd) == ("python bench/prpd_sweep.py --out '<elsewhere>/x.json' "
                                                "--storage runs/s --tau 0.6")
