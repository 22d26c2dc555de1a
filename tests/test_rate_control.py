"""Rate control: the sample blocks the target-rate search codes, and the options it checks before any I/O.

The search itself (the highest quality at or below the target, its early stop and its notes) runs through the
codec in test_codec.py.
"""

from __future__ import annotations

import math

import pytest

from sar_codec import rate_control
from sar_codec.errors import InputError
from sar_codec.registry import DEFAULT_ARCHITECTURE, DEFAULT_QUALITY
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


@pytest.mark.parametrize(("quality", "target", "word"), [
    (2, 1.0, "either"), (None, 0.0, "positive"), (None, -2, "positive"), (None, math.nan, "positive"),
    (None, math.inf, "positive"), (None, "1", "positive"), (99, None, "Quality 99"),
])
def test_rate_options_are_checked_alone(quality, target, word):
    with pytest.raises(InputError, match=word):
        rate_control.check_rate_options(DEFAULT_ARCHITECTURE, quality, target)


def test_an_unknown_architecture_is_refused_without_a_quality():
    with pytest.raises(InputError, match="Unknown model 'jpeg'"):
        rate_control.check_rate_options("jpeg", None, 1.0)
    rate_control.check_rate_options(DEFAULT_ARCHITECTURE, None, 1.0)  # a known one passes
