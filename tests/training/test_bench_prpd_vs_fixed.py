"""bench/prpd_vs_fixed.py as a program, on the point env: sittings resume where they stopped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "prpd_vs_fixed.py"


def bench(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(BENCH), "--env", "point", "--resolutions", "70", "40", "10", "--methods", "prpd", "fixed_fine",
           "--num-envs", "8", "--steps", "16", "--budget-iterations", "12", "--max-stage-iterations", "4",
           "--checkpoint-every", "1", "--log-root", str(tmp_path / "runs"), "--out", str(tmp_path / "out.json"), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def rows(tmp_path: Path, method: str) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "runs" / method / "bench_rows.jsonl").read_text().splitlines()]


def test_a_second_sitting_continues_each_method_from_its_checkpoint(tmp_path):
    first = bench(tmp_path, "--sitting-iterations", "3")
    assert first.returncode == 0, first.stderr
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["complete"] is False and out["unfinished_methods"] == ["prpd", "fixed_fine"]
    assert "--resume" in first.stdout
    sitting1 = rows(tmp_path, "prpd")
    assert [r.get("iteration") for r in sitting1] == [1, 2, 3, None] and sitting1[-1]["end"] == "stopped"

    second = bench(tmp_path, "--sitting-iterations", "3", "--resume")
    assert second.returncode == 0, second.stderr
    sitting2 = [r for r in rows(tmp_path, "prpd") if "iteration" in r]
    assert [r["iteration"] for r in sitting2] == [1, 2, 3, 4, 5, 6]
    assert sitting2[:3] == sitting1[:3]  # the first sitting's rows are kept as they were
    walls = [r["wall_s"] for r in sitting2]
    assert walls == sorted(walls) and walls[3] > walls[2]  # the wall clock continues, it does not restart
    samples = [r["samples"] for r in sitting2]
    assert samples[3] - samples[2] == samples[1] - samples[0] == 8 * 16


def test_resume_refuses_a_different_profile(tmp_path):
    assert bench(tmp_path, "--sitting-iterations", "1").returncode == 0
    changed = bench(tmp_path, "--resume", "--tau", "0.5")
    assert changed.returncode == 2
    assert "tau" in changed.stderr and "--log-root" in changed.stderr
