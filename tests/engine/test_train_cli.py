"""``dama-det train`` / ``tools/train_net.py``: help, errors, default synthetic data,
``--weights``, config lookup."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dama_det.cli import main as cli_main
from dama_det.engine import QUICK_CONFIG, find_config_file
from dama_det.errors import DamaUserError
from tests.helpers.disk_coco import make_disk_coco
from tests.helpers.train_args import FAST, tiny_export

# Detectron2's COCO evaluator trips a numpy-2 deprecation once per predicted mask.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("cmd", [
    [sys.executable, "-m", "dama_det", "train", "--help"],
    [sys.executable, str(REPO / "tools" / "train_net.py"), "--help"],
])
def test_help(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for flag in ("--config-file", "--train-json", "--val-json", "--weights", "--resume",
                 "--eval-only", "--num-gpus", "--num-machines", "--amp", "KEY VALUE"):
        assert flag in proc.stdout, flag


def test_config_lookup_by_name():
    path = find_config_file("mask_rcnn_dama_vit_b_50ep_synth7")
    assert path == REPO / "configs" / "mask_rcnn_dama_vit_b_50ep_synth7.yaml"
    assert find_config_file(None).name == "mask_rcnn_dama_vit_tiny_50ep_synth7.yaml"
    with pytest.raises(DamaUserError, match="no such config file.*quick_schedules"):
        find_config_file("mask_rcnn_nope.yaml")


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    rc = cli_main(["train", *argv])
    return rc, capsys.readouterr().err


def test_user_errors_exit_2(tmp_path, capsys):
    rc, err = run_cli(capsys, "--config-file", "nope.yaml")
    assert rc == 2 and "error: nope.yaml: no such config file" in err
    rc, err = run_cli(capsys, "--config-file", "mask_rcnn_dama_vit_tiny_50ep_dsb2018.yaml",
                      "--output-dir", str(tmp_path / "a"))
    assert rc == 2 and "'dsb2018_train' has no COCO json" in err and "--train-json" in err
    rc, err = run_cli(capsys, "--config-file", QUICK_CONFIG, "--output-dir", str(tmp_path / "b"),
                      "--train-json", str(tmp_path / "missing.json"))
    assert rc == 2 and "missing.json: no such COCO json" in err
    rc, err = run_cli(capsys, "--config-file", QUICK_CONFIG, "--output-dir", str(tmp_path / "c"),
                      "MODEL.DAMA_VIT.NOT_A_KEY", "1")
    assert rc == 2 and "NOT_A_KEY" in err


def test_mismatched_weights_exit_2(tmp_path, capsys):
    root = tmp_path / "data"
    train = make_disk_coco(root, "train", n_images=1)
    export = tiny_export(tmp_path / "wide.pth", embed_dim=96)
    rc, err = run_cli(capsys, "--config-file", QUICK_CONFIG, "--output-dir", str(tmp_path / "o"),
                      "--train-json", str(train), "--val-json", str(train), "--weights",
                      str(export), *FAST)
    assert rc == 2 and "cannot be loaded into the ViT" in err and "embed_dim=96" in err


def test_default_trains_on_generated_synthetic_data_with_weights(tmp_path, capsys):
    out = tmp_path / "run"
    export = tiny_export(tmp_path / "enc.pth")
    rc, err = run_cli(capsys, "--config-file", QUICK_CONFIG, "--output-dir", str(out),
                      "--weights", str(export), *FAST)
    assert rc == 0, err
    for split in ("train", "val"):
        assert (out / "synth_data" / "tiles" / f"{split}.json").is_file()
    assert (out / "model_final.pth").is_file()
    log = (out / "log.txt").read_text()
    assert "Encoder weights from" in log and "loaded 27 encoder tensors" in log
    assert "Dataset synth_train" in log
