"""The overview pyramid: level sizes, SAR multilooking (power, not dB; nodata carried) and streaming build."""

from __future__ import annotations

import numpy as np
import pytest

from sar_codec.overviews import (
    Level,
    PyramidWriter,
    from_power,
    level_sizes,
    levels_from_header,
    multilook,
    plan_levels,
    to_power,
)
from sar_codec.tiling import BlockGrid


def test_levels_halve_until_the_longer_side_is_at_most_512():
    assert level_sizes(512, 300) == []
    assert level_sizes(513, 100) == [(257, 50)]
    assert level_sizes(25000, 16700) == [(12500, 8350), (6250, 4175), (3125, 2088), (1563, 1044), (782, 522),
                                         (391, 261)]


def test_plan_numbers_level_blocks_after_the_scene_blocks():
    levels = plan_levels(1100, 300, 128, 64, first_block=27)
    assert [(lv.level, lv.width, lv.height) for lv in levels] == [(1, 550, 150), (2, 275, 75)]
    assert levels[0].first_block == 27 and levels[0].block_count == 5 * 2
    assert levels[1].first_block == 37 and levels[1].block_count == 3 * 1
    header = {"overviews": [lv.to_json() for lv in levels]}
    assert levels_from_header(header, 27, 128, 64) == levels
    assert levels_from_header({}, 27, 128, 64) == []
    header["overviews"][1]["first_block"] = 38
    with pytest.raises(ValueError, match="overview level 2 is inconsistent"):
        levels_from_header(header, 27, 128, 64)


def test_multilook_averages_linear_power_over_valid_parents():
    db = np.array([[[0.0, 10.0, -20.0], [np.nan, np.nan, np.nan]]], dtype=np.float32)  # 1 band, 2 x 3
    power = to_power(db, np.isfinite(db), "db")
    out = multilook(power)
    assert out.shape == (1, 1, 2)
    assert out[0, 0, 0] == pytest.approx((1.0 + 10.0) / 2)  # the mean power, not the mean dB (5 dB)
    assert out[0, 0, 1] == pytest.approx(0.01)  # odd edge: its one valid parent
    assert np.isnan(multilook(np.full((1, 2, 2), np.nan, np.float32))).all()  # all parents invalid: invalid


@pytest.mark.parametrize("units, dtype, nodata", [("amplitude", "uint16", 0), ("db", "float32", np.nan),
                                                  ("power", "float32", -9999.0)])
def test_power_round_trips_to_native_units(units, dtype, nodata):
    rng = np.random.default_rng(0)
    power = rng.gamma(1.0, 1e4 if units == "amplitude" else 0.05, (2, 8, 8)).astype(np.float32) + 1
    power[:, :2] = np.nan
    raw, valid = from_power(power, units, dtype, nodata)
    assert raw.dtype == np.dtype(dtype) and np.array_equal(valid, np.isfinite(power))
    assert np.array_equal(raw[~valid], np.full((~valid).sum(), nodata, dtype), equal_nan=True)
    back = to_power(raw, valid, units)
    if units == "amplitude":  # amplitude DN are rounded to integers
        assert np.abs(np.sqrt(back[valid]) - np.sqrt(power[valid])).max() <= 0.5 + 1e-3
    else:
        assert np.allclose(back[valid], power[valid], rtol=1e-5)


def test_streamed_pyramid_equals_the_pyramid_of_the_whole_image():
    height, width, block = 1100, 300, 128
    rng = np.random.default_rng(1)
    power = rng.gamma(4.4, 1 / 4.4, (2, height, width)).astype(np.float32)
    power[:, :, :9] = np.nan  # a nodata border
    power[1, 500:700] = np.nan
    grid = BlockGrid(height, width, block, 64)
    levels = plan_levels(width, height, block, 64, grid.count)
    emitted = {}

    def emit(i, win, p):
        assert i not in emitted
        emitted[i] = (win, p.copy())

    writer = PyramidWriter(levels, width, 2, block, 64, "power", emit)
    for _, win in grid.blocks():
        part = power[:, win.row_off : win.row_off + win.height, win.col_off : win.col_off + win.width]
        writer.add_block(win, part, np.isfinite(part))
    expected = power
    for lv in levels:
        expected = multilook(expected)
        assert expected.shape == (2, lv.height, lv.width)
        level_grid = BlockGrid(lv.height, lv.width, block, 64)
        for j, win in level_grid.blocks():
            got_win, got = emitted.pop(lv.first_block + j)
            assert got_win == win
            want = expected[:, win.row_off : win.row_off + win.height, win.col_off : win.col_off + win.width]
            np.testing.assert_allclose(got, want, rtol=1e-6)
            assert np.array_equal(np.isnan(got), np.isnan(want))
    assert emitted == {}


def test_level_json_round_trip():
    lv = Level(2, 275, 75, 37, 3)
    assert Level.from_json(lv.to_json()) == lv
