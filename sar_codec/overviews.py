"""Overviews: the scene's reduced-resolution pyramid, multilooked as SAR is, stored as extra block slots.

Level k+1 halves level k (sizes rounded up) until the longer side is at most ``OVERVIEW_MAX_SIDE`` pixels. A
level-(k+1) pixel averages the linear power (amplitude squared, or 10^(dB/10)) of the valid pixels among its 2x2
level-k parents, and is valid when any of them is: the speckle is multilooked, dark water stays dark, and the
nodata border keeps its shape. Levels are cut into blocks like the scene and coded with the same model and
radiometric mapping; the header key ``overviews`` says where each level's blocks are (docs/container.md).

:class:`PyramidWriter` builds the pyramid while the scene streams through compression, one block row at a time:
each level holds one block row of its own pixels (float32), so memory grows with the scene's width, never with
its height (docs/container.md gives the numbers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .radiometry import Units, tabulated
from .tiling import BlockGrid, Window

OVERVIEW_MAX_SIDE = 512  # the pyramid stops at the first level whose longer side is at most this


@dataclass(frozen=True)
class Level:
    """One pyramid level: its size and where its blocks are among the container's block slots."""

    level: int
    width: int
    height: int
    first_block: int
    block_count: int

    def to_json(self) -> dict:
        return {"level": self.level, "width": self.width, "height": self.height, "first_block": self.first_block,
                "block_count": self.block_count}

    @classmethod
    def from_json(cls, d: dict) -> Level:
        return cls(int(d["level"]), int(d["width"]), int(d["height"]), int(d["first_block"]),
                   int(d["block_count"]))


def level_sizes(width: int, height: int, max_side: int = OVERVIEW_MAX_SIDE) -> list[tuple[int, int]]:
    """(width, height) of levels 1, 2, ...: halved (rounded up) until the longer side is at most ``max_side``."""
    sizes = []
    while max(width, height) > max_side:
        width, height = -(-width // 2), -(-height // 2)
        sizes.append((width, height))
    return sizes


def plan_levels(width: int, height: int, block_size: int, tile_size: int, first_block: int) -> list[Level]:
    """The levels of a scene's pyramid, their blocks numbered from ``first_block`` on."""
    levels = []
    for k, (w, h) in enumerate(level_sizes(width, height), start=1):
        count = BlockGrid(h, w, block_size, tile_size).count
        levels.append(Level(k, w, h, first_block, count))
        first_block += count
    return levels


def levels_from_header(header: dict, level0_blocks: int, block_size: int, tile_size: int) -> list[Level]:
    """The levels a scene header describes (none when it has no ``overviews`` key), checked for consistency."""
    levels = [Level.from_json(d) for d in header.get("overviews") or []]
    expected = level0_blocks
    for k, lv in enumerate(levels, start=1):
        grid = BlockGrid(lv.height, lv.width, block_size, tile_size)
        if lv.level != k or lv.first_block != expected or lv.block_count != grid.count or min(lv.width,
                                                                                                lv.height) <= 0:
            raise ValueError(f"overview level {k} is inconsistent (level {lv.level}, "
                                 f"first block {lv.first_block}, {lv.block_count} blocks)")
        expected += lv.block_count
    return levels


def overview_block_count(levels: list[Level]) -> int:
    return sum(lv.block_count for lv in levels)


def overview_bytes(container, levels: list[Level]) -> int:
    """Bytes the pyramid's blocks take in an open :class:`~sar_codec.container.Container` (read from its index)."""
    return sum(container.block_length(i) for lv in levels for i in range(lv.first_block,
                                                                         lv.first_block + lv.block_count))


# --- multilooking -----------------------------------------------------------------------------------


def to_power(raw: np.ndarray, valid: np.ndarray, units: Units) -> np.ndarray:
    """Linear power (float32) of samples in their native ``units``; NaN where not ``valid``."""
    out = _power(raw, units)
    out[~valid] = np.nan
    return out


@tabulated
def _power(raw: np.ndarray, units: Units) -> np.ndarray:
    v = raw.astype(np.float64)
    if units == "amplitude":
        v = v * v
    elif units == "db":
        v = 10.0 ** (v / 10.0)
    return v.astype(np.float32)


def from_power(power: np.ndarray, units: Units, dtype: str | np.dtype,
               nodata: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Samples in ``units`` and ``dtype`` and their validity from linear power (NaN = invalid); invalid samples
    hold the nodata value (NaN, or 0 for integers, when the scene has none)."""
    dtype = np.dtype(dtype)
    valid = np.isfinite(power)
    p = np.where(valid, power, 1.0).astype(np.float64)
    if units == "amplitude":
        v = np.sqrt(np.maximum(p, 0.0))
    elif units == "db":
        with np.errstate(divide="ignore"):
            v = 10.0 * np.log10(np.maximum(p, np.finfo(np.float64).tiny))
    else:
        v = p
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        v = np.clip(np.rint(v), max(info.min, 1), info.max)
    out = v.astype(dtype)
    fill = nodata if nodata is not None else (np.nan if dtype.kind == "f" else 0)
    out[~valid] = fill
    return out, valid


def multilook(power: np.ndarray) -> np.ndarray:
    """2x2 mean of the valid (finite) samples of (bands, rows, cols) linear power; odd edges have fewer parents.
    A result is NaN only where all its parents are."""
    c, h, w = power.shape
    if h % 2 or w % 2:
        padded = np.full((c, h + h % 2, w + w % 2), np.nan, dtype=np.float32)
        padded[:, :h, :w] = power
    else:
        padded = power
    total = np.zeros((c, padded.shape[1] // 2, padded.shape[2] // 2))  # float64: four float32 add exactly
    n = np.zeros(total.shape, dtype=np.uint8)
    for i in (0, 1):
        for j in (0, 1):
            parent = padded[:, i::2, j::2]
            finite = np.isfinite(parent)
            n += finite
            total += np.where(finite, parent, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan).astype(np.float32)


# --- building the pyramid while the scene streams through ---------------------------------------------

Emit = Callable[[int, Window, np.ndarray], None]  # (block id, window in its level, linear power)


class _LevelBuffer:
    """One block row of one level, filled from the level below; emits its blocks when the row is complete."""

    def __init__(self, level: Level, count: int, block_size: int, tile_size: int, emit: Emit,
                 upper: _LevelBuffer | None):
        self.level, self.emit, self.upper = level, emit, upper
        self.grid = BlockGrid(level.height, level.width, block_size, tile_size)
        self.block_size = block_size
        self.buffer = np.full((count, min(block_size, level.height), level.width), np.nan, dtype=np.float32)
        self.row0 = 0  # first row (in this level) of the block row being filled

    def put(self, row: int, col: int, power: np.ndarray) -> None:
        r = row - self.row0
        assert 0 <= r and r + power.shape[1] <= self.buffer.shape[1], "pyramid rows arrived out of order"
        self.buffer[:, r : r + power.shape[1], col : col + power.shape[2]] = power

    def rows_done(self, through: int) -> None:
        """Every row of this level above ``through`` is final: emit the block rows that are complete."""
        b, lv = self.block_size, self.level
        while self.row0 < lv.height and through >= min(self.row0 + b, lv.height):
            h = min(b, lv.height - self.row0)
            strip = self.buffer[:, :h]
            block_row = self.row0 // b
            for j in range(self.grid.cols):
                win = self.grid.block(block_row * self.grid.cols + j)
                self.emit(lv.first_block + block_row * self.grid.cols + j, win,
                          strip[:, :, win.col_off : win.col_off + win.width])
            if self.upper is not None:
                for c0 in range(0, lv.width, 2 * b):  # by pieces, so that temporaries stay block-sized
                    self.upper.put(self.row0 // 2, c0 // 2, multilook(strip[:, :, c0 : c0 + 2 * b]))
                self.upper.rows_done(-(-(self.row0 + h) // 2))
            self.buffer.fill(np.nan)
            self.row0 += b


class PyramidWriter:
    """Feed it the scene's blocks in row-major order (:meth:`add_block`); it emits every overview block once its
    pixels are known, through ``emit(block id, window in its level, linear power)``."""

    def __init__(self, levels: list[Level], width: int, count: int, block_size: int, tile_size: int,
                 units: Units, emit: Emit):
        self.width, self.units = width, units
        self.first: _LevelBuffer | None = None
        for lv in reversed(levels):
            self.first = _LevelBuffer(lv, count, block_size, tile_size, emit, self.first)

    def add_block(self, win: Window, raw: np.ndarray, valid: np.ndarray) -> None:
        """One level-0 block (blocks must come row by row, left to right)."""
        if self.first is None:
            return
        self.first.put(win.row_off // 2, win.col_off // 2, multilook(to_power(raw, valid, self.units)))
        if win.col_off + win.width == self.width:
            self.first.rows_done(-(-(win.row_off + win.height) // 2))
