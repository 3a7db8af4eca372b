"""Detector config mistakes are one ``error:`` line naming the file, line or key (train
and predict), the config-not-found list names detector configs only, and a valid
schedule is derived for any iteration count."""
from __future__ import annotations

from pathlib import Path

import pytest

from dama_det import get_dama_cfg
from dama_det.cli import main
from dama_det.engine import QUICK_CONFIG, find_config_file
from dama_det.engine.setup import apply_step_fractions, fit_schedule
from dama_det.errors import DamaUserError
from tests.helpers.disk_coco import make_disk_coco

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

BASE = f'_BASE_: "{find_config_file(QUICK_CONFIG)}"\n'

# (config text, text the error line must hold; {cfg} is the config's path)
CONFIGS = {
    "unparsable": ("MODEL:\n  DEVICE: [unclosed\n", "{cfg}: invalid YAML at line 3"),
    "missing base": ('_BASE_: "nope.yaml"\n', "{cfg}: _BASE_ file nope.yaml not found"),
    "broken base": ('_BASE_: "broken.yaml"\n', "broken.yaml: invalid YAML at line 2"),
    "empty": ("", "{cfg}: the config file is empty"),
    "not a mapping": ("- MODEL\n- SOLVER\n", "{cfg}: a config must map keys to values"),
    "pixel mean length": (BASE + "MODEL:\n  PIXEL_MEAN: [0.0, 0.0, 0.0]\n",
                          "{cfg}: MODEL.PIXEL_MEAN has 3 value(s) but MODEL.PIXEL_STD has 7"),
    "empty pixel mean": (BASE + "MODEL:\n  PIXEL_MEAN: []\n  PIXEL_STD: []\n",
                         "{cfg}: MODEL.PIXEL_MEAN is empty"),
    "unknown key": (BASE + "MODEL:\n  NOT_A_KEY: 1\n", "{cfg}: Non-existent config key: "
                    "MODEL.NOT_A_KEY"),
    "wrong type": (BASE + "SOLVER:\n  MAX_ITER: [1, 2]\n", "SOLVER.MAX_ITER"),
}


def _error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture
def config(tmp_path, request) -> tuple[Path, str]:
    text, expected = CONFIGS[request.param]
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    (tmp_path / "broken.yaml").write_text("MODEL: {DEVICE: [\n")
    return path, expected.format(cfg=path)


@pytest.mark.parametrize("config", list(CONFIGS), indirect=True)
def test_train_config_mistakes_are_one_line(config, tmp_path, capsys):
    path, expected = config
    out = tmp_path / "run"
    rc = main(["train", "--config-file", str(path), "--output-dir", str(out),
               "--device", "cpu", "SOLVER.MAX_ITER", "1"])
    assert rc == 2
    assert expected in _error_line(capsys)
    assert not out.exists()


def test_unknown_evaluator_is_refused_before_training(tmp_path, capsys):
    path = tmp_path / "cfg.yaml"
    path.write_text(BASE + "TEST:\n  EVALUATOR: cocoo\n")
    out = tmp_path / "run"
    rc = main(["train", "--config-file", str(path), "--output-dir", str(out),
               "--device", "cpu", "SOLVER.MAX_ITER", "1"])
    assert rc == 2
    assert "TEST.EVALUATOR must be one of 'cell', 'coco', got 'cocoo'" in _error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("config", list(CONFIGS), indirect=True)
def test_predict_config_mistakes_are_one_line(config, tmp_path, capsys):
    path, expected = config
    weights = tmp_path / "model_final.pth"
    weights.write_bytes(b"")  # the config is read first
    image = tmp_path / "img.tif"
    image.write_bytes(b"")
    rc = main(["predict", str(image), "--weights", str(weights), "--config-file", str(path),
               "--out", str(tmp_path / "pred"), "--device", "cpu", "--quiet"])
    assert rc == 2
    assert expected in _error_line(capsys)
    assert not (tmp_path / "pred").exists()


def test_config_not_found_lists_detector_configs_only():
    with pytest.raises(DamaUserError) as exc:
        find_config_file("mask_rcnn_nope.yaml")
    message = str(exc.value)
    assert "quick_schedules/mask_rcnn_dama_vit_instant_test.yaml" in message
    assert "compare/" not in message and "synth7_cpu" not in message


@pytest.mark.parametrize("max_iter, steps, expected", [
    (1, (15,), ()),
    (2, (0, 2, 1, 1), (1,)),
    (1000, (800, 950), (800, 950)),
])
def test_fit_schedule_keeps_the_steps_inside_the_run(max_iter, steps, expected):
    cfg = get_dama_cfg()
    cfg.SOLVER.MAX_ITER, cfg.SOLVER.STEPS, cfg.SOLVER.WARMUP_ITERS = max_iter, steps, 50
    fit_schedule(cfg)
    assert cfg.SOLVER.STEPS == expected and cfg.SOLVER.WARMUP_ITERS == min(50, max_iter)
    cfg.SOLVER.MAX_ITER = 0
    with pytest.raises(DamaUserError, match="SOLVER.MAX_ITER must be >= 1"):
        fit_schedule(cfg)


@pytest.mark.parametrize("epochs, from_fractions, fractions, expected", [
    (0, True, (0.8, 0.95), (800, 950)),
    (0, True, (0.5,), (500,)),
    (0, False, (0.8, 0.95), (1, 2)),   # off: the config's STEPS stand
    (2, True, (0.8, 0.95), (1, 2)),    # an epoch schedule sets them itself
])
def test_step_fractions_place_the_lr_drops_in_any_length(epochs, from_fractions, fractions,
                                                         expected):
    cfg = get_dama_cfg()
    cfg.SOLVER.MAX_ITER, cfg.SOLVER.STEPS, cfg.SOLVER.EPOCHS = 1000, (1, 2), epochs
    cfg.SOLVER.STEPS_FROM_FRACTIONS, cfg.SOLVER.STEP_FRACTIONS = from_fractions, fractions
    apply_step_fractions(cfg)
    assert tuple(cfg.SOLVER.STEPS) == expected


@pytest.mark.parametrize("fractions", [(0.8, 1.0), (0.0,), (-0.2,)])
def test_step_fractions_outside_the_run_are_a_user_error(fractions):
    cfg = get_dama_cfg()
    cfg.SOLVER.EPOCHS, cfg.SOLVER.STEPS_FROM_FRACTIONS = 0, True
    cfg.SOLVER.STEP_FRACTIONS = fractions
    with pytest.raises(DamaUserError, match=r"SOLVER.STEP_FRACTIONS must lie in \(0, 1\)"):
        apply_step_fractions(cfg)


def test_train_saves_the_steps_placed_by_fractions(tmp_path, capsys):
    """`dama-det train` resolves `SOLVER.STEPS_FROM_FRACTIONS` before training and saves
    the resolved lr drops in the run's config.yaml."""
    data = make_disk_coco(tmp_path / "data", "train", n_images=1)
    out = tmp_path / "run"
    rc = main(["train", "--config-file", QUICK_CONFIG, "--output-dir", str(out),
               "--train-json", str(data), "--val-json", str(data), "--device", "cpu",
               "SOLVER.EPOCHS", "0", "SOLVER.MAX_ITER", "4", "SOLVER.STEPS", "(100,)",
               "SOLVER.STEPS_FROM_FRACTIONS", "True", "SOLVER.STEP_FRACTIONS", "(0.5,)",
               "TEST.EVAL_PERIOD", "0"])
    assert rc == 0, capsys.readouterr().err
    saved = get_dama_cfg()
    saved.merge_from_file(str(out / "config.yaml"))
    assert tuple(saved.SOLVER.STEPS) == (2,) and saved.SOLVER.MAX_ITER == 4


@pytest.mark.parametrize("iters", [1, 3])
def test_compare_iteration_budget_trains_for_any_count(iters, tmp_path, capsys):
    """`detection: {iters: N}` of a compare description: the schedule options the
    pipeline passes, for counts too small for the config's own lr steps."""
    from dama_det.pipeline.stages import iteration_schedule_opts

    data = make_disk_coco(tmp_path / "data", "train", n_images=1)
    out = tmp_path / "run"
    rc = main(["train", "--config-file", QUICK_CONFIG, "--output-dir", str(out),
               "--train-json", str(data), "--val-json", str(data), "--device", "cpu",
               *iteration_schedule_opts(iters), "TEST.EVAL_PERIOD", "0"])
    assert rc == 0, capsys.readouterr().err
    assert (out / "model_final.pth").is_file()
