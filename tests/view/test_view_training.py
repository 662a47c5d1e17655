"""``excavation-train train --view``: RUN_DIR/view.rrd, read back with Rerun's reader, holds the PRPD curves
per iteration and the evaluation episodes at each stage change and at the end (soil, rock, bucket and its
path, each episode's success); training's own logs are the same with the view as without, and without
``--view`` training's code never imports Rerun (checked on the toy env: Newton itself imports Rerun,
when installed, for its own optional viewer)."""

import json
import os
import subprocess
import sys

import pytest
import torch

from view_helpers import REPO, read_rrd, read_scalars

pytestmark = pytest.mark.timeout(240)  # the 70 mm test compiles the simulator's kernels on a cold cache

torch.set_num_threads(1)  # the machine is shared (as in tests/training)

TINY = ["--no-progress", "--set", "runner.tensorboard=false", "--set", "policy.actor_hidden_dims=[16]",
        "--set", "policy.critic_hidden_dims=[16]", "--set", "q.hidden_dims=[16]", "--set", "ppo.num_learning_epochs=1",
        "--set", "q.num_epochs=1"]
TOY = ["--env", "toy", *TINY, "--set", "env.num_envs=8", "--set", "runner.steps_per_iteration=16",
       "--set", "prpd.resolutions_mm=[40,20]", "--set", "prpd.max_iterations_per_stage=2"]
TIMING = {"sim_seconds", "wall_seconds", "iteration_seconds"}


def train(run, *extra) -> dict:
    from excavation_training.cli import main

    assert main(["train", *extra, "--log-dir", str(run)]) == 0
    return read_rrd(run / "view.rrd") if (run / "view.rrd").exists() else {}


def metrics(run) -> list[dict]:
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_toy_run_logs_curves_and_episodes_at_each_stage_end(tmp_path, capsys):
    run = tmp_path / "view"
    found = train(run, *TOY, "--view")
    capsys.readouterr()
    rrd = run / "view.rrd"
    # Two stages of two iterations: a stage change at iteration 2, the schedule's end at 4 (logged once).
    assert read_scalars(rrd, "/prpd/resolution_mm") == [(1, 40.0), (2, 40.0), (3, 20.0), (4, 20.0)]
    assert [t for t, _ in read_scalars(rrd, "/train/success_rate")] == [1, 2, 3, 4]
    assert [t for t, _ in read_scalars(rrd, "/prpd/alpha")] == [3, 4], "alpha exists from the second stage on"
    assert [t for t, _ in read_scalars(rrd, "/eval/success_rate")] == [2, 4]
    assert found["/episode/success"]["rows"] == 2 * 2  # view.episodes (default 2) per evaluation
    assert found["/episode/success"]["times"]["episode"] == {1, 2, 3, 4}
    for e in ("/world/bucket", "/world/bucket_path", "/world/rock"):
        assert found[e]["times"]["iteration"] == {2, 4}, e
    # The episodes follow one another on sim_time: the second starts after the first ended.
    ends = sorted(found["/episode/success"]["sim_times"])
    assert len(ends) == 4 and ends == sorted(set(ends))

    # The view reads the policy in its own env: training is the same run without it.
    plain = tmp_path / "plain"
    assert train(plain, *TOY) == {}
    capsys.readouterr()
    assert not (plain / "view.rrd").exists()
    assert metrics(run) == metrics(plain)


def test_excavation_70mm_run_logs_the_soil_at_the_end(tmp_path, capsys):
    """The Newton env: the soil, the rock's boxes and the tray come from the env; a run stopped by
    --iterations before its stage ends logs its episodes at the end."""
    run = tmp_path / "run"
    found = train(run, "--env", "excavation", *TINY, "--set", "env.num_envs=2", "--set", "runner.steps_per_iteration=8",
                  "--set", "ppo.num_mini_batches=1", "--set", "q.num_mini_batches=1", "--set", "prpd.resolutions_mm=[70]",
                  "--set", "prpd.max_iterations_per_stage=5", "--set", "env.options.max_episode_steps=12",
                  "--set", "view.soil_every=3", "--iterations", "1", "--view")
    assert "view.rrd" in capsys.readouterr().err
    for e in ("/world/soil", "/world/rock", "/world/bucket", "/world/bucket_path", "/world/tray", "/episode/success",
              "/train/success_rate", "/prpd/resolution_mm", "/eval/success_rate"):
        assert e in found, f"{e} not in the recording; got {sorted(found)}"
    assert found["/episode/success"]["rows"] == 2
    frames = len(found["/world/bucket"]["sim_times"])
    assert frames == 2 * 12, "one frame per step of each episode (12 steps, each ends by its step limit at the latest)"
    # Soil every 3rd step of an episode and at its last: 0, 3, 6, 9, 11.
    assert found["/world/soil"]["rows"] == 2 * 5
    assert found["/world/soil"]["times"]["iteration"] == {1}


def test_bad_view_settings_and_a_missing_sdk_are_named(tmp_path, capsys, monkeypatch):
    from excavation_training.cli import main

    for bad, message in (("view.episodes=0", "view.episodes must be a positive integer, got 0"),
                         ("view.file=sub/v.rrd", "view.file must be a file name ending in .rrd")):
        assert main(["train", *TOY, "--set", bad, "--log-dir", str(tmp_path), "--view"]) == 2
        assert message in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "rerun", None)  # import rerun now raises ImportError
    assert main(["train", *TOY, "--log-dir", str(tmp_path / "run"), "--view"]) == 2
    err = capsys.readouterr().err
    assert "--view:" in err and "pip install rerun-sdk==0.41.0" in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists(), "it stops before training"


def test_rerun_is_imported_only_with_view(tmp_path):
    """In a fresh interpreter (this one has Rerun loaded already): not after a run without --view, and
    after one with it (so the check sees an import when there is one)."""
    code = ("import json, sys\n"
            "from excavation_training.cli import main\n"
            f"args = {json.dumps(['train', *TOY, '--set', 'prpd.max_iterations_per_stage=1', '--iterations', '1'])}\n"
            "seen = []\n"
            "for k, view in enumerate(([], ['--view'])):\n"
            f"    assert main(args + ['--log-dir', {str(tmp_path)!r} + f'/run{{k}}'] + view) == 0\n"
            "    seen.append('rerun' in sys.modules)\n"
            "print('SEEN', json.dumps(seen))\n")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=REPO, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.split("SEEN", 1)[1])
    assert seen == [False, True]
