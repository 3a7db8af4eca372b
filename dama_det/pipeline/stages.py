"""Resumable pipeline stages: a stage is skipped when all its outputs exist, whole.

Every stage of ``dama-det demo`` and ``dama-det compare`` writes its outputs
atomically (temp file + rename) and is considered done when they all exist and are
complete (:func:`~dama_det.utils.io.is_complete_file`: not empty, an intact zip
directory for checkpoints), so a killed run continues where it stopped;
``force=True`` re-runs it anyway.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import DamaUserError, ReportedError
from ..options import StageOptions
from ..utils.io import is_complete_file

logger = logging.getLogger(__name__)


@dataclass
class StageResult:
    """What happened to one stage."""

    name: str
    skipped: bool
    seconds: float


def run_stage(
    name: str,
    outputs: Sequence[Path],
    fn: Callable[[], object],
    *,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> StageResult:
    """Run ``fn`` unless every path in ``outputs`` already exists.

    Args:
        name: human-readable stage name, printed in the progress log.
        outputs: files whose existence (complete, non-empty) means the stage is done.
        fn: the work; must create every path in ``outputs``.
        force: run even if the outputs exist.
        log: where progress lines go.

    Returns:
        A :class:`StageResult`.

    Raises:
        RuntimeError: ``fn`` returned without creating all of ``outputs``.
    """
    outputs = [Path(p) for p in outputs]
    if not force and outputs and all(is_complete_file(p) for p in outputs):
        log(f"[skip] {name}: outputs exist ({outputs[0]})")
        return StageResult(name, True, 0.0)
    log(f"[run ] {name}")
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    missing = [str(p) for p in outputs if not is_complete_file(p)]
    if missing:
        raise RuntimeError(f"stage {name!r} finished without writing {', '.join(missing)}")
    log(f"[done] {name} in {seconds:.1f} s")
    return StageResult(name, False, seconds)


def evaluation_lacks(metrics_file: Path, methods) -> bool:
    """Whether an existing ``metrics.json`` predates some of ``methods`` (a method added to
    a finished run), so that its evaluation stage must run again."""
    return metrics_file.is_file() and bool(set(methods) - set(json.loads(metrics_file.read_text())))


def iteration_schedule_opts(max_iter: int, step_fractions: Sequence[float] = (0.8, 0.95),
                            warmup_iters: int = 50) -> list[str]:
    """Detectron2 config overrides for a run of ``max_iter`` iterations.

    Sets MAX_ITER, the lr drops at ``step_fractions`` of the run (as explicit STEPS, which
    override a config's ``SOLVER.STEPS_FROM_FRACTIONS``), a warm-up of at most a quarter
    of the run, and a checkpoint every quarter (so a stopped run resumes).

    Returns:
        ``["SOLVER.MAX_ITER", "1000", "SOLVER.STEPS", "(800, 950)", ...]`` (no lr drop
        when the run is too short to place one: ``"()"``).
    """
    if max_iter < 1:
        raise DamaUserError(f"the detector needs at least 1 iteration, got {max_iter}")
    steps = tuple(sorted({int(f * max_iter) for f in step_fractions} - {0, max_iter}))
    return ["SOLVER.MAX_ITER", str(max_iter), "SOLVER.STEPS", str(steps),
            "SOLVER.STEPS_FROM_FRACTIONS", "False",
            "SOLVER.WARMUP_ITERS", str(min(warmup_iters, max(1, max_iter // 4))),
            "SOLVER.CHECKPOINT_PERIOD", str(max(1, max_iter // 4))]


def run_command(options: StageOptions, entry: Callable[[Any], object],
                log: Callable[[str], None] = print) -> None:
    """Run one stage's entry function on its typed options in this process, printing
    the equivalent ``dama-det`` command first (so the stage can be repeated by hand).

    Args:
        options: the stage's options (e.g. :class:`~dama_det.pretrain.options.PretrainOptions`).
        entry: the function ``dama-det <command>`` calls with them (e.g.
            :func:`~dama_det.pretrain.driver.run_pretraining`).
        log: where the command line goes.

    Raises:
        ReportedError: the stage stopped on a user error; its ``error:`` line is printed
            here, as the command line prints it, and this one says which stage stopped
            and how to continue.
    """
    log("      $ " + options.command_line())
    try:
        entry(options)
    except ReportedError as exc:  # its error line is already on stderr
        print(f"stopped: {exc}", file=sys.stderr)
        failed = exc
    except DamaUserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        failed = exc
    else:
        return
    raise ReportedError(f"'dama-det {options.COMMAND[0]}' failed (exit status 2, error above); "
                        "fix it and run the same command again to continue") from failed
