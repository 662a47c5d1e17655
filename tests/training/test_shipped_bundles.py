"""Every bundle in policies/ loads through the deployment loader and says how it was made."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import excavation_contract as contract
from excavation_contract.bundle import load_bundle

POLICIES = Path(__file__).resolve().parents[2] / "policies"
BUNDLES = sorted(p for p in POLICIES.iterdir() if p.is_dir())


def test_the_default_bundle_is_there():
    assert POLICIES / "default" in BUNDLES


@pytest.mark.parametrize("folder", BUNDLES, ids=[p.name for p in BUNDLES])
def test_shipped_bundle_validates_and_documents_its_evaluation(folder):
    bundle = load_bundle(folder)  # checksum, layout = contract, probe actions reproduced
    meta = bundle.meta
    assert "Reproduce" in meta.get("notes", ""), f"{folder.name}/policy.json notes must say how to reproduce it"
    rates = meta["evaluation"]["success_rate"]
    finest = f"{meta['training']['final_resolution_mm']:g}"
    assert finest in rates, f"{folder.name} was not evaluated at the resolution it finished at ({finest} mm)"
    obs = torch.zeros(4, contract.OBS_DIM)
    act = bundle(obs)
    assert act.shape == (4, contract.ACT_DIM) and torch.isfinite(torch.as_tensor(act)).all()
