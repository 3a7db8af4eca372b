"""pipeline/steps.py: each stage builds its typed options and calls the entry function
its subcommand calls (no argument lists), logging the command that repeats it."""
from __future__ import annotations

from pathlib import Path

import pytest

from dama_det.engine.options import TrainOptions
from dama_det.errors import DamaUserError, ReportedError
from dama_det.pipeline import stages, steps
from dama_det.pretrain.options import ExportOptions, PretrainOptions


@pytest.fixture
def calls(monkeypatch):
    recorded = []
    monkeypatch.setattr(steps, "run_command",
                        lambda options, entry, log=print: recorded.append((options, entry)))
    return recorded


def test_train_step_calls_run_training_with_typed_options(calls, tmp_path):
    from dama_det.engine.launch import run_training

    final = steps.train_detector("cfg.yaml", tmp_path / "det", train_json=tmp_path / "t.json",
                                 val_json=tmp_path / "v.json", seed=3, weights=None, iters=8,
                                 opts=["MODEL.MASK_ON", "True"])
    (options, entry), = calls
    assert entry is run_training and final == tmp_path / "det" / "model_final.pth"
    assert options == TrainOptions(
        config_file="cfg.yaml", output_dir=str(tmp_path / "det"),
        train_json=str(tmp_path / "t.json"), val_json=str(tmp_path / "v.json"), seed=3,
        resume=True, opts=[*stages.iteration_schedule_opts(8), "MODEL.MASK_ON", "True"])


def test_pretrain_step_applies_free_form_flags_on_top(calls, tmp_path):
    from dama_det.pretrain.driver import run_pretraining

    steps.pretrain(tmp_path / "crops", tmp_path / "pre", method="mae", model="test", seed=1,
                   device="cpu", epochs=10, blr="2e-3", extra_args=["--epochs", "40",
                                                                    "--mask-ratio", "0.6"])
    (options, entry), = calls
    assert entry is run_pretraining
    assert options == PretrainOptions(
        data=str(tmp_path / "crops"), output_dir=str(tmp_path / "pre"), method="mae",
        model="test", seed=1, device="cpu", num_workers=0, resume="auto", epochs=40,
        blr=2e-3, mask_ratio=0.6)
    with pytest.raises(DamaUserError, match="unrecognized arguments: --epoks 3"):
        steps.pretrain(tmp_path / "crops", tmp_path / "pre", method="mae", model="test",
                       seed=1, device="cpu", extra_args=["--epoks", "3"])


def test_run_command_logs_the_command_and_reports_errors(tmp_path, capsys):
    lines, seen = [], []
    options = ExportOptions(checkpoint=str(tmp_path / "c.pth"), out="e.pth")
    stages.run_command(options, seen.append, lines.append)
    assert seen == [options]
    assert lines == [f"      $ dama-det export {tmp_path / 'c.pth'} --out e.pth"]

    def fails(_options):
        raise DamaUserError("c.pth: no such checkpoint")

    with pytest.raises(ReportedError, match=r"'dama-det export' failed \(exit status 2"):
        stages.run_command(options, fails, lines.append)
    assert capsys.readouterr().err == "error: c.pth: no such checkpoint\n"


def test_probe_step_with_a_missing_folder_stops_with_the_commands_error(tmp_path, capsys):
    with pytest.raises(ReportedError, match="'dama-det probe' failed"):
        steps.probe(tmp_path / "e.pth", tmp_path / "p.json", task="dense",
                    data=tmp_path / "nope", seed=0, log=lambda s: None)
    assert capsys.readouterr().err == f"error: {Path(tmp_path / 'nope')}: no such data folder\n"
