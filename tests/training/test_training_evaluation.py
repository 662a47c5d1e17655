"""Evaluation: success rate with DR on/off through the factory, and the cross-resolution matrix."""

from __future__ import annotations

import json

import pytest
import torch

from excavation_training.evaluation import cross_resolution_matrix, evaluate, save_matrix
from excavation_training.toy_envs import PointReachEnv


def _toward_goal(obs):
    # Perfect controller for PointReachEnv (1-D): step toward the observed goal.
    return (obs[:, 1:2] - obs[:, 0:1]).clamp(-0.1, 0.1)


def _factory(calls, **kw):
    def make(delta, randomize):
        calls.append((delta, randomize))
        return PointReachEnv(8, delta, seed=1, randomize=randomize, **kw)

    return make


def test_evaluate_counts_episodes_and_passes_dr_switch():
    calls = []
    good = evaluate(_toward_goal, _factory(calls), 20.0, episodes=20, randomize=True)
    idle = evaluate(lambda o: torch.zeros(o.shape[0], 1), _factory(calls), 20.0, episodes=20, randomize=False)
    assert calls == [(20.0, True), (20.0, False)]
    assert good.episodes == idle.episodes == 20
    assert good.success_rate == 1.0 and idle.success_rate < 0.2
    assert good.mean_length < idle.mean_length
    with pytest.raises(ValueError, match="episodes must be a positive integer"):
        evaluate(_toward_goal, _factory([]), 20.0, episodes=0)


def test_cross_resolution_matrix_json_and_png(tmp_path):
    policies = {10.0: _toward_goal, 70.0: lambda o: torch.zeros(o.shape[0], 1)}
    m = cross_resolution_matrix(policies, [70, 40, 10], _factory([]), episodes=8)
    assert m["rows_trained_mm"] == [70.0, 10.0] and m["cols_eval_mm"] == [70.0, 40.0, 10.0]
    assert m["success_rate"][1] == [1.0, 1.0, 1.0]
    assert max(m["success_rate"][0]) < 1.0
    j, p = save_matrix(m, tmp_path)
    assert json.loads(j.read_text()) == m
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
