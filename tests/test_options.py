"""Typed stage options (dama_det/options.py): the same defaults, checks and errors as the
command line they are derived from."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from dama_det.cli import build_parser, main
from dama_det.data.options import CropsOptions, SynthOptions, ToCocoOptions
from dama_det.engine.options import TrainOptions
from dama_det.errors import DamaUserError
from dama_det.evaluation.options import EvalOptions
from dama_det.inference.options import ClassicalOptions, PredictOptions
from dama_det.pretrain.options import ExportOptions, PretrainOptions
from dama_det.probe.options import ProbeOptions

# every stage: (options class, its required arguments on the command line, the same typed)
STAGES = [
    (SynthOptions, ["--out", "o"], dict(out="o")),
    (ToCocoOptions, ["F", "--out", "o.json"], dict(folder="F", out="o.json")),
    (CropsOptions, ["a.tif", "--out", "o"], dict(inputs=["a.tif"], out="o")),
    (PretrainOptions, ["--output-dir", "o"], dict(output_dir="o")),
    (ExportOptions, ["c.pth", "--out", "e.pth"], dict(checkpoint="c.pth", out="e.pth")),
    (TrainOptions, [], {}),
    (PredictOptions, ["a.tif", "--weights", "w.pth", "--out", "o"],
     dict(inputs=["a.tif"], weights="w.pth", out="o")),
    (ClassicalOptions, ["a.tif", "--out", "o"], dict(inputs=["a.tif"], out="o")),
    (ProbeOptions, ["--weights", "e.pth", "--task", "dense", "--data", "d"],
     dict(weights="e.pth", task="dense", data=Path("d"))),
    (EvalOptions, ["--gt", "g", "--results", "a=b", "--out", "o"],
     dict(gt="g", results=["a=b"], out="o")),
]
IDS = [cls.__name__ for cls, _, _ in STAGES]


def _cli_subparser(command: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in command:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def _field_default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


@pytest.mark.parametrize("cls, argv, required", STAGES, ids=IDS)
def test_defaults_equal_the_command_lines(cls, argv, required):
    cli = _cli_subparser(cls.COMMAND)
    flags = {a.dest: a for a in cli._actions if a.dest not in ("help", "func")
             and a.default is not argparse.SUPPRESS}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert set(fields) == set(flags)  # one field per flag of the subcommand
    for name, f in fields.items():
        default = _field_default(f)
        if default is dataclasses.MISSING:
            assert name in required, name  # only what the command line requires
            continue
        action = flags[name]
        expected = action.default
        if isinstance(expected, str) and callable(action.type):
            expected = action.type(expected)  # argparse converts string defaults
        if expected is None and action.nargs == argparse.REMAINDER:
            expected = []
        assert default == expected, name
    # parsing the required arguments gives the options built with only them
    parsed = cli.parse_args(argv)
    assert cls.from_namespace(parsed) == cls(**required)


@pytest.mark.parametrize("cls, argv, required", STAGES, ids=IDS)
def test_command_line_round_trip(cls, argv, required):
    opts = cls(**required)
    assert cls.from_argv(opts.argv()) == opts
    assert opts.command_line().startswith("dama-det " + " ".join(cls.COMMAND))


def test_rendered_command_of_non_defaults():
    opts = PretrainOptions(output_dir="out dir", epochs=3, flips=False, resume="auto",
                           crop_scale=(0.5, 1.0))
    assert opts.command_line() == ("dama-det pretrain --crop-scale 0.5 1.0 --no-flips "
                                   "--epochs 3 --output-dir 'out dir' --resume auto")
    assert PretrainOptions.from_argv(opts.argv()) == opts
    train = TrainOptions(output_dir="d", opts=["SOLVER.MAX_ITER", "6"], resume=True)
    assert train.argv()[-2:] == ["SOLVER.MAX_ITER", "6"]  # the KEY VALUE remainder last
    assert ClassicalOptions(inputs=["a"], out="o", channel=None).argv() == \
        ["a", "--channel", "mean", "--out", "o"]


def test_text_values_are_converted_as_on_the_command_line():
    opts = PretrainOptions(output_dir="o", blr="1e-3", epochs="4")  # e.g. from a YAML
    assert (opts.blr, opts.epochs) == (1e-3, 4)
    with pytest.raises(DamaUserError, match=r"argument --epochs: invalid int value: 'x'"):
        PretrainOptions(output_dir="o", epochs="x")
    ev = EvalOptions(gt="g", results=["a=b"], out="o", area_ranges="s:0:10")
    assert ev.area_ranges == {"s": (0.0, 10.0)}


def test_unknown_names_and_flags_are_named():
    opts = PretrainOptions(output_dir="o")
    with pytest.raises(DamaUserError, match="has no option 'epoch'"):
        opts.replace(epoch=3)
    with pytest.raises(TypeError):
        PretrainOptions(output_dir="o", epoch=3)
    with pytest.raises(DamaUserError, match="unrecognized arguments: --no-such-flag"):
        opts.with_args(["--no-such-flag", "1"])
    with pytest.raises(DamaUserError, match="argument --model: invalid choice: 'huge'"):
        opts.with_args(["--model", "huge"])
    changed = opts.with_args(["--epochs", "7", "--no-progress"])
    assert (changed.epochs, changed.progress, changed.output_dir) == (7, False, "o")


def test_options_named_maps_flags_to_fields():
    """The fields a flag list sets, in both spellings of a value; values, unknown flags
    and abbreviations name none."""
    named = PretrainOptions.options_named(["--patch-size", 8, "--warmup-epochs=1.5",
                                           "--no-progress", "-1", "--no-such-flag", "--epo"])
    assert named == {"patch_size", "warmup_epochs", "progress"}
    assert PretrainOptions.options_named([]) == set()


def test_validate_repeats_the_parsers_checks():
    with pytest.raises(DamaUserError, match=r"argument --batch: must be >= 1, got 0"):
        PredictOptions(inputs=["a"], weights="w", out="o", batch=0).validate()
    with pytest.raises(DamaUserError, match=r"argument --amp: invalid choice: 'fp8'"):
        PredictOptions(inputs=["a"], weights="w", out="o", amp="fp8").validate()
    with pytest.raises(DamaUserError, match="required: --out"):
        SynthOptions(out=None).validate()
    with pytest.raises(DamaUserError, match="not allowed with argument --weights"):
        ProbeOptions(weights="e.pth", random=True, task="dense", data=Path(".")).validate()


def _cli_error(capsys, argv: list[str]) -> str:
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code
    assert rc == 2
    return capsys.readouterr().err


def test_typed_calls_give_the_command_lines_errors(tmp_path, capsys):
    from dama_det.inference.predict_command import run_predict
    from dama_det.pretrain.driver import run_pretraining
    from dama_det.probe.run import run_probe

    missing = tmp_path / "nope"
    err = _cli_error(capsys, ["probe", "--weights", "e.pth", "--task", "dense",
                              "--data", str(missing)])
    with pytest.raises(DamaUserError) as typed:
        run_probe(ProbeOptions(weights="e.pth", task="dense", data=missing))
    assert err == f"error: {typed.value}\n" and "no such data folder" in err

    out = tmp_path / "pre"
    err = _cli_error(capsys, ["pretrain", "--output-dir", str(out), "--epochs", "-1"])
    with pytest.raises(DamaUserError) as typed:
        run_pretraining(PretrainOptions(output_dir=str(out), epochs=-1))
    assert err == f"error: {typed.value}\n" == "error: --epochs must be >= 1, got -1\n"
    assert not out.exists()  # nothing half-written

    err = _cli_error(capsys, ["predict", "a.tif", "--weights", "w.pth", "--out",
                              str(tmp_path / "p"), "--batch", "0"])
    with pytest.raises(DamaUserError) as typed:
        run_predict(PredictOptions(inputs=["a.tif"], weights="w.pth", out=str(tmp_path / "p"),
                                   batch=0))
    assert err.splitlines()[-1] == f"dama-det predict: error: {typed.value}"
    assert not (tmp_path / "p").exists()
