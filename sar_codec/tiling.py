"""The scene's grid: blocks (the container's random-access unit) made of square tiles (the model's input), and the
window of a scene a caller asks to decode."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import InputError

if TYPE_CHECKING:
    from .scene_info import SceneInfo

DEFAULT_TILE_SIZE = 64  # pixels a side of the model's input (a model trained on larger crops names its own)
DEFAULT_BLOCK_SIZE = 512  # pixels a side of the container's random-access unit
DEFAULT_CROP = 1024  # largest side, in pixels, of the area a comparison evaluates (sar_codec.compare)


@dataclass(frozen=True)
class Window:
    row_off: int
    col_off: int
    height: int
    width: int

    def intersection(self, other: Window) -> Window | None:
        r0, c0 = max(self.row_off, other.row_off), max(self.col_off, other.col_off)
        r1 = min(self.row_off + self.height, other.row_off + other.height)
        c1 = min(self.col_off + self.width, other.col_off + other.width)
        return Window(r0, c0, r1 - r0, c1 - c0) if r1 > r0 and c1 > c0 else None


def scene_tile_size(model_tile: int, height: int, width: int, block_size: int) -> int:
    """The tile size a scene is coded with when none is asked for: the model's (what it was trained on), halved
    while it is larger than the scene's shorter side (a small chip is not padded out to a large tile) or does not
    divide the block size, down to 64."""
    tile = model_tile
    while tile > DEFAULT_TILE_SIZE and (tile > min(height, width) or block_size % tile):
        tile //= 2
    return max(tile, DEFAULT_TILE_SIZE)


def check_tile_size(tile_size: int, what: str = "Tile size") -> None:
    """InputError unless ``tile_size`` is a positive multiple of 64 (``what``: its name in the sentence)."""
    if isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size <= 0 or tile_size % 64:
        raise InputError(f"{what} {tile_size} is not a positive multiple of 64.")


def check_sizes(tile_size: int, block_size: int) -> None:
    """InputError unless the tile size is a positive multiple of 64 and the block size a multiple of it."""
    check_tile_size(tile_size)
    if (isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < tile_size
            or block_size % tile_size):
        raise InputError(f"Block size {block_size} is not a multiple of the tile size {tile_size}.")


@dataclass(frozen=True)
class BlockGrid:
    """Blocks of ``block_size`` pixels over a ``height`` x ``width`` scene, each cut into ``tile_size`` tiles."""

    height: int
    width: int
    block_size: int
    tile_size: int

    @property
    def rows(self) -> int:
        return -(-self.height // self.block_size)

    @property
    def cols(self) -> int:
        return -(-self.width // self.block_size)

    @property
    def count(self) -> int:
        return self.rows * self.cols

    def block(self, index: int) -> Window:
        r, c = divmod(index, self.cols)
        r0, c0 = r * self.block_size, c * self.block_size
        return Window(r0, c0, min(self.block_size, self.height - r0), min(self.block_size, self.width - c0))

    def blocks(self) -> Iterator[tuple[int, Window]]:
        for i in range(self.count):
            yield i, self.block(i)

    def blocks_in(self, window: Window) -> list[int]:
        """Indexes of the blocks that intersect ``window``."""
        b = self.block_size
        r0, r1 = window.row_off // b, (window.row_off + window.height - 1) // b
        c0, c1 = window.col_off // b, (window.col_off + window.width - 1) // b
        return [r * self.cols + c for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]


def tile_origins(height: int, width: int, tile: int) -> list[tuple[int, int]]:
    """Top-left corners of the tiles covering a ``height`` x ``width`` block, row-major."""
    return [(r, c) for r in range(0, height, tile) for c in range(0, width, tile)]


def cut_tile(plane: np.ndarray, r: int, c: int, tile: int) -> np.ndarray:
    """A ``tile`` x ``tile`` piece of ``plane`` at (r, c), edges padded by reflection (or edge repeat)."""
    piece = plane[r : r + tile, c : c + tile]
    ph, pw = tile - piece.shape[0], tile - piece.shape[1]
    if ph or pw:
        mode = "reflect" if piece.shape[0] > ph and piece.shape[1] > pw else "edge"
        piece = np.pad(piece, ((0, ph), (0, pw)), mode=mode)
    return piece


def check_window_options(window: Sequence[int] | None, bbox: Sequence[float] | None) -> None:
    """The checks of a decode window that need no scene: at most one of ``window`` (col_off, row_off, width,
    height: whole numbers, offsets >= 0, sizes > 0) and ``bbox`` (minx, miny, maxx, maxy: numbers, min < max)."""
    if window is not None and bbox is not None:
        raise InputError("Give either a window or a bounding box, not both.")
    if window is not None:
        values = list(window)
        if not (len(values) == 4 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                         for v in values)):
            raise InputError(f"Window {window} is not four whole numbers (col row width height).")
        col, row, width, height = values
        if col < 0 or row < 0 or width <= 0 or height <= 0:
            raise InputError(f"Window {col} {row} {width} {height} (col row width height) needs offsets of 0 or "
                             "more and a positive width and height.")
    if bbox is not None:
        values = list(bbox)
        if not (len(values) == 4 and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                                         and math.isfinite(v) for v in values)):
            raise InputError(f"Bounding box {bbox} is not four numbers (minx miny maxx maxy).")
        minx, miny, maxx, maxy = values
        if not (minx < maxx and miny < maxy):
            raise InputError(f"Bounding box {tuple(bbox)} is empty; give it as minx miny maxx maxy.")


def scene_window(info: SceneInfo, window: Sequence[int] | None, bbox: Sequence[float] | None) -> Window:
    """The pixel window to decode: ``window`` (col_off, row_off, width, height), ``bbox`` or the whole scene."""
    from .georef import window_from_bbox  # here: the grid itself needs no rasterio

    check_window_options(window, bbox)
    if bbox is not None:
        r, c, hh, ww = window_from_bbox(info, tuple(bbox))
        return Window(r, c, hh, ww)
    full = Window(0, 0, info.height, info.width)
    if window is None:
        return full
    col, row, width, height = (int(v) for v in window)
    win = Window(row, col, height, width)
    if win.intersection(full) != win:
        raise InputError(f"Window {col} {row} {width} {height} (col row width height) is not inside the "
                         f"{info.width}x{info.height} scene.")
    return win
