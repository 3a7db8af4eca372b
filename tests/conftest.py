"""Shared test fixtures: the shared data folder and deterministic, single-thread CPU runs."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# Fixtures shared by several test modules (a tiny "trained" run folder, an image folder).
pytest_plugins = ["tests.helpers.predict_fixtures"]

# ../shared beside the repository (always present in CI; absent on a user's clone).
SHARED = Path(os.environ.get("DAMA_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DSB2018 = SHARED / "data" / "dsb2018"

# Tiny test models are overhead-bound: one thread is as fast as two on a quiet machine,
# several times faster on a busy one, and leaves a core to DDP tests' second process.
torch.set_num_threads(1)


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


@pytest.fixture(autouse=True)
def _drop_stale_log_handlers():
    """detectron2's ``setup_logger`` caches handlers bound to the ``sys.stdout`` of the
    test that first called it (pytest's capture stream, closed afterwards); remove them
    so later tests' logging does not write to a closed stream."""
    yield
    import logging

    for logger in [logging.getLogger()] + [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]:
        for h in list(logger.handlers):
            stream = getattr(h, "stream", None)
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) \
                    and stream is not None and stream not in (sys.__stdout__, sys.__stderr__):
                logger.removeHandler(h)
    try:
        from detectron2.utils.logger import setup_logger

        setup_logger.cache_clear()
    except ImportError:
        pass
