"""A comparison's output folder refuses a changed description (``settings.json``)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dama_det.cli import main
from dama_det.errors import DamaUserError
from dama_det.pipeline.run_settings import SETTINGS_FILE, check_and_record_settings
from dama_det.pipeline.run_spec import load_run_spec

BASE = """
dataset: {type: synth, n_train_tiles: 4}
pretrain: {model: test, epochs: 2}
detection: {config: quick_schedules/mask_rcnn_dama_vit_instant_test.yaml, iters: 7}
methods: [random, init, classical, {name: long, method: dama, pretrain: {epochs: 5}}]
"""


def _spec(tmp_path: Path, text: str, name: str = "run.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return load_run_spec(path)


def _record(tmp_path: Path, text: str, **kw) -> None:
    check_and_record_settings(tmp_path / "out", _spec(tmp_path, text), **kw)


def test_same_description_and_additions_continue(tmp_path):
    _record(tmp_path, BASE)
    _record(tmp_path, BASE)
    # more seeds, label fractions, test-time flips, a probe section, another method:
    # each writes its own folders, so every stored output stays valid
    _record(tmp_path, BASE.replace("n_train_tiles: 4", "n_train_tiles: 4, "
                                   "label_fraction: [0.1, 1.0]")
            .replace("iters: 7", "iters: 7, tta: flip")
            .replace("methods: [", "seeds: [0, 1, 2]\nprobe: {}\nmethods: [mae, "))
    recorded = json.loads((tmp_path / "out" / SETTINGS_FILE).read_text())["made_with"]
    assert sorted(recorded) == ["classical", "init", "long", "mae", "random"]
    assert recorded["long"]["pretrain"]["epochs"] == 5
    assert recorded["init"]["pretrain"]["epochs"] == 2
    assert "pretrain" not in recorded["random"] and "detection" not in recorded["classical"]


def test_changed_schedule_is_refused_naming_every_changed_key(tmp_path):
    _record(tmp_path, BASE)
    before = (tmp_path / "out" / SETTINGS_FILE).read_bytes()
    with pytest.raises(DamaUserError) as err:
        _record(tmp_path, BASE.replace("iters: 7", "iters: 9"))
    message = str(err.value)
    for method in ("random", "init", "long"):
        assert f"{method}.detection.iters: 7 -> 9" in message
    assert "classical" not in message  # trains nothing: its predictions stay valid
    assert "--out" in message and "--force" in message
    assert (tmp_path / "out" / SETTINGS_FILE).read_bytes() == before  # nothing recorded


@pytest.mark.parametrize("old, new, needle", [
    ("{name: long, method: dama, pretrain: {epochs: 5}}",
     "{name: long, method: dama, pretrain: {epochs: 6}}", "long.pretrain.epochs: 5 -> 6"),
    ("{name: long, method: dama,", "{name: long, method: mae,",
     "long.method.method: 'dama' -> 'mae'"),
    ("n_train_tiles: 4", "n_train_tiles: 5", "random.dataset.n_train_tiles: 4 -> 5"),
    ("epochs: 2}", "epochs: 3}", "init.pretrain.epochs: 2 -> 3"),
])
def test_changed_data_or_method_definition_is_refused(tmp_path, old, new, needle):
    _record(tmp_path, BASE)
    assert old in BASE
    with pytest.raises(DamaUserError, match=needle.replace(".", r"\.").replace("'", ".")):
        _record(tmp_path, BASE.replace(old, new))


def test_changed_shared_pretraining_leaves_random_init_alone(tmp_path):
    """The shared pretraining epochs reach ``init`` but not ``long`` (its own override)
    nor random init: only ``init`` is named."""
    _record(tmp_path, BASE)
    with pytest.raises(DamaUserError) as err:
        _record(tmp_path, BASE.replace("epochs: 2}", "epochs: 3}"))
    assert "init.pretrain.epochs: 2 -> 3" in str(err.value)
    assert "random." not in str(err.value) and "long." not in str(err.value)
    # without init, the same change is allowed
    _record(tmp_path, BASE.replace("epochs: 2}", "epochs: 3}").replace("init, ", ""))


def _record_done(tmp_path: Path, text: str, **kw) -> None:
    """As a run that finished: record, then the function called at its end."""
    check_and_record_settings(tmp_path / "out", _spec(tmp_path, text), **kw)()


def test_force_redoes_and_records_the_new_settings_when_done(tmp_path):
    _record(tmp_path, BASE)
    # a forced run stopped half way: its old outputs may remain, so the old record stays
    _record(tmp_path, BASE.replace("iters: 7", "iters: 9"), force=True)
    with pytest.raises(DamaUserError, match=r"detection\.iters: 7 -> 9"):
        _record(tmp_path, BASE.replace("iters: 7", "iters: 9"))
    _record_done(tmp_path, BASE.replace("iters: 7", "iters: 9"), force=True)
    recorded = json.loads((tmp_path / "out" / SETTINGS_FILE).read_text())["made_with"]
    assert recorded["random"]["detection"]["iters"] == 9
    _record(tmp_path, BASE.replace("iters: 7", "iters: 9"))  # now the recorded one
    with pytest.raises(DamaUserError, match=r"detection\.iters: 9 -> 7"):
        _record(tmp_path, BASE)


def test_damaged_record_is_a_user_error(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / SETTINGS_FILE).write_text("{not json")
    with pytest.raises(DamaUserError, match=r"settings\.json: not a settings record of dama-det"):
        _record(tmp_path, BASE)


def test_compare_cli_refuses_before_any_stage(tmp_path, capsys):
    """`dama-det compare` on a folder of another description: one error line, rc 2, and
    no stage runs (the synthetic data would be the first)."""
    out = tmp_path / "out"
    _record(tmp_path, BASE)
    desc = tmp_path / "changed.yaml"
    desc.write_text(BASE.replace("iters: 7", "iters: 8"))
    rc = main(["compare", str(desc), "--out", str(out)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1 and err[0].startswith("error:")
    assert "random.detection.iters: 7 -> 8" in err[0]
    assert sorted(p.name for p in out.iterdir()) == [SETTINGS_FILE]  # no data, no run.yaml


def test_changed_code_default_is_refused_for_the_methods_it_reaches(tmp_path, monkeypatch):
    """An upgrade that changes a pretraining default (here the weight init) would make
    ``init`` and ``long`` differently: both are named, random init and classical are not."""
    from dama_det.pipeline import code_settings

    _record(tmp_path, BASE)
    today = code_settings.pretraining_defaults()
    assert today["weight_init"] == "xavier_small_residual"
    monkeypatch.setattr(code_settings, "pretraining_defaults",
                        lambda: {**today, "weight_init": "xavier"})
    with pytest.raises(DamaUserError) as err:
        _record(tmp_path, BASE)
    message = str(err.value)
    for method in ("init", "long"):
        assert f"{method}.code.pretrain.weight_init: 'xavier_small_residual' -> 'xavier'" in message
    assert "random." not in message and "classical." not in message
    # with a description change beside it, the description's keys are named first
    with pytest.raises(DamaUserError) as err:
        _record(tmp_path, BASE.replace("iters: 7", "iters: 8"))
    message = str(err.value)
    assert message.index("init.detection.iters: 7 -> 8") < message.index(".code.")


def test_defaults_the_run_sets_itself_are_neither_recorded_nor_refused(tmp_path, monkeypatch):
    """Compare passes the model, epochs, batch size and channels (and blr, img_size or a
    flag in ``args`` where the description gives them), so a new default for one of them
    changes no output; an old record that still lists them continues."""
    from dama_det.pipeline import code_settings

    text = BASE.replace("epochs: 2}", "epochs: 2, args: [--mask-ratio, 0.7]}")
    _record(tmp_path, text)
    path = tmp_path / "out" / SETTINGS_FILE
    pretrain = json.loads(path.read_text())["made_with"]["init"]["code"]["pretrain"]
    assert not {"model", "method", "epochs", "batch_size", "in_chans", "mask_ratio"} \
        & set(pretrain)
    assert {"weight_init", "blr", "img_size", "warmup_epochs"} <= set(pretrain)
    today = code_settings.pretraining_defaults()
    monkeypatch.setattr(code_settings, "pretraining_defaults", lambda: {
        **today, "epochs": today["epochs"] + 1, "batch_size": 7, "mask_ratio": 0.5})
    _record(tmp_path, text)
    # a record written when these defaults were still listed (dama_det before this change)
    old = json.loads(path.read_text())
    for entry in old["made_with"].values():
        if "pretrain" in entry["code"]:
            entry["code"]["pretrain"].update(epochs=30, mask_ratio=0.8, batch_size=64)
    path.write_text(json.dumps(old))
    _record(tmp_path, text)
    assert "epochs" not in json.loads(path.read_text())["made_with"]["long"]["code"]["pretrain"]
    # a default the run does not set is still refused, with the description's blr given
    # (its default is then not recorded) and without
    monkeypatch.setattr(code_settings, "pretraining_defaults",
                        lambda: {**today, "warmup_epochs": 3.0, "blr": 0.5})
    with pytest.raises(DamaUserError) as err:
        _record(tmp_path, text)
    assert "long.code.pretrain.warmup_epochs" in str(err.value)
    assert "long.code.pretrain.blr" in str(err.value)
    given_blr, other = text.replace("epochs: 2,", "epochs: 2, blr: 1.0e-3,"), tmp_path / "b"
    other.mkdir()
    monkeypatch.setattr(code_settings, "pretraining_defaults", lambda: today)
    _record(other, given_blr)
    monkeypatch.setattr(code_settings, "pretraining_defaults", lambda: {**today, "blr": 0.5})
    _record(other, given_blr)


def test_edited_detector_config_file_is_refused_unless_the_run_sets_the_key(tmp_path):
    """The detector config as its file and _BASE_ chain resolve is recorded: a key the
    description leaves to the file is named when the file changes; keys the run sets
    itself (the schedule from ``iters``, the description's ``opts``) are not recorded."""
    from dama_det.engine.config_files import QUICK_CONFIG, find_config_file

    config = tmp_path / "detector.yaml"
    config.write_text(f"_BASE_: {find_config_file(QUICK_CONFIG)}\n")
    text = BASE.replace("config: quick_schedules/mask_rcnn_dama_vit_instant_test.yaml",
                        f"config: {config}, opts: [MODEL.RPN.NMS_THRESH, 0.6]")
    _record(tmp_path, text)
    recorded = json.loads((tmp_path / "out" / SETTINGS_FILE).read_text())["made_with"]
    detector = recorded["random"]["code"]["detector"]
    assert detector["MODEL.ROI_HEADS.NAME"] == "StandardROIHeads"
    assert not {"SOLVER.MAX_ITER", "SOLVER.STEPS", "MODEL.RPN.NMS_THRESH", "OUTPUT_DIR",
                "DATASETS.TRAIN", "SEED", "MODEL.WEIGHTS"} & set(detector)
    assert "detector" not in recorded["classical"]["code"]  # trains nothing
    assert recorded["init"]["code"]["model_size"]["depth"] == 2  # the test size
    # the schedule and the description's opts are the run's own: editing them in the file
    # changes no output
    config.write_text(config.read_text() + "SOLVER:\n  MAX_ITER: 99\n"
                      "MODEL:\n  RPN:\n    NMS_THRESH: 0.5\n")
    _record(tmp_path, text)
    config.write_text(config.read_text().replace("  RPN:", "  ROI_HEADS:\n    NAME: "
                                                 "CascadeROIHeads\n  RPN:"))
    with pytest.raises(DamaUserError) as err:
        _record(tmp_path, text)
    assert ("random.code.detector.MODEL.ROI_HEADS.NAME: 'StandardROIHeads' -> "
            "'CascadeROIHeads'") in str(err.value)
    assert "classical." not in str(err.value)


def test_record_from_before_code_settings_continues_and_is_completed(tmp_path):
    """An output folder recorded by an older dama_det (no ``code`` entry) continues, and
    the code settings are recorded from then on."""
    _record(tmp_path, BASE)
    path = tmp_path / "out" / SETTINGS_FILE
    old = json.loads(path.read_text())
    for entry in old["made_with"].values():
        del entry["code"]
    path.write_text(json.dumps(old))
    _record(tmp_path, BASE)
    recorded = json.loads(path.read_text())["made_with"]
    assert all("code" in entry for entry in recorded.values())
    assert recorded["init"]["code"]["pretrain"]["mask_ratio"] == 0.8
