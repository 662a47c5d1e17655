"""Training tests run on one thread (the machine is shared) and on toy envs only."""

from __future__ import annotations

import pytest
import torch
from training_helpers import small_config

torch.set_num_threads(1)


@pytest.fixture
def cfg_factory(tmp_path):
    return lambda **kw: small_config(tmp_path / "run", **kw)
