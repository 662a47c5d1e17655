"""Checkpoints: resume reproduces the uninterrupted run; interrupts and crashes never lose one."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from training_helpers import small_config, toy_factory
from excavation_training.runners import PRPDRunner
from excavation_training.runners import checkpoint as ckpt_mod


def _cfg(path):
    # Two resolutions, 3 iterations each: a resume after iteration 2 crosses the stage change,
    # one after iteration 4 restarts inside the stage that has a teacher and a Q-function.
    return small_config(path, env="toy", resolutions=(40.0, 20.0), **{"prpd.max_iterations_per_stage": 3})


def _assert_same_state(a: PRPDRunner, b: PRPDRunner):
    sa, sb = a.state_dict(), b.state_dict()
    for part in ("policy", "teacher"):
        for k in sa[part]:
            assert torch.equal(sa[part][k], sb[part][k]), f"{part}.{k}"
    for k in sa["q"]["q"]:
        assert torch.equal(sa["q"]["q"][k], sb["q"]["q"][k]), f"q.{k}"
    opt_a, opt_b = sa["ppo"]["optimizer"]["state"], sb["ppo"]["optimizer"]["state"]
    for i in opt_a:
        for k in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(opt_a[i][k], opt_b[i][k])
    assert sa["ppo"]["learning_rate"] == sb["ppo"]["learning_rate"]
    assert sa["scheduler"] == sb["scheduler"]
    assert sa["iteration"] == sb["iteration"]
    assert torch.equal(sa["obs"], sb["obs"])
    assert sa["counters"]["samples"] == sb["counters"]["samples"]


@pytest.mark.parametrize("split", [2, 4])
def test_resume_reproduces_uninterrupted_run(tmp_path, split):
    full = PRPDRunner(_cfg(tmp_path / "full"), toy_factory(), tmp_path / "full")
    full.learn(num_iterations=6)

    first = PRPDRunner(_cfg(tmp_path / "split"), toy_factory(), tmp_path / "split")
    first.learn(num_iterations=split)
    del first
    resumed = PRPDRunner.from_checkpoint(tmp_path / "split", toy_factory())
    assert resumed.iteration == split
    resumed.learn(num_iterations=6 - split)
    _assert_same_state(full, resumed)
    rows = [json.loads(ln) for ln in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == list(range(1, 7))


def test_sigterm_checkpoints_and_resume_matches(tmp_path):
    full = PRPDRunner(_cfg(tmp_path / "full"), toy_factory(), tmp_path / "full")
    full.learn(num_iterations=5)

    runner = PRPDRunner(_cfg(tmp_path / "int"), toy_factory(), tmp_path / "int")

    def kill_at_3(r, m):
        if m["iteration"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    result = runner.learn(callback=kill_at_3)
    assert result.interrupted and result.iterations == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))
    resumed = PRPDRunner.from_checkpoint(result.checkpoint, toy_factory())
    resumed.learn(num_iterations=2)
    _assert_same_state(full, resumed)


def test_hard_interrupt_saves_last_completed_iteration(tmp_path):
    runner = PRPDRunner(_cfg(tmp_path / "run"), toy_factory(), tmp_path / "run")

    def boom(r, m):
        if m["iteration"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.learn(callback=boom)
    ck = ckpt_mod.load_checkpoint(tmp_path / "run")
    assert ck["iteration"] == 2


def test_failed_checkpoint_write_keeps_previous_file(tmp_path, monkeypatch):
    runner = PRPDRunner(_cfg(tmp_path / "run"), toy_factory(), tmp_path / "run")
    runner.learn(num_iterations=1)
    latest = tmp_path / "run" / "checkpoints" / "latest.pt"
    before = latest.read_bytes()

    def broken_save(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.torch, "save", broken_save)
    with pytest.raises(OSError):
        runner.save_checkpoint(latest)
    monkeypatch.undo()
    assert latest.read_bytes() == before
    assert ckpt_mod.load_checkpoint(latest)["iteration"] == 1
    assert not [p for p in latest.parent.iterdir() if p.name.endswith(".tmp")]


def test_bad_checkpoint_fails_clearly(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        PRPDRunner.from_checkpoint(bad, toy_factory())
    torch.save({"format": "something-else"}, bad)
    with pytest.raises(ValueError, match="not a training checkpoint"):
        PRPDRunner.from_checkpoint(bad, toy_factory())
    with pytest.raises(FileNotFoundError, match="latest.pt"):
        PRPDRunner.from_checkpoint(tmp_path, toy_factory())
