"""The registry of pretraining methods: a method registered from outside the package (here,
from this test module) is accepted by `dama-det pretrain`, by a compare YAML and listed
in `--help`, with no other file changed; bad names give one clear error."""
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import torch

from dama_det.cli import main
from dama_det.errors import DamaUserError
from dama_det.pipeline.run_spec import load_run_spec
from dama_det.pretrain.dama import DAMAPretrainer, MethodConfig
from dama_det.pretrain.method_registry import (
    PretrainMethod,
    get_method,
    method_names,
    register_method,
    unregister_method,
)
from dama_det.pretrain.models_mae import mae_config
from tests.helpers.pretrain_crops import small_args, write_crops

#: a toy method: two MAE students with independent random masks, no regression
TOY = PretrainMethod("mae-toy", "two independent MAE students (a registry test)",
                     second_mask="random")


@pytest.fixture
def toy_method() -> Iterator[PretrainMethod]:
    """``mae-toy`` registered for one test, unregistered afterwards."""
    register_method(TOY)
    try:
        yield TOY
    finally:
        unregister_method(TOY.name)
    assert TOY.name not in method_names()


def test_builtin_methods_registered():
    assert method_names() == ("dama", "dama-ema", "dama-rand", "mae")
    assert not get_method("mae").two_students
    assert get_method("dama-rand").second_mask == "random"
    assert get_method("dama-ema").ema_teacher and get_method("dama").regression


def test_toy_method_is_pretrained_from_the_cli(tmp_path, toy_method, capsys):
    data = write_crops(tmp_path / "crops", 4)
    out = tmp_path / "run"
    args = small_args(data, out, "--epochs", "1", "--method", toy_method.name)
    assert main(["pretrain", *args]) == 0
    assert "encoder export" in capsys.readouterr().out
    record = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    assert "recon2" in record and "regression" not in record
    ckpt = torch.load(out / "checkpoint-last.pth", map_location="cpu", weights_only=False)
    assert ckpt["method_config"]["method"] == toy_method.name


def test_toy_method_in_compare_yaml(tmp_path, toy_method):
    path = tmp_path / "run.yaml"
    path.write_text("dataset: {type: synth}\ndetection: {config: x}\n"
                    f"methods: [random, {toy_method.name}, "
                    f"{{name: toy2, method: {toy_method.name}}}]\n")
    kinds = {m.name: (m.kind, m.method) for m in load_run_spec(path).methods}
    assert kinds["mae-toy"] == ("pretrain", "mae-toy") and kinds["toy2"] == ("pretrain", "mae-toy")


def test_toy_method_listed_in_help(toy_method, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["pretrain", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # help lines are wrapped
    assert "mae-toy" in text and "two independent MAE students" in text


def test_toy_method_model_terms(toy_method):
    torch.manual_seed(0)
    model = DAMAPretrainer(mae_config("test", img_size=64), MethodConfig(method=toy_method.name))
    assert model.student2 is not None and model.head is None and not model.is_ema
    loss, terms, out = model(torch.rand(2, 7, 64, 64), return_outputs=True)
    loss.backward()
    assert set(terms) == {"recon1", "recon2"} and "mask2" in out
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.student2.parameters())


def test_unknown_method_lists_registered(tmp_path, capsys):
    with pytest.raises(DamaUserError,
                       match="unknown method 'byol'; choose one of dama, dama-ema, dama-rand, mae"):
        get_method("byol")
    with pytest.raises(SystemExit):
        main(["pretrain", "--output-dir", str(tmp_path), "--method", "byol"])
    err = capsys.readouterr().err
    assert "invalid choice: 'byol'" in err and "mae" in err


def test_bad_definitions_rejected():
    with pytest.raises(ValueError, match="already registered"):
        register_method(PretrainMethod("mae", "again"))
    with pytest.raises(ValueError, match="second_mask"):
        PretrainMethod("x", "x", second_mask="checkerboard")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="need a second student"):
        PretrainMethod("x", "x", regression=True)
