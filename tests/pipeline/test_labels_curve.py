"""benchmarks/transfer/labels_curve.py: the paired differences and tables of item 4's curve."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dama_det.errors import DamaUserError

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "transfer" / "labels_curve.py"


@pytest.fixture(scope="module")
def curve():
    spec = importlib.util.spec_from_file_location("labels_curve", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def scores():
    # 10 %: three seeds of both methods; 100 %: dama lacks seed 2 (still running)
    return {(0.1, "random", 0): 49.0, (0.1, "random", 1): 50.0, (0.1, "random", 2): 48.0,
            (0.1, "dama-2480", 0): 50.0, (0.1, "dama-2480", 1): 50.5, (0.1, "dama-2480", 2): 50.5,
            (1.0, "random", 0): 52.0, (1.0, "random", 1): 52.0, (1.0, "random", 2): 51.0,
            (1.0, "dama-2480", 0): 51.5, (1.0, "dama-2480", 1): 53.0}


def test_pair_names_may_contain_hyphens(curve):
    methods = ["random", "init", "dama-2480"]
    assert curve.parse_pair("dama-2480-init", methods) == ("dama-2480", "init")
    assert curve.parse_pair("init-random", methods) == ("init", "random")
    with pytest.raises(DamaUserError, match="dama-620-init"):
        curve.parse_pair("dama-620-init", methods)


def test_run_argument_names_its_fault(curve):
    import argparse

    assert curve.parse_run("0.25:a.yaml:/out") == (0.25, Path("a.yaml"), Path("/out"))
    with pytest.raises(argparse.ArgumentTypeError, match="FRACTION:DESCRIPTION:OUT"):
        curve.parse_run("0.25:a.yaml")
    with pytest.raises(argparse.ArgumentTypeError, match="'quarter' is not a fraction"):
        curve.parse_run("quarter:a.yaml:/out")


def test_paired_uses_the_seeds_both_methods_have(curve, scores):
    r = curve.paired(scores, 0.1, "dama-2480", "random")
    assert r["seeds"] == [0, 1, 2]
    np.testing.assert_allclose(r["values"], [1.0, 0.5, 2.5])
    assert r["mean"] == pytest.approx(4.0 / 3)
    assert r["std"] == pytest.approx(np.std([1.0, 0.5, 2.5]))  # population std, as notes.md
    r = curve.paired(scores, 1.0, "dama-2480", "random")
    assert r["seeds"] == [0, 1]
    np.testing.assert_allclose(r["values"], [-0.5, 1.0])


def test_table_gives_means_seed_counts_and_pairs(curve, scores):
    lines = curve.table_lines(scores, ["random", "dama-2480"], [("dama-2480", "random")])
    text = "\n".join(lines)
    assert "| 10 % labels | 100 % labels |" in lines[0]
    assert "| random | 49.00 ± 0.82 (3) | 51.67 ± 0.47 (3) |" in text
    assert "| dama-2480 | 50.33 ± 0.24 (3) | 52.25 ± 0.75 (2) |" in text
    assert "+1.00 / +0.50 / +2.50; **+1.33 ± 0.85**" in text
    assert "-0.50 / +1.00; **+0.25 ± 0.75**" in text


def test_figure_is_written(curve, scores, tmp_path):
    path = curve.plot(scores, ["random", "dama-2480"], [("dama-2480", "random")], "t",
                      tmp_path / "curve.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
