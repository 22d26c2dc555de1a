"""Random access to a .sarc container, shaped like a rasterio dataset: ``sar_codec.open(path).read(...)``.

A read decodes only the blocks its window touches, at the pyramid level nearest the asked ``out_shape``
(sar_codec.overviews), through the same :func:`~sar_codec.scene_container.decode_slot` as ``decompress``, so
level-0 reads are exactly the pixels ``decompress`` writes. The model is loaded on the first read (not when the
container is opened) and kept; recently decoded blocks stay in a cache bounded in bytes.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from .device import pick_device
from .errors import InputError
from .overviews import Level
from .scene_container import decode_slots, open_container
from .tiling import BlockGrid, Window

DEFAULT_CACHE_MB = 256


def open(path: str | Path, *, device: str = "auto", cache_mb: float = DEFAULT_CACHE_MB,  # noqa: A001
         exact: bool = False) -> SarcDataset:
    """Open a .sarc container for reading, like ``rasterio.open``; use as a context manager.

    Parameters
    ----------
    path: the container.
    device: where the model decodes (``auto``, ``cpu``, ``cuda``); chosen at the first read.
    exact: decode the synthesis in fixed point too (the bytes ``decompress --exact`` writes, on every machine);
        by default it runs in floating point, as ``decompress`` does.
    cache_mb: at most this many megabytes of decoded blocks are kept for later reads.
    """
    return SarcDataset(path, device=device, cache_mb=cache_mb, exact=exact)


class SarcDataset:
    """An open container: rasterio's dataset attributes, ``overviews(band)`` and ``read(...)``."""

    def __init__(self, path: str | Path, *, device: str = "auto", cache_mb: float = DEFAULT_CACHE_MB,
                 exact: bool = False):
        self.name = str(path)
        self._opened = open_container(path)
        info = self._opened.info
        self._info = info
        self._device = device
        self._exact = exact
        self._codec = None
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._cache_bytes = 0
        self._cache_limit = int(cache_mb * 2**20)
        self._lock = threading.RLock()
        grid = self._opened.grid
        self.levels: tuple[Level, ...] = (Level(0, info.width, info.height, 0, grid.count), *self._opened.overviews)
        self._grids = [BlockGrid(lv.height, lv.width, grid.block_size, grid.tile_size) for lv in self.levels]
        self.closed = False

    # --- rasterio's dataset attributes ----------------------------------------------------------------

    @property
    def width(self) -> int:
        return self._info.width

    @property
    def height(self) -> int:
        return self._info.height

    @property
    def shape(self) -> tuple[int, int]:
        return self._info.height, self._info.width

    @property
    def count(self) -> int:
        return self._info.count

    @property
    def indexes(self) -> tuple[int, ...]:
        return tuple(range(1, self.count + 1))

    @property
    def dtypes(self) -> tuple[str, ...]:
        return (self._info.dtype,) * self.count

    @property
    def nodata(self) -> float | None:
        return self._info.nodata

    @property
    def nodatavals(self) -> tuple[float | None, ...]:
        return (self._info.nodata,) * self.count

    @property
    def descriptions(self) -> tuple[str, ...]:
        """The polarisations, e.g. ("VV", "VH")."""
        return tuple(self._info.band_names)

    @property
    def units(self) -> str:
        """``amplitude``, ``power`` or ``db``: the units of the values read."""
        return self._info.units

    @property
    def crs(self):
        """The scene's CRS (``rasterio.crs.CRS``), or None (a GCP scene has its CRS in :attr:`gcps`)."""
        from rasterio.crs import CRS

        wkt = self._info.georef.get("crs")
        return CRS.from_wkt(wkt) if wkt else None

    @property
    def transform(self):
        """The affine transform (``affine.Affine``); the identity when the scene has none (e.g. GCPs)."""
        from affine import Affine

        t = self._info.georef.get("transform")
        return Affine(*t) if t else Affine.identity()

    @property
    def gcps(self) -> tuple[list, Any]:
        """(ground control points, their CRS), as rasterio gives them; ([], None) when the scene has none."""
        from rasterio.control import GroundControlPoint
        from rasterio.crs import CRS

        georef = self._info.georef
        points = [GroundControlPoint(row=r, col=c, x=x, y=y, z=z, id=i, info=inf)
                  for r, c, x, y, z, i, inf in georef.get("gcps") or []]
        wkt = georef.get("gcp_crs")
        return points, (CRS.from_wkt(wkt) if wkt and points else None)

    @property
    def tags(self) -> dict:
        return dict(self._info.tags)

    @property
    def block_size(self) -> int:
        """Pixels per side of the container's blocks: the unit a read decodes."""
        return self._opened.grid.block_size

    def overviews(self, bidx: int = 1) -> list[int]:
        """Decimation factors of the stored pyramid levels (e.g. [2, 4, 8]), as ``rasterio``'s ``overviews``."""
        self._band_list(bidx)
        return [2**lv.level for lv in self.levels[1:]]

    # --- reading --------------------------------------------------------------------------------------

    def read(self, indexes: int | list[int] | None = None, window: Any = None,
             out_shape: tuple[int, ...] | None = None) -> np.ndarray:
        """Samples of a window (default the whole scene), like ``rasterio``'s ``read``.

        Parameters
        ----------
        indexes: a 1-based band number (a 2-D result) or a list of them (3-D); default all bands.
        window: a ``rasterio.windows.Window``, ``((row_start, row_stop), (col_start, col_stop))``, or None.
        out_shape: (rows, cols) or (bands, rows, cols) of the result. The window is read from the coarsest
            pyramid level that is at least as fine as asked (GDAL's choice) and resampled to it by nearest
            neighbour; without it, level 0 (full resolution).
        """
        bands = self._band_list(indexes)
        win = self._window(window)
        if out_shape is None:
            data = self._read_level(0, win, bands, None)
        else:
            rows, cols = (int(v) for v in tuple(out_shape)[-2:])
            if rows <= 0 or cols <= 0:
                raise InputError(f"out_shape {tuple(out_shape)} must have positive rows and columns.")
            level = self.level_for(win.width / cols, win.height / rows)
            data = self._read_level(level, self._to_level(win, level), bands, (rows, cols), win)
        return data[0] if isinstance(indexes, int) else data

    def level_for(self, x_factor: float, y_factor: float) -> int:
        """The coarsest level whose pixels are at most ``x_factor`` by ``y_factor`` scene pixels (GDAL's choice:
        never coarser than asked)."""
        best = 0
        for k, lv in enumerate(self.levels):
            if self.width / lv.width <= x_factor * 1.01 and self.height / lv.height <= y_factor * 1.01:
                best = k
        return best

    def read_level(self, level: int, window: Window, indexes: int | list[int] | None = None,
                   out_shape: tuple[int, int] | None = None) -> np.ndarray:
        """Samples of a window of pyramid ``level`` itself (0 = full resolution), resampled by nearest neighbour
        to ``out_shape`` when given (the window is then read from that level, not a coarser one)."""
        bands = self._band_list(indexes)
        if not 0 <= level < len(self.levels):
            raise InputError(f"Level {level} does not exist; the container has levels 0 to {len(self.levels) - 1}.")
        lv = self.levels[level]
        full = Window(0, 0, lv.height, lv.width)
        if window.height <= 0 or window.width <= 0 or window.intersection(full) != window:
            raise InputError(f"Window {window} is not inside level {level} ({lv.width}x{lv.height}).")
        data = self._read_level(level, window, bands, out_shape)
        return data[0] if isinstance(indexes, int) else data

    def _to_level(self, win: Window, level: int) -> Window:
        """The window of ``level`` that covers level-0 window ``win``."""
        if level == 0:
            return win
        lv = self.levels[level]
        fy, fx = lv.height / self.height, lv.width / self.width
        r0, c0 = math.floor(win.row_off * fy), math.floor(win.col_off * fx)
        r1 = min(lv.height, max(r0 + 1, math.ceil((win.row_off + win.height) * fy)))
        c1 = min(lv.width, max(c0 + 1, math.ceil((win.col_off + win.width) * fx)))
        return Window(r0, c0, r1 - r0, c1 - c0)

    def _read_level(self, level: int, win: Window, bands: list[int], out_shape: tuple[int, int] | None,
                    source: Window | None = None) -> np.ndarray:
        """``win`` of ``level`` (bands 1-based); with ``out_shape``, nearest-neighbour samples at the centres of an
        ``out_shape`` grid over ``win``, or over the level-0 window ``source`` mapped onto this level."""
        data = self._assemble(level, win, bands)
        if out_shape is None:
            return data
        rows, cols = out_shape
        lv = self.levels[level]
        if source is None:
            source, fy, fx = win, 1.0, 1.0
        else:
            fy, fx = lv.height / self.height, lv.width / self.width
        y = (source.row_off + (np.arange(rows) + 0.5) * source.height / rows) * fy
        x = (source.col_off + (np.arange(cols) + 0.5) * source.width / cols) * fx
        yi = np.clip(np.floor(y).astype(np.int64) - win.row_off, 0, win.height - 1)
        xi = np.clip(np.floor(x).astype(np.int64) - win.col_off, 0, win.width - 1)
        return data[:, yi[:, None], xi[None, :]]

    def _assemble(self, level: int, win: Window, bands: list[int]) -> np.ndarray:
        grid = self._grids[level]
        out = np.empty((len(bands), win.height, win.width), dtype=self._info.dtype)
        sel = [b - 1 for b in bands]
        ids = grid.blocks_in(win)
        for i, block in zip(ids, self._blocks(level, ids)):
            bw = grid.block(i)
            part = bw.intersection(win)
            out[:, part.row_off - win.row_off : part.row_off - win.row_off + part.height,
                part.col_off - win.col_off : part.col_off - win.col_off + part.width] = \
                block[sel, part.row_off - bw.row_off : part.row_off - bw.row_off + part.height,
                      part.col_off - bw.col_off : part.col_off - bw.col_off + part.width]
        return out

    def _blocks(self, level: int, ids: list[int]) -> list[np.ndarray]:
        """Every band of each block ``ids`` of ``level``: from the cache, or decoded (those missing, in parallel:
        :func:`~sar_codec.scene_container.decode_slots`) and then cached."""
        with self._lock:
            if self.closed:
                raise ValueError(f"the dataset {self.name} is closed")
            found = {i: self._cache.get((level, i)) for i in ids}
            for i, hit in found.items():
                if hit is not None:
                    self._cache.move_to_end((level, i))
            first, grid = self.levels[level].first_block, self._grids[level]
            missing = [(first + i, grid.block(i)) for i, hit in found.items() if hit is None]
            codec = self._model() if missing else None  # loaded once, under the lock
        decoded = decode_slots(self._opened, codec, missing, self._exact) if missing else []
        for (slot, _), data in decoded:
            data.setflags(write=False)
            found[slot - first] = data
            with self._lock:
                self._cache[(level, slot - first)] = data
                self._cache_bytes += data.nbytes
                while self._cache_bytes > self._cache_limit and len(self._cache) > 1:
                    _, old = self._cache.popitem(last=False)
                    self._cache_bytes -= old.nbytes
        return [found[i] for i in ids]

    def _model(self):
        if self._codec is None:
            from .registry import load_decoder

            self._codec = load_decoder(self._opened.entry, pick_device(self._device))
        return self._codec

    def _band_list(self, indexes: int | list[int] | None) -> list[int]:
        if indexes is None:
            return list(self.indexes)
        bands = [indexes] if isinstance(indexes, int) else [int(b) for b in indexes]
        bad = [b for b in bands if not 1 <= b <= self.count]
        if bad or not bands:
            raise InputError(f"Band {bad[0] if bad else '(none)'} does not exist; {self.name} has bands "
                             f"1 to {self.count} ({', '.join(self.descriptions)}).")
        return bands

    def _window(self, window: Any) -> Window:
        """Our Window from a rasterio Window, ((row_start, row_stop), (col_start, col_stop)), or None (all)."""
        full = Window(0, 0, self.height, self.width)
        if window is None:
            return full
        if hasattr(window, "col_off"):
            r0, c0 = round(window.row_off), round(window.col_off)
            r1, c1 = r0 + round(window.height), c0 + round(window.width)
        else:
            try:
                (r0, r1), (c0, c1) = ((round(a), round(b)) for a, b in window)
            except (TypeError, ValueError):
                raise InputError(f"Window {window!r} is neither a rasterio Window nor ((row_start, row_stop), "
                                 "(col_start, col_stop)).") from None
        win = Window(r0, c0, r1 - r0, c1 - c0)
        if r1 <= r0 or c1 <= c0 or win.intersection(full) != win:
            raise InputError(f"Window rows {r0}:{r1}, columns {c0}:{c1} is not inside the "
                             f"{self.width}x{self.height} scene.")
        return win

    # --- life cycle -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the file and drop the cached blocks."""
        with self._lock:
            self.closed = True
            self._cache.clear()
            self._cache_bytes = 0
            self._opened.container.close()

    def __enter__(self) -> SarcDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<{state} SarcDataset name={self.name!r} {self.width}x{self.height}x{self.count}>"
