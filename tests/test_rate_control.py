"""Rate control: the sample blocks the target-rate search codes, and the options it checks before any I/O.

The search itself (the highest quality at or below the target, its early stop and its notes) runs through the
codec in test_codec.py.
"""

from __future__ import annotations

import math

import pytest

from sar_codec import rate_control
from sar_codec.errors import InputError
from sar_codec.radiometry import Mapping
from sar_codec.registry import DEFAULT_ARCHITECTURE, DEFAULT_QUALITY, lookup
from sar_codec.tiling import BlockGrid


@pytest.mark.parametrize(("rows", "cols", "expected"), [
    (1, 1, [0]), (1, 3, [0, 1, 2]), (2, 2, [0, 1, 2, 3]), (10, 10, [0, 33, 66, 99]),
])
def test_sample_blocks_are_at_most_four_spread_from_first_to_last(rows, cols, expected):
    grid = BlockGrid(rows * 128, cols * 128, 128, 64)
    assert rate_control.sample_block_ids(grid) == expected


def test_without_a_target_the_asked_or_default_quality_is_used_and_nothing_is_coded():
    entry, note = rate_control.resolve_quality(DEFAULT_ARCHITECTURE, None, None, [], "cpu", [], 64, False)
    assert (entry.architecture, entry.quality, note) == (DEFAULT_ARCHITECTURE, DEFAULT_QUALITY, None)
    entry, _ = rate_control.resolve_quality(DEFAULT_ARCHITECTURE, 2, None, [], "cpu", [], 64, False)
    assert entry.quality == 2


def _band(db_per_unit: float) -> Mapping:
    return Mapping((-30.0, -30.0 + db_per_unit), (0.0, 1.0))


def test_a_quality_read_in_db_weighs_each_scene_by_its_db_per_unit():
    """Quality q in dB: lambda_q (s / DB_REFERENCE)**2, the nearest row in log lambda, s the bands' geometric mean
    of dB per unit: the asked row at the reference, the next one up where (s / ref)**2 is the lambdas' ratio."""
    asked, up = (lookup(DEFAULT_ARCHITECTURE, q) for q in (6, 7))
    ref = rate_control.DB_REFERENCE
    wider = ref * math.sqrt(up.lmbda / asked.lmbda)

    def row(*scales: float) -> int:
        return rate_control.db_quality(asked, [_band(s) for s in scales]).quality

    assert row(ref) == 6 and row(wider) == 7 and row(ref**2 / wider) == 5
    assert row(wider * 0.97) == 7 and row(ref * 1.03) == 6  # nearest in log lambda
    assert row(wider, ref**2 / wider) == 6  # two bands: their geometric mean
    assert row(ref * 100) == 9 and row(ref / 100) == 1  # the table's ends
    entry, _ = rate_control.resolve_quality(DEFAULT_ARCHITECTURE, 6, None, [], "cpu", [_band(wider)], 64, False, "db")
    assert entry.quality == 7


def test_db_per_unit_is_the_mappings_core_slope():
    """The core carries most samples; the tails, compressed TAIL_COMPRESSION times, carry more dB per unit."""
    from sar_codec.radiometry import TAIL_COMPRESSION, mapping_from_stats

    m = mapping_from_stats(-20.0, 0.0, -40.0, 10.0)
    span = 20.0 + (20.0 + 10.0) / TAIL_COMPRESSION  # [0, 1] holds the core's 20 dB and the tails, compressed
    assert m.db_per_unit() == pytest.approx(span, rel=1e-4)


@pytest.mark.parametrize(("quality", "target", "word"), [
    (2, 1.0, "either"), (None, 0.0, "positive"), (None, -2, "positive"), (None, math.nan, "positive"),
    (None, math.inf, "positive"), (None, "1", "positive"), (99, None, "Quality 99"),
])
def test_rate_options_are_checked_alone(quality, target, word):
    with pytest.raises(InputError, match=word):
        rate_control.check_rate_options(DEFAULT_ARCHITECTURE, quality, target)


@pytest.mark.parametrize(("allocation", "target", "word"), [("db", 1.0, "one or the other"), ("dB", None, "Unknown")])
def test_allocation_is_checked_alone(allocation, target, word):
    with pytest.raises(InputError, match=word):
        rate_control.check_rate_options(DEFAULT_ARCHITECTURE, None, target, allocation)


def test_an_unknown_architecture_is_refused_without_a_quality():
    with pytest.raises(InputError, match="Unknown model 'jpeg'"):
        rate_control.check_rate_options("jpeg", None, 1.0)
    rate_control.check_rate_options(DEFAULT_ARCHITECTURE, None, 1.0)  # a known one passes
