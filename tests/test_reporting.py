"""Report files: strict JSON, CSV tables and rate-distortion plots, written whole or not at all."""

from __future__ import annotations

import csv
import json
import math

import pytest

from sar_codec.reporting import json_safe, write_csv, write_json, write_rd_plot


def test_non_finite_numbers_become_strings_at_any_depth():
    value = {"a": math.nan, "b": [1.5, -math.inf, (math.inf, 2)], "c": {"d": None, "e": "x"}}
    assert json_safe(value) == {"a": "nan", "b": [1.5, "-inf", ["inf", 2]], "c": {"d": None, "e": "x"}}


def test_json_reports_are_strict_json(tmp_path):
    write_json(tmp_path / "r.json", {"psnr": math.inf, "rows": [{"bias": math.nan}]})
    text = (tmp_path / "r.json").read_text()
    assert "NaN" not in text and "Infinity" not in text and text.endswith("\n")
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict {c}")) == {
        "psnr": "inf", "rows": [{"bias": "nan"}]}


def test_csv_tables_have_their_head_then_their_rows(tmp_path):
    write_csv(tmp_path / "t.csv", ["codec", "bpp"], ([c, b] for c, b in (("jpeg", 0.5), ("q1", None))))
    with open(tmp_path / "t.csv", newline="") as f:
        assert list(csv.reader(f)) == [["codec", "bpp"], ["jpeg", "0.5"], ["q1", ""]]
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]  # no temporary file left


def test_a_failed_write_leaves_nothing(tmp_path):
    def rows():
        yield ["a", 1]
        raise RuntimeError("stopped")

    with pytest.raises(RuntimeError):
        write_csv(tmp_path / "t.csv", ["x", "y"], rows())
    assert list(tmp_path.iterdir()) == []


def test_the_rd_plot_is_a_png(tmp_path):
    write_rd_plot(tmp_path / "rd.png", {"jpeg": [(1.0, 30.0, 0.8), (0.5, 27.0, None)], "q1": [(0.4, 29.0, 0.7)]},
                  "a title")
    assert (tmp_path / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
