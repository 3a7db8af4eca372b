"""Run descriptions of `dama-det compare`: parsing, validation, clear errors; stage skipping."""
from __future__ import annotations

from pathlib import Path

import pytest

from dama_det.cli import main
from dama_det.errors import DamaUserError
from dama_det.pipeline.run_spec import load_run_spec
from dama_det.pipeline.stages import run_stage

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "run.yaml"
    p.write_text(text)
    return p


def test_shipped_descriptions_parse():
    shipped = sorted((REPO / "configs" / "compare").glob("*.yaml"))
    assert len(shipped) >= 4
    for path in shipped:
        if "dsb2018" in path.name and not (REPO.parent / "shared" / "data" / "dsb2018").is_dir():
            continue
        spec = load_run_spec(path)
        names = [m.name for m in spec.methods]
        assert {"random", "mae", "dama"} <= set(names), path
        assert spec.seeds and spec.detection["config"]


def test_methods_kinds_and_relative_paths(tmp_path):
    (tmp_path / "enc.pth").write_bytes(b"x")
    spec = load_run_spec(_write(tmp_path, """
name: t
seeds: [3, 4]
dataset: {type: synth, tile_size: 128}
detection: {config: quick_schedules/mask_rcnn_dama_vit_instant_test.yaml, iters: 5}
methods: [random, dama, {name: d-rand, method: dama-rand}, {name: mine, weights: enc.pth}]
"""))
    kinds = {m.name: (m.kind, m.method) for m in spec.methods}
    assert kinds == {"random": ("random", None), "dama": ("pretrain", "dama"),
                     "d-rand": ("pretrain", "dama-rand"), "mine": ("weights", None)}
    assert spec.methods[3].weights == (tmp_path / "enc.pth").resolve()
    assert spec.seeds == [3, 4]


@pytest.mark.parametrize("text, needle", [
    ("dataset: {type: synth}\ndetection: {config: x}\nmethods: [byol]\n", "unknown method 'byol'"),
    ("dataset: {type: synth}\ndetection: {config: x}\nmethods: [dama, dama]\n", "unique"),
    ("dataset: {type: nope}\ndetection: {config: x}\nmethods: [dama]\n", "dataset.type"),
    ("dataset: {type: folders, train: missing_dir, val: v}\ndetection: {config: x}\nmethods: [dama]\n",
     "dataset.train"),
    ("dataset: {type: synth}\nmethods: [dama]\n", "missing key 'detection'"),
    ("dataset: {type: synth}\ndetection: {config: x}\nmethods: [dama]\nseeds: 3\n", "seeds"),
    ("dataset: {type: synth}\ndetection: {config: x}\nmethods: [{name: m, weights: no.pth}]\n",
     "does not exist"),
    ("dataset: {type: synth\n  detection: [\n", "invalid YAML"),
    ("datasets: {type: synth}\n", "unknown key(s) datasets"),
])
def test_bad_descriptions_name_the_key(tmp_path, text, needle):
    path = _write(tmp_path, text)
    with pytest.raises(DamaUserError, match=None) as err:
        load_run_spec(path)
    assert needle in str(err.value)
    assert str(path) in str(err.value)


def test_compare_cli_bad_description_is_one_error_line(tmp_path, capsys):
    rc = main(["compare", str(tmp_path / "missing.yaml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error:") and "missing.yaml" in err[0]


def test_run_stage_skips_existing_outputs_and_checks_them(tmp_path):
    out = tmp_path / "a.txt"
    calls = []
    run = lambda: (calls.append(1), out.write_text("x"))  # noqa: E731
    assert not run_stage("s", [out], run, log=lambda s: None).skipped
    assert run_stage("s", [out], run, log=lambda s: None).skipped
    assert not run_stage("s", [out], run, force=True, log=lambda s: None).skipped
    assert len(calls) == 2
    with pytest.raises(RuntimeError, match="without writing"):
        run_stage("t", [tmp_path / "never.txt"], lambda: None, log=lambda s: None)
