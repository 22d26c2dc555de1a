"""The scene's grid: blocks (the container's random-access unit) made of square tiles (the model's input)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

DEFAULT_TILE_SIZE = 64  # pixels a side of the model's input
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
