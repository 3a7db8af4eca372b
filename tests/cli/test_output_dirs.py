"""Output paths: the shared checks (an existing file, a file in the way, a read-only
folder), and reruns into a used folder (pretrain, train, predict) refused unless
``--resume`` continues or ``--overwrite`` replaces the earlier run, leaving nothing stale."""
from __future__ import annotations

import json

import pytest

from dama_det.cli import main
from dama_det.engine import QUICK_CONFIG
from dama_det.errors import DamaUserError
from dama_det.utils import check_output_dir, check_output_file, claim_output_dir, glob_outputs
from tests.helpers.disk_coco import make_disk_coco
from tests.helpers.pretrain_crops import small_args, write_crops
from tests.helpers.read_only import read_only
from tests.helpers.train_args import FAST

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture
def ro_dir(tmp_path, monkeypatch):
    folder = read_only(tmp_path / "ro", monkeypatch)
    yield folder
    folder.chmod(0o755)


def _error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1, err
    return err[0]


def test_check_output_dir_and_file(tmp_path, ro_dir):
    file = tmp_path / "file.txt"
    file.write_text("x")
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # nothing is created
    with pytest.raises(DamaUserError, match=r"file\.txt: --out must be a folder, but a file"):
        check_output_dir(file)
    with pytest.raises(DamaUserError, match=r"file\.txt/sub: cannot write --out there: .*"
                                            r"file\.txt is a file"):
        check_output_dir(file / "sub")
    with pytest.raises(DamaUserError, match=r"ro: cannot write --output-dir there: "
                                            r"permission denied"):
        check_output_dir(ro_dir, "--output-dir")
    with pytest.raises(DamaUserError, match=r"ro/sub: cannot write --out there: permission "
                                            r"denied \(in .*ro\)"):
        check_output_dir(ro_dir / "sub")
    assert check_output_file(file) == file  # replaced atomically
    with pytest.raises(DamaUserError, match="must be a file name, but it is a folder"):
        check_output_file(tmp_path)
    with pytest.raises(DamaUserError, match="permission denied"):
        check_output_file(ro_dir / "enc.pth")


def test_claim_output_dir_refuses_resumes_and_overwrites(tmp_path):
    out = tmp_path / "run"
    (out / "figures").mkdir(parents=True)
    for name in ("checkpoint-last.pth", "checkpoint-0005.pth", "log.jsonl", "keep.txt"):
        (out / name).write_text("x")
    earlier = glob_outputs(out, ("checkpoint-*.pth", "log.jsonl"))
    assert [p.name for p in earlier] == ["checkpoint-0005.pth", "checkpoint-last.pth", "log.jsonl"]
    with pytest.raises(DamaUserError, match=r"run: holds the outputs of an earlier run "
                                            r"\(checkpoint-0005.pth and 2 more\); add --resume"):
        claim_output_dir(out, earlier, flag="--output-dir")
    claim_output_dir(out, earlier, resume=True)
    assert all(p.exists() for p in earlier)
    claim_output_dir(out, earlier, overwrite=True, remove=[out / "figures"])
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    claim_output_dir(out, glob_outputs(out, ("checkpoint-*.pth",)))  # nothing earlier now


def test_pretrain_rerun_needs_resume_or_overwrite(tmp_path, capsys):
    data = write_crops(tmp_path / "crops", 4)
    out = tmp_path / "pre"
    assert main(["pretrain", *small_args(data, out, "--epochs", "2", "--save-every", "1")]) == 0
    assert (out / "checkpoint-0001.pth").is_file()
    capsys.readouterr()
    assert main(["pretrain", *small_args(data, out, "--epochs", "1")]) == 2
    line = _error_line(capsys)
    assert str(out) in line and "--resume" in line and "--overwrite" in line
    assert main(["pretrain", *small_args(data, out, "--epochs", "1", "--overwrite")]) == 0
    assert not (out / "checkpoint-0002.pth").exists()  # the old periodic checkpoints went
    assert len((out / "log.jsonl").read_text().splitlines()) == 1  # one run, not appended
    assert main(["pretrain", *small_args(data, out, "--epochs", "2", "--resume", "auto")]) == 0
    assert len((out / "log.jsonl").read_text().splitlines()) == 2


def test_train_rerun_needs_resume_or_overwrite(tmp_path, capsys):
    data = make_disk_coco(tmp_path / "data", "train", n_images=1)
    out = tmp_path / "det"
    argv = ["train", "--config-file", QUICK_CONFIG, "--output-dir", str(out), "--train-json",
            str(data), "--val-json", str(data), "--device", "cpu"]
    assert main([*argv, *FAST]) == 0
    capsys.readouterr()
    assert main([*argv, *FAST]) == 2
    line = _error_line(capsys)
    assert str(out) in line and "--resume" in line and "--overwrite" in line
    (out / "model_0000099.pth").write_bytes(b"stale")
    assert main([*argv, "--overwrite", *FAST]) == 0
    assert not (out / "model_0000099.pth").exists()
    iterations = [json.loads(line)["iteration"] for line in
                  (out / "metrics.json").read_text().splitlines()]
    assert iterations == sorted(set(iterations))  # one run's metrics, not two appended
    assert main([*argv, "--resume", *FAST]) == 0  # continues (here: already at its end)


def test_predict_rerun_needs_overwrite_and_leaves_nothing_stale(trained_dir, image_folder,
                                                                tmp_path, capsys):
    out = tmp_path / "pred"
    weights = str(trained_dir / "model_final.pth")
    common = ["--weights", weights, "--out", str(out), "--device", "cpu", "--quiet"]
    assert main(["predict", str(image_folder), *common]) == 0
    assert (out / "slide_b_masks.tif").is_file()
    capsys.readouterr()
    single = str(image_folder / "slide_a.ome.tif")
    assert main(["predict", single, *common]) == 2
    line = _error_line(capsys)
    assert str(out) in line and "--overwrite" in line and "--resume" not in line
    (out / "notes.txt").write_text("mine")
    assert main(["predict", single, *common, "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "notes.txt", "predictions.json", "slide_a_masks.tif", "slide_a_overlay.png"]
