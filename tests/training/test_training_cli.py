"""The excavation-train CLI end to end on the toy env (no simulator): train, resume, evaluate, export."""

from __future__ import annotations

import json

import pytest

from excavation_training.cli import main
from excavation_training.export.bundle import load_bundle

SMALL = ["--env", "toy", "--no-progress", "--set", "env.num_envs=8", "--set", "runner.steps_per_iteration=16",
         "--set", "prpd.resolutions_mm=[40,20]", "--set", "prpd.max_iterations_per_stage=2",
         "--set", "policy.actor_hidden_dims=[16]", "--set", "policy.critic_hidden_dims=[16]",
         "--set", "q.hidden_dims=[16]", "--set", "ppo.num_learning_epochs=1", "--set", "q.num_epochs=1"]


@pytest.mark.parametrize("sub", [[], ["train"], ["resume"], ["evaluate"], ["export"]])
def test_help(sub, capsys):
    with pytest.raises(SystemExit) as exc:
        main(sub + ["--help"])
    assert exc.value.code == 0
    assert "usage: excavation-train" in capsys.readouterr().out


def test_train_resume_evaluate_export(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *SMALL, "--log-dir", str(run), "--iterations", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["iterations"] == 3 and not out["finished"]
    assert (run / "config.yaml").is_file() and (run / "metrics.csv").is_file()
    assert (run / "tensorboard").is_dir()

    assert main(["resume", str(run)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["iterations"] == 4 and out["finished"]
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4]
    for key in ("success_rate", "episode_return", "alpha", "policy_kl", "resolution_mm", "samples", "sim_seconds", "wall_seconds"):
        assert key in rows[-1]
    assert rows[-1]["alpha"] is not None and rows[0]["alpha"] is None  # teacher only in stage 2

    assert main(["evaluate", str(run), "--matrix", "--episodes", "8", "--resolutions", "40,20,10"]) == 0
    matrix = json.loads(capsys.readouterr().out)
    assert matrix["rows_trained_mm"] == [40.0, 20.0] and matrix["cols_eval_mm"] == [40.0, 20.0, 10.0]
    assert len(matrix["success_rate"]) == 2 and all(len(r) == 3 for r in matrix["success_rate"])
    assert (run / "evaluation" / "cross_resolution.png").stat().st_size > 1000

    bundle_dir = tmp_path / "bundle"
    assert main(["export", str(run), "--out", str(bundle_dir), "--episodes", "8", "--eval-resolutions", "20,10"]) == 0
    capsys.readouterr()
    bundle = load_bundle(bundle_dir)
    assert set(bundle.meta["evaluation"]["success_rate"]) == {"20", "10"}
    assert bundle.meta["training"]["final_resolution_mm"] == 20.0
    assert bundle.meta["training"]["schedule_complete"] is True
    # A snapshot of an earlier stage is not the end of the schedule.
    early = tmp_path / "bundle_stage0"
    assert main(["export", str(run / "stages" / "stage0_40mm.pt"), "--out", str(early), "--no-eval"]) == 0
    capsys.readouterr()
    meta = load_bundle(early).meta["training"]
    assert meta["final_resolution_mm"] == 40.0 and meta["schedule_complete"] is False

    assert main(["evaluate", str(bundle_dir), "--episodes", "8", "--resolutions", "20", "--dr", "on"]) == 0
    res = json.loads(capsys.readouterr().out)["results"][0]
    assert res["randomize"] is True and res["episodes"] == 8


def test_cli_reports_bad_config(tmp_path, capsys):
    assert main(["train", "--env", "toy", "--set", "prpd.success_threshold=2", "--log-dir", str(tmp_path)]) == 2
    assert "prpd.success_threshold must be in" in capsys.readouterr().err
    for bad, message in (("ppo.lr=1", "unknown config key 'ppo.lr': ppo has ["),
                         ("ppo.learning_rate=fast", "ppo.learning_rate must be a number, got 'fast'")):
        assert main(["train", "--env", "toy", "--set", bad, "--print-config"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("excavation-train train: error: ") and message in err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert main(["resume", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_print_config(capsys):
    assert main(["train", "--preset", "cpu", "--preset", "direct", "--print-config"]) == 0
    text = capsys.readouterr().out
    assert "resolutions_mm:\n  - 70.0\n  - 10.0" in text and "num_envs: 16" in text
