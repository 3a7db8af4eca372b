"""The paper's table layout: labels, delta to random init, Err., Markdown/CSV, figure."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PIL import Image

from dama_det.classification.table import (
    MethodRow,
    build_table,
    format_duration,
    save_confusion_figure,
    to_csv,
    to_markdown,
)

RANDOM = [91.75, 91.19, 92.75, 92.69, 92.56, 92.31, 91.44, 91.06, 93.0, 91.06]
DAMA = [95.5, 94.5, 95.69, 96.25, 95.56, 95.44, 95.62, 94.94, 95.69, 95.25]


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (42.4, "42s"), (60, "1m"), (12 * 60 + 20, "12m"), (3600, "1h"),
    (5400, "1.5h"), (5 * 3600 + 100, "5h"), (35 * 3600, "35h"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_paper_rows_reproduce_the_readme_numbers():
    rows = [MethodRow("random", RANDOM, seconds=2 * 3600),
            MethodRow("DAMA", DAMA, seconds=5 * 3600, pretrain_epochs=500)]
    header, body = build_table(rows, 10)
    assert header == ["", *map(str, range(10)), "Avg.", "Err."]
    assert [len(r) for r in body] == [13, 13]
    assert body[0][0] == "Random init. (2h)" and body[1][0] == "DAMA 500 (5h)"
    assert body[0][-2:] == ["91.98(+0.00)", "8.02"]
    # the README prints 95.47(+3.49) for this row, but its fold values average to 95.444
    assert body[1][-2:] == ["95.44(+3.46)", "4.56"]
    assert body[1][1] == "95.50" and body[0][9] == "93.00"


def test_negative_delta_and_no_baseline():
    rows = [MethodRow("random", [80.0, 90.0], 30), MethodRow("mae", [70.0, 80.0], 90, 800)]
    _, body = build_table(rows, 2)
    assert body[1] == ["mae 800 (2m)", "70.00", "80.00", "75.00(-10.00)", "25.00"]
    _, body = build_table(rows[1:], 2)
    assert body[0][-2:] == ["75.00", "25.00"]
    with pytest.raises(ValueError, match="3 fold results, expected 2"):
        build_table([MethodRow("x", [1.0, 2.0, 3.0], 1)], 2)


def test_markdown_and_csv_shapes():
    rows = [MethodRow("random", [50.0, 60.0, 70.0], 5), MethodRow("dama", [60.0, 70.0, 80.0], 7, 3)]
    header, body = build_table(rows, 3)
    md = to_markdown(header, body).strip().splitlines()
    assert len(md) == 2 + len(rows)
    assert all(line.count("|") == 3 + 3 + 1 for line in md)
    assert "Avg. ↑" in md[0] and "Err. ↓" in md[0]
    assert "70.00(+10.00)" in md[3]
    table = list(csv.reader(io.StringIO(to_csv(header, body))))
    assert table[0] == ["method", "0", "1", "2", "Avg.", "Err."]
    assert table[2] == ["dama 3 (7s)", "60.00", "70.00", "80.00", "70.00(+10.00)", "30.00"]


def test_confusion_figure_is_a_png(tmp_path):
    conf = np.array([[5, 1, 0], [0, 6, 0], [2, 0, 4]])
    path = tmp_path / "cm.png"
    save_confusion_figure(path, conf, ["a", "b", "c"], "DAMA 500 (5h)")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100
