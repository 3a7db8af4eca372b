"""Detector checkpoints: atomic writes (an interrupted save leaves no partial file), a
run resumed at its end restores an empty ``model_final.pth``, completeness checks, and
``train --checkpoint`` / ``--eval-only`` refusing what does not fit the model."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from dama_det.cli import main as cli_main
from dama_det.engine import QUICK_CONFIG, build_argument_parser
from dama_det.engine.launch import main
from dama_det.utils import is_complete_file
from tests.helpers.disk_coco import make_disk_coco
from tests.helpers.train_args import FAST, tiny_export

# Detectron2's COCO evaluator trips a numpy-2 deprecation once per predicted mask.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def disks(tmp_path_factory) -> Path:
    return make_disk_coco(tmp_path_factory.mktemp("disks"), "train", n_images=1)


def parse(out: Path, data: Path, *extra: str):
    return build_argument_parser().parse_args(
        ["--config-file", QUICK_CONFIG, "--output-dir", str(out), "--train-json", str(data),
         "--val-json", str(data), "--seed", "0", *extra])


def test_interrupted_save_leaves_no_partial_checkpoint(tmp_path, disks, monkeypatch):
    """A failure (or a kill) while model_final.pth is written leaves the earlier files
    and no partial model_final.pth, not even a temporary file."""
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        if "model_final" in str(f):
            Path(f).write_bytes(b"PK\x03\x04 half a checkpoint")
            raise KeyboardInterrupt  # killed in the middle of the write
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", dying_save)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        main(parse(out, disks, *FAST, "SOLVER.CHECKPOINT_PERIOD", "1"))
    assert not (out / "model_final.pth").exists()
    assert is_complete_file(out / "model_0000001.pth")
    assert is_complete_file(out / (out / "last_checkpoint").read_text())
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_is_complete_file(tmp_path):
    path = tmp_path / "model_final.pth"
    assert not is_complete_file(path)
    path.write_bytes(b"")
    assert not is_complete_file(path)  # what a killed in-place write left behind
    torch.save({"model": {"w": torch.zeros(3)}}, path)
    assert is_complete_file(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert not is_complete_file(path)  # truncated: the zip directory at the end is gone
    (tmp_path / "metrics.json").write_text("{}")
    assert is_complete_file(tmp_path / "metrics.json")


def test_resume_at_the_end_restores_an_empty_model_final(tmp_path, disks):
    """The issue's state: model_final.pth left empty by a kill during its write, the
    last_checkpoint tag still on the periodic checkpoint of the last iteration."""
    out = tmp_path / "run"
    main(parse(out, disks, *FAST, "SOLVER.CHECKPOINT_PERIOD", "1"))
    (out / "model_final.pth").write_bytes(b"")
    (out / "last_checkpoint").write_text("model_0000001.pth")
    main(parse(out, disks, "--resume", *FAST, "SOLVER.CHECKPOINT_PERIOD", "1"))
    assert is_complete_file(out / "model_final.pth")
    assert torch.load(out / "model_final.pth", weights_only=False)["iteration"] == 1


def test_resume_from_an_empty_last_checkpoint_is_a_user_error(tmp_path, disks, capsys):
    out = tmp_path / "run"
    main(parse(out, disks, *FAST))
    last = (out / "last_checkpoint").read_text()
    (out / last).write_bytes(b"")  # a checkpoint written in place by an older version
    rc = cli_main(["train", *_argv(out, disks), "--resume", *FAST])
    err = capsys.readouterr().err
    assert rc == 2 and f"{last}: cannot resume from an empty or truncated" in err


def _argv(out: Path, data: Path) -> list[str]:
    return ["--config-file", QUICK_CONFIG, "--output-dir", str(out), "--train-json", str(data),
            "--val-json", str(data), "--device", "cpu"]


@pytest.mark.parametrize("eval_only", [False, True])
@pytest.mark.parametrize("kind", ["random dict", "encoder export", "missing"])
def test_train_checkpoint_is_checked_like_predict_weights(tmp_path, disks, capsys, kind,
                                                          eval_only):
    path = tmp_path / "ckpt.pth"
    if kind == "random dict":
        torch.save({"a": torch.zeros(3)}, path)
    elif kind == "encoder export":
        tiny_export(path)
    out = tmp_path / "run"
    rc = cli_main(["train", *_argv(out, disks), "--checkpoint", str(path),
                   *(["--eval-only"] if eval_only else []), *FAST])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert rc == 2 and len(err) == 1, err
    expected = "weights file not found" if kind == "missing" else "checkpoint lacks"
    assert str(path) in err[0] and expected in err[0]
    if kind != "missing":
        assert "model parameters" in err[0]  # predict's wording
    assert not out.exists()  # the run stopped before writing anything: nothing is left


def test_train_checkpoint_that_fits_is_loaded(tmp_path, disks, capsys):
    first = tmp_path / "first"
    main(parse(first, disks, *FAST))
    rc = cli_main(["train", *_argv(tmp_path / "second", disks), "--checkpoint",
                   str(first / "model_final.pth"), *FAST])
    assert rc == 0, capsys.readouterr().err
    assert os.path.isfile(tmp_path / "second" / "model_final.pth")
