"""Shared test fixtures: the shared data folder and deterministic, small CPU runs."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

# ../shared beside the repository (always present in CI; absent on a user's clone).
SHARED = Path(os.environ.get("DAMA_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DSB2018 = SHARED / "data" / "dsb2018"

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def dsb2018_dir() -> Path:
    """The real DSB2018 nuclei folder; skips only when ../shared is absent."""
    if not DSB2018.is_dir():
        pytest.skip("../shared/data/dsb2018 not present (user clone)")
    return DSB2018


@pytest.fixture(autouse=True)
def _seed_everything():
    np.random.seed(0)
    torch.manual_seed(0)
    yield
