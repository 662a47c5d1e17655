"""Policy bundle export and the validating loader."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training_helpers import small_config, toy_factory
import excavation_contract as contract
from excavation_training.export.bundle import BundleError, file_sha256, load_bundle
from excavation_training.export.torchscript import export_bundle, policy_mean_action
from excavation_training.runners import PRPDRunner


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    cfg = small_config(root / "run", env="toy", resolutions=(40.0, 20.0), **{"prpd.max_iterations_per_stage": 2})
    runner = PRPDRunner(cfg, toy_factory(), root / "run")
    runner.learn()
    return runner, root


def _export(runner, out, **kw):
    return export_bundle(
        runner.policy, out, action_low=runner.action_low, action_high=runner.action_high,
        training={"resolution_schedule_mm": list(runner.cfg.prpd.resolutions_mm), "final_resolution_mm": 20.0},
        evaluation={"success_rate": {"20": 0.5}}, config=runner.cfg.to_dict(), code_revision=runner.code_revision, **kw,
    )


def test_round_trip_equals_training_policy_mean_action(trained, tmp_path):
    runner, _ = trained
    # The normaliser has moved away from identity, so this also checks it is baked in.
    assert not torch.allclose(runner.policy.obs_normalizer.affine()[0], torch.zeros(contract.OBS_DIM))
    bundle = load_bundle(_export(runner, tmp_path / "b"))
    env = toy_factory(num_envs=64, seed=7)(20.0)
    obs = torch.cat([env.reset(), 3.0 * torch.randn(64, contract.OBS_DIM)])  # on- and off-distribution
    expected = policy_mean_action(runner.policy, obs, runner.action_low, runner.action_high)
    got = bundle(obs)
    assert torch.allclose(got, expected, atol=1e-6), (got - expected).abs().max()
    assert (got.abs() <= torch.as_tensor(contract.ACTION_LIMIT) + 1e-7).all()
    single = bundle(obs[0].numpy())
    assert single.shape == (contract.ACT_DIM,) and abs(single - expected[0].numpy()).max() < 1e-6

    meta = bundle.meta
    assert meta["layout"] == json.loads(json.dumps(contract.layout_dict()))
    assert meta["control_period_s"] == contract.CONTROL_PERIOD_S
    assert meta["training"]["resolution_schedule_mm"] == [40.0, 20.0]
    assert meta["evaluation"]["success_rate"] == {"20": 0.5}
    assert meta["config"]["prpd"]["resolutions_mm"] == [40.0, 20.0]


def test_loader_does_not_import_training_stack(trained, tmp_path):
    runner, _ = trained
    out = _export(runner, tmp_path / "b")
    code = (
        "import sys; from excavation_contract.bundle import load_bundle; "
        f"b = load_bundle({str(out)!r}); "
        "bad = [m for m in sys.modules if m.startswith(('newton', 'warp', 'rsl_rl', 'excavation_training'))]; "
        "assert not bad, bad; print(b.act_dim)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env())
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(contract.ACT_DIM)


def _env():
    import os

    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def _edit_meta(folder: Path, fn):
    meta = json.loads((folder / "policy.json").read_text())
    fn(meta)
    (folder / "policy.json").write_text(json.dumps(meta))


def _swap_in_another_export(folder: Path):
    """A valid TorchScript archive that is not the one policy.json describes."""
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(folder / "policy.pt"))


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda f: (f / "policy.pt").unlink(), "missing policy.pt"),
        (lambda f: (f / "policy.json").unlink(), "missing policy.json"),
        (lambda f: (f / "policy.json").write_text("{not json"), "not valid JSON"),
        (lambda f: _edit_meta(f, lambda m: m.update(format_version=99)), "unknown format_version 99"),
        (lambda f: _edit_meta(f, lambda m: m.pop("probe")), "lacks required keys \\['probe'\\]"),
        (lambda f: _edit_meta(f, lambda m: m["layout"]["observation"][3].update(name="bucket_yaw")),
         "observation field 3 name is 'bucket_yaw'"),
        (lambda f: _edit_meta(f, lambda m: m["layout"]["action"].pop()), "3 action fields, the contract has 4"),
        (lambda f: _edit_meta(f, lambda m: m["layout"].update(control_period_s=0.05)), "control_period_s"),
        (lambda f: _edit_meta(f, lambda m: m.update(obs_dim=7)), "disagree with the layout"),
        (lambda f: (f / "policy.pt").write_bytes(b"garbage"), "is damaged: not a complete TorchScript archive"),
        (lambda f: (f / "policy.pt").write_bytes((f / "policy.pt").read_bytes()[:-100]), "is damaged"),  # truncated
        (lambda f: _swap_in_another_export(f), "different exports"),
        (lambda f: _edit_meta(f, lambda m: m.update(action_low=["a", None])), "action_low=\\['a', None\\]"),
        (lambda f: _edit_meta(f, lambda m: m.update(action_low={"x": 1})), "got action_low="),
    ],
)
def test_bad_bundles_fail_clearly(trained, tmp_path, breakage, message):
    runner, _ = trained
    folder = _export(runner, tmp_path / "b")
    breakage(folder)
    with pytest.raises(BundleError, match=message):
        load_bundle(folder)


def _rescript(folder: Path, module: torch.nn.Module):
    """Replace policy.pt with another module and fix the hash, so only the behaviour check can catch it."""
    torch.jit.script(module).save(str(folder / "policy.pt"))
    _edit_meta(folder, lambda m: m.update(policy_sha256=file_sha256(folder / "policy.pt")))


class _Wrong(torch.nn.Module):
    def __init__(self, out_dim: int, value: float):
        super().__init__()
        self.out_dim, self.value = out_dim, value

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.full((obs.shape[0], self.out_dim), self.value)


@pytest.mark.parametrize(
    "module, message",
    [
        (_Wrong(3, 0.0), r"returns \(9, 3\)"),
        (_Wrong(4, float("nan")), "non-finite"),
        (_Wrong(4, 5.0), "outside"),
        (_Wrong(4, 0.01), "does not reproduce"),
    ],
)
def test_bundle_behaviour_checks(trained, tmp_path, module, message):
    runner, _ = trained
    folder = _export(runner, tmp_path / "b")
    _rescript(folder, module)
    with pytest.raises(BundleError, match=message):
        load_bundle(folder)


def test_export_refuses_non_contract_policy_and_existing_folder(trained, tmp_path):
    runner, _ = trained
    from excavation_training.config import PolicyConfig
    from excavation_training.models import ActorCritic

    point_policy = ActorCritic(2, 1, PolicyConfig(actor_hidden_dims=(8,), critic_hidden_dims=(8,)))
    with pytest.raises(ValueError, match="only contract-shaped policies"):
        export_bundle(point_policy, tmp_path / "p", action_low=[-0.1], action_high=[0.1], training={}, evaluation={},
                      config={}, code_revision=None)
    out = _export(runner, tmp_path / "b")
    with pytest.raises(FileExistsError, match="overwrite"):
        _export(runner, out)
    _export(runner, out, overwrite=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    shutil.rmtree(out)
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(out)
