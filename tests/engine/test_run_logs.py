"""Two trainings in one process (compare / demo run stages in-process) keep separate
``log.txt`` files: Detectron2's cached ``setup_logger`` only ever adds handlers."""
from __future__ import annotations

import logging

from detectron2.utils.logger import setup_logger

from dama_det.engine.setup import reset_run_loggers, setup_dama_logger


def _start_run(out) -> None:
    # what engine.setup.setup() and detectron2's default_setup do for one run
    reset_run_loggers()
    setup_dama_logger(str(out))
    setup_logger(str(out), name="fvcore")
    setup_logger(str(out))


def test_second_run_does_not_write_into_the_first_runs_log(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    try:
        _start_run(first)
        logging.getLogger("detectron2.engine").info("line of run one")
        logging.getLogger("dama_det.engine").info("dama line of run one")
        _start_run(second)
        logging.getLogger("detectron2.engine").info("line of run two")
        logging.getLogger("dama_det.engine").info("dama line of run two")
        for handler in (logging.getLogger("detectron2").handlers
                        + logging.getLogger("dama_det").handlers):
            handler.flush()
        one = (first / "log.txt").read_text()
        two = (second / "log.txt").read_text()
        assert "line of run one" in one and "dama line of run one" in one
        assert "run two" not in one
        assert "line of run two" in two and "dama line of run two" in two
        assert "run one" not in two
        # one console and one file handler each: no duplicates after a reset
        assert len(logging.getLogger("detectron2").handlers) == 2
    finally:
        reset_run_loggers()
