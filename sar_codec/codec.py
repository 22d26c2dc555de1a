"""Compress a Sentinel-1 scene into a .sarc container and decode it back, streaming block by block.

Compression reads the scene twice, one block at a time (so memory does not grow with the scene): a first
pass accumulates per-polarisation dB histograms to fit the radiometric mapping, a second maps each block to
[0, 1], cuts it into tiles and codes them with the learned model into one stream per block. Nodata is kept
exactly, as a lossless mask plus the original values of the masked samples.
"""

from __future__ import annotations

import math
import struct
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._version import __version__
from .container import Container, ContainerWriter, read_header
from .errors import CancelledError, ContainerError, InputError, OutputExistsError, WeightsError
from .models import ARITHMETIC_VERSION
from .overviews import (
    Level,
    PyramidWriter,
    from_power,
    levels_from_header,
    overview_block_count,
    overview_bytes,
    plan_levels,
)
from .radiometry import DbHistogram, Mapping, Units, check_units, from_db, to_db
from .registry import DEFAULT_ARCHITECTURE, DEFAULT_QUALITY, ModelEntry, find_by_hash, load_codec, lookup, model_table
from .scene import SceneInfo, bounded_gdal_cache, open_scene, window_from_bbox
from .tiling import BlockGrid, Window, cut_tile, tile_origins

Progress = Callable[[float], None]
Cancelled = Callable[[], bool]

DEFAULT_TILE_SIZE = 64
DEFAULT_BLOCK_SIZE = 512
FORMAT_NAME = "sar-codec"
_U32 = struct.Struct("<I")


@dataclass(frozen=True)
class CompressResult:
    """What a compression produced."""

    output: Path
    bytes: int
    pixels: int  # width * height * polarisations
    bpp: float  # every byte of the container, per pixel per polarisation
    seconds: float
    architecture: str
    quality: int


def pick_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is present, else ``cpu``; ``cuda`` without a GPU is an InputError."""
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"Unknown device {device!r}: use auto, cpu or cuda.")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but no CUDA GPU is available; use --device cpu.")
    return device


def _check_geometry(info: SceneInfo, tile_size: int, block_size: int) -> None:
    if tile_size <= 0 or tile_size % 64:
        raise InputError(f"Tile size {tile_size} is not a positive multiple of 64.")
    if block_size < tile_size or block_size % tile_size:
        raise InputError(f"Block size {block_size} is not a multiple of the tile size {tile_size}.")
    if info.width < tile_size or info.height < tile_size:
        raise InputError(f"The scene is {info.width}x{info.height} pixels, smaller than one "
                         f"{tile_size}x{tile_size} tile.")


def _report(progress: Progress | None, cancelled: Cancelled | None, fraction: float) -> None:
    if cancelled is not None and cancelled():
        raise CancelledError("Cancelled; no output was written.")
    if progress is not None:
        progress(min(1.0, fraction))


def _block_db(scene, win: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw samples, validity mask and dB values (NaN where invalid) of a block."""
    raw = scene.read(win.row_off, win.col_off, win.height, win.width)
    valid = scene.valid_mask(raw)
    db = to_db(raw, scene.info.units)
    db[~valid] = np.nan
    return raw, valid, db


def fit_mappings(scene, grid: BlockGrid, progress: Progress | None = None,
                 cancelled: Cancelled | None = None, share: float = 0.1) -> list[Mapping]:
    """First pass: one radiometric mapping per polarisation from streamed dB histograms."""
    hists = [DbHistogram() for _ in range(scene.info.count)]
    for i, win in grid.blocks():
        _, _, db = _block_db(scene, win)
        for b, h in enumerate(hists):
            h.add(db[b])
        _report(progress, cancelled, share * (i + 1) / grid.count)
    if all(h.total == 0 for h in hists):
        raise InputError("The scene holds only nodata; there is nothing to compress.")
    return [h.mapping() if h.total else Mapping((-1.0, 1.0), (0.0, 1.0)) for h in hists]


def _pack_mask(valid: np.ndarray, raw: np.ndarray) -> bytes:
    bits = zlib.compress(np.packbits(valid, axis=None).tobytes(), 9)
    values = zlib.compress(np.ascontiguousarray(raw[~valid]).astype(raw.dtype.newbyteorder("<")).tobytes(), 9)
    return _U32.pack(len(bits)) + bits + _U32.pack(len(values)) + values


def encode_block(codec, quality_index: int, raw: np.ndarray, valid: np.ndarray, db: np.ndarray,
                 mappings: Sequence[Mapping], tile_size: int, exact: bool = False) -> bytes:
    """One block's payload: per band a mask section, then one rANS stream for every tile holding data
    (``exact``: a fixed-point analysis transform, see :meth:`TileCodec.compress`)."""
    parts: list[bytes] = []
    tiles = []
    for b in range(raw.shape[0]):
        if valid[b].all():
            parts.append(b"\x00")
        else:
            parts.append(b"\x01" + _pack_mask(valid[b], raw[b]))
        norm = mappings[b].forward(db[b])
        norm[~valid[b]] = np.nan
        for r, c in tile_origins(raw.shape[1], raw.shape[2], tile_size):
            if not valid[b, r : r + tile_size, c : c + tile_size].any():
                continue
            t = cut_tile(norm, r, c, tile_size)
            holes = np.isnan(t)
            if holes.any():
                t[holes] = t[~holes].mean()
            tiles.append(t)
    stream = codec.compress(np.stack(tiles)[:, None], quality_index, exact) if tiles else b""
    parts.append(_U32.pack(len(stream)) + stream)
    return b"".join(parts)


class _Reader:
    """Bounds-checked reads from a block payload; anything out of bounds is a ContainerError."""

    def __init__(self, data: bytes, where: str):
        self.data, self.pos, self.where = data, 0, where

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ContainerError(f"{self.where} is corrupted (payload shorter than its structure).")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u32(self) -> int:
        return _U32.unpack(self.take(4))[0]

    def inflate(self, expected: int) -> bytes:
        try:
            out = zlib.decompress(self.take(self.u32()))
        except zlib.error as exc:
            raise ContainerError(f"{self.where} is corrupted (bad mask data).") from exc
        if len(out) != expected:
            raise ContainerError(f"{self.where} is corrupted (mask of the wrong size).")
        return out


def decode_block(codec, quality_index: int, payload: bytes, win: Window, info: SceneInfo,
                 mappings: Sequence[Mapping], tile_size: int, where: str) -> np.ndarray:
    """Inverse of :func:`encode_block`: the block's samples in the source dtype and units."""
    dtype = np.dtype(info.dtype)
    rd = _Reader(payload, where)
    h, w = win.height, win.width
    valid = np.ones((info.count, h, w), dtype=bool)
    out = np.empty((info.count, h, w), dtype=dtype)
    masked_values = {}
    for b in range(info.count):
        flag = rd.take(1)
        if flag == b"\x01":
            bits = np.frombuffer(rd.inflate((h * w + 7) // 8), dtype=np.uint8)
            valid[b] = np.unpackbits(bits, count=h * w).reshape(h, w).astype(bool)
            n_bad = int((~valid[b]).sum())
            masked_values[b] = np.frombuffer(rd.inflate(n_bad * dtype.itemsize), dtype=dtype.newbyteorder("<"))
        elif flag != b"\x00":
            raise ContainerError(f"{where} is corrupted (unknown mask flag).")
    units = [(b, r, c) for b in range(info.count) for r, c in tile_origins(h, w, tile_size)
             if valid[b, r : r + tile_size, c : c + tile_size].any()]
    stream = rd.take(rd.u32())
    if rd.pos != len(payload):
        raise ContainerError(f"{where} is corrupted (trailing bytes).")
    if units:
        if not stream:
            raise ContainerError(f"{where} is corrupted (missing tile stream).")
        try:
            codes = codec.decompress(stream, len(units), quality_index, tile_size)
        except (RuntimeError, ValueError, IndexError) as exc:
            raise ContainerError(f"{where} could not be decoded ({exc}).") from exc
        norm = np.zeros((info.count, h, w), dtype=np.float64)
        for (b, r, c), code in zip(units, codes):
            piece = norm[b, r : r + tile_size, c : c + tile_size]
            piece[...] = code[0, : piece.shape[0], : piece.shape[1]] / float(2**12)
        for b in range(info.count):
            out[b] = from_db(mappings[b].inverse(norm[b]), info.units, dtype)
    for b in range(info.count):
        bad = ~valid[b]
        if b in masked_values:
            out[b][bad] = masked_values[b]
        if info.nodata is not None and not math.isnan(info.nodata) and dtype.kind == "f":
            clash = valid[b] & (out[b] == dtype.type(info.nodata))  # a decoded value must never read as nodata
            out[b][clash] = np.nextafter(out[b][clash], dtype.type(np.inf))
    return out


def _resolve_quality(scene, grid: BlockGrid, architecture: str, quality: int | None, target_bpp: float | None,
                     device: str, mappings: Sequence[Mapping], tile_size: int, exact: bool) -> ModelEntry:
    """The table row to use: the asked quality, or the highest whose bpp on sample blocks meets ``target_bpp``."""
    if target_bpp is None:
        return lookup(architecture, DEFAULT_QUALITY if quality is None else quality)
    if target_bpp <= 0:
        raise InputError(f"Target bpp {target_bpp} must be positive.")
    rows = sorted((e for e in model_table() if e.architecture == architecture), key=lambda e: e.quality)
    if not rows:
        lookup(architecture, 1)  # raises the clear error
    picks = np.linspace(0, grid.count - 1, min(4, grid.count)).round().astype(int)
    samples = [(grid.block(int(i)), _block_db(scene, grid.block(int(i)))) for i in picks]
    chosen = rows[0]
    for entry in rows:
        codec = load_codec(entry, device)
        nbytes = sum(len(encode_block(codec, entry.quality - 1, *blk, mappings, tile_size, exact))
                     for _, blk in samples)
        npix = sum(win.height * win.width * scene.info.count for win, _ in samples)
        if nbytes * 8 / npix <= target_bpp:
            chosen = entry
    return chosen


def compress_scene(inputs: str | Path | Sequence[str | Path], output: str | Path, *,
                   architecture: str = DEFAULT_ARCHITECTURE, quality: int | None = None,
                   target_bpp: float | None = None, device: str = "auto",
                   tile_size: int = DEFAULT_TILE_SIZE, block_size: int = DEFAULT_BLOCK_SIZE,
                   units: Units | None = None, pols: Sequence[str] | None = None, overwrite: bool = False,
                   reproducible: bool = False, progress: Progress | None = None,
                   cancelled: Cancelled | None = None, overviews: bool = True) -> CompressResult:
    """Compress a Sentinel-1 scene (one or two polarisations) into a .sarc container at ``output``.

    Parameters
    ----------
    inputs: a raster, a SAFE product, or two single-polarisation rasters.
    architecture, quality: the model and its quality level (see ``sar-codec models``).
    target_bpp: instead of ``quality``, the highest quality whose rate on sample blocks is at most this.
    device: ``auto``, ``cpu`` or ``cuda``.
    units: force ``amplitude``, ``power`` or ``db`` instead of detecting them.
    reproducible: run the encoder's analysis transform in fixed point as well, so that the same scene gives
        the same container bytes on every machine (slower). Decoding is exact and device-independent either way.
    progress, cancelled: called with the fraction done / asked whether to stop, once per block.
    overviews: also store the reduced-resolution pyramid (sar_codec.overviews) that fast zoomed-out reads use.
    """
    start = time.monotonic()
    if units is not None:
        check_units(units)
    if quality is not None and target_bpp is not None:
        raise InputError("Give either a quality or a target bpp, not both.")
    output = Path(output)
    device = pick_device(device)
    if architecture not in {e.architecture for e in model_table()}:
        lookup(architecture, quality or DEFAULT_QUALITY)  # raises the clear error
    with bounded_gdal_cache(), open_scene(inputs, units=units, pols=pols) as scene:
        info = scene.info
        _check_geometry(info, tile_size, block_size)
        if any(output.resolve() == Path(p).resolve() for p in scene.paths if not str(p).startswith("/vsi")):
            raise OutputExistsError(f"{output} is an input of this run; choose another output path.")
        if output.exists() and not overwrite:
            raise OutputExistsError(f"{output} already exists; choose another path or pass --overwrite.")
        grid = BlockGrid(info.height, info.width, block_size, tile_size)
        mappings = fit_mappings(scene, grid, progress, cancelled)
        entry = _resolve_quality(scene, grid, architecture, quality, target_bpp, device, mappings, tile_size,
                                 reproducible)
        codec = load_codec(entry, device)
        header = {
            "format": FORMAT_NAME,
            "software": f"sar-codec {__version__}",
            "scene": info.to_json(),
            "mappings": [m.to_json() for m in mappings],
            "model": {"architecture": entry.architecture, "quality": entry.quality, "weights": entry.weights,
                      "sha256": entry.sha256, "arithmetic": ARITHMETIC_VERSION},
            "tile_size": tile_size,
            "block_size": block_size,
        }
        levels = plan_levels(info.width, info.height, block_size, tile_size, grid.count) if overviews else []
        if levels:
            header["overviews"] = [lv.to_json() for lv in levels]
        total = grid.count + overview_block_count(levels)
        done = 0

        def write(i: int, raw: np.ndarray, valid: np.ndarray, db: np.ndarray) -> None:
            nonlocal done
            payload = (encode_block(codec, entry.quality - 1, raw, valid, db, mappings, tile_size, reproducible)
                       if valid.any() else b"")
            writer.write_block(i, payload)
            done += 1
            _report(progress, cancelled, 0.1 + 0.9 * done / total)

        def write_overview(i: int, win: Window, power: np.ndarray) -> None:
            raw, valid = from_power(power, info.units, info.dtype, info.nodata)
            db = to_db(raw, info.units)
            db[~valid] = np.nan
            write(i, raw, valid, db)

        with ContainerWriter(output, header, total, overwrite=overwrite) as writer:
            pyramid = PyramidWriter(levels, info.width, info.count, block_size, tile_size, info.units, write_overview)
            for i, win in grid.blocks():
                raw, valid, db = _block_db(scene, win)
                write(i, raw, valid, db)
                pyramid.add_block(win, raw, valid)
    size = output.stat().st_size
    pixels = info.width * info.height * info.count
    return CompressResult(output, size, pixels, size * 8 / pixels, time.monotonic() - start,
                          entry.architecture, entry.quality)


@dataclass(frozen=True)
class OpenedContainer:
    """A scene container opened for decoding: its scene info, mappings, block grid, model row and overviews."""

    container: Container
    info: SceneInfo
    mappings: list[Mapping]
    grid: BlockGrid
    entry: ModelEntry
    overviews: tuple[Level, ...] = ()  # the reduced-resolution levels 1, 2, ... (sar_codec.overviews)


def open_container(path: str | Path) -> OpenedContainer:
    """Open a scene container for decoding; checks its header and that its weights are installed."""
    container = Container.open(path)
    try:
        h = container.header
        if h.get("format") != FORMAT_NAME:
            raise ContainerError(f"{path} is not a sar-codec scene container.")
        info = SceneInfo.from_json(h["scene"])
        mappings = [Mapping.from_json(m) for m in h["mappings"]]
        grid = BlockGrid(info.height, info.width, int(h["block_size"]), int(h["tile_size"]))
        model = h["model"]
        levels = levels_from_header(h, grid.count, grid.block_size, grid.tile_size)
        if grid.count + overview_block_count(levels) != container.block_count or len(mappings) != info.count:
            raise ContainerError(f"{path} is corrupted (header and index disagree).")
    except ContainerError:
        container.close()
        raise
    except (KeyError, TypeError, ValueError) as exc:
        container.close()
        raise ContainerError(f"{path} has an invalid header ({exc}).") from exc
    try:
        arithmetic = model.get("arithmetic", 1)
        if arithmetic != ARITHMETIC_VERSION:
            raise WeightsError(f"{path} was coded with fixed-point arithmetic version {arithmetic} and this "
                               f"sar-codec decodes version {ARITHMETIC_VERSION}; decode it with the sar-codec "
                               "version that made it.")
        entry = find_by_hash(model["architecture"], model["sha256"])
        if entry is None:
            raise WeightsError(f"{path} was made with {model['architecture']} weights {model['sha256'][:12]}..., "
                               "which are not installed; install the sar-codec version that made it.")
        entry = lookup(entry.architecture, int(model["quality"]))
    except BaseException:
        container.close()
        raise
    return OpenedContainer(container, info, mappings, grid, entry, tuple(levels))


def scene_window(info: SceneInfo, window: Sequence[int] | None, bbox: Sequence[float] | None) -> Window:
    """The pixel window to decode: ``window`` (col_off, row_off, width, height), ``bbox`` or the whole scene."""
    if window is not None and bbox is not None:
        raise InputError("Give either a window or a bounding box, not both.")
    if bbox is not None:
        r, c, hh, ww = window_from_bbox(info, tuple(bbox))
        return Window(r, c, hh, ww)
    full = Window(0, 0, info.height, info.width)
    if window is None:
        return full
    col, row, width, height = (int(v) for v in window)
    win = Window(row, col, height, width)
    if width <= 0 or height <= 0 or win.intersection(full) != win:
        raise InputError(f"Window {col} {row} {width} {height} (col row width height) is not inside the "
                         f"{info.width}x{info.height} scene.")
    return win


def decode_blocks(opened: OpenedContainer, target: Window, device: str, progress: Progress | None = None,
                  cancelled: Cancelled | None = None):
    """Yield (window inside ``target``, samples) for every block intersecting ``target``."""
    codec = load_codec(opened.entry, device)
    ids = opened.grid.blocks_in(target)
    for n, i in enumerate(ids):
        win = opened.grid.block(i)
        where = f"block {i} of {opened.container.path}"
        payload = opened.container.read_block(i)
        if payload:
            data = decode_block(codec, opened.entry.quality - 1, payload, win, opened.info, opened.mappings,
                                opened.grid.tile_size, where)
        else:
            data = _all_nodata(opened.info, win)
        part = win.intersection(target)
        yield part, data[:, part.row_off - win.row_off : part.row_off - win.row_off + part.height,
                         part.col_off - win.col_off : part.col_off - win.col_off + part.width]
        _report(progress, cancelled, (n + 1) / len(ids))


def _all_nodata(info: SceneInfo, win: Window) -> np.ndarray:
    fill = info.nodata if info.nodata is not None else (np.nan if np.dtype(info.dtype).kind == "f" else 0)
    return np.full((info.count, win.height, win.width), fill, dtype=info.dtype)


def decompress_scene(container: str | Path, output: str | Path, *, window: Sequence[int] | None = None,
                     bbox: Sequence[float] | None = None, cog: bool = False, device: str = "auto",
                     overwrite: bool = False, progress: Progress | None = None,
                     cancelled: Cancelled | None = None) -> Path:
    """Decode a container (or a window / bounding box of it) to a GeoTIFF or COG with its georeferencing."""
    from .raster_out import SceneWriter

    device = pick_device(device)
    output = Path(output)
    opened = open_container(container)
    try:
        target = scene_window(opened.info, window, bbox)
        info = opened.info.for_window(target.row_off, target.col_off, target.height, target.width)
        with bounded_gdal_cache(), \
                SceneWriter(output, info, cog=cog, overwrite=overwrite, protect=[Path(container)]) as writer:
            for part, data in decode_blocks(opened, target, device, progress, cancelled):
                writer.write(part.row_off - target.row_off, part.col_off - target.col_off, data)
    finally:
        opened.container.close()
    return output


def container_info(path: str | Path) -> dict:
    """Header of a container plus size and rate (and ``overview_bytes``, the pyramid's share, read from the
    index); reads no pixels and needs no torch."""
    header = read_header(path)
    scene = header.get("scene", {})
    size = Path(path).stat().st_size
    pixels = int(scene.get("width", 0)) * int(scene.get("height", 0)) * int(scene.get("count", 0))
    result = {"path": str(path), "bytes": size, "bpp": size * 8 / pixels if pixels else None, **header}
    if header.get("overviews"):
        with Container.open(path) as container:  # the index only, to sum the pyramid's block lengths
            result["overview_bytes"] = overview_bytes(container, [Level.from_json(d) for d in header["overviews"]])
    return result


def _decode_overviews(opened: OpenedContainer, device: str) -> int:
    """Decode every block of the overview pyramid (checking CRCs and structure); returns how many there are."""
    codec = load_codec(opened.entry, device)
    count = 0
    for lv in opened.overviews:
        grid = BlockGrid(lv.height, lv.width, opened.grid.block_size, opened.grid.tile_size)
        for j, win in grid.blocks():
            payload = opened.container.read_block(lv.first_block + j)
            if payload:
                decode_block(codec, opened.entry.quality - 1, payload, win, opened.info, opened.mappings,
                             opened.grid.tile_size, f"block {lv.first_block + j} of {opened.container.path}")
            count += 1
    return count


def verify_container(path: str | Path, *, decode: bool = False, device: str = "auto",
                     progress: Progress | None = None) -> dict:
    """Check every CRC and block structure (and with ``decode`` decode every block); raises on a problem."""
    opened = open_container(path)
    try:
        blocks = 0
        if decode:
            full = Window(0, 0, opened.info.height, opened.info.width)
            for _ in decode_blocks(opened, full, pick_device(device), progress):
                blocks += 1
            blocks += _decode_overviews(opened, pick_device(device))
        else:
            for i in range(opened.container.block_count):
                opened.container.read_block(i)
                blocks += 1
                if progress is not None:
                    progress((i + 1) / opened.container.block_count)
        return {"path": str(path), "blocks": blocks, "decoded": decode, "ok": True}
    finally:
        opened.container.close()
