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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import residual
from ._version import __version__
from .byte_reader import ByteReader
from .container import Container, ContainerWriter, read_header
from .device import pick_device
from .errors import ContainerError, InputError, OutputExistsError, WeightsError
from .files import same_file
from .gdal_env import bounded_gdal_cache
from .georef import window_from_bbox
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
from .pipeline import ahead
from .progress import Cancelled, Progress
from .progress import report as _report
from .radiometry import DbHistogram, Mapping, Units, check_units, from_db, to_db
from .registry import DEFAULT_ARCHITECTURE, DEFAULT_QUALITY, ModelEntry, find_by_hash, load_codec, lookup, model_table
from .safe import store_product, stored_files
from .scene import SceneInfo, open_scene
from .scene_header import FORMAT_NAME, parse_scene_header
from .tiling import DEFAULT_BLOCK_SIZE, DEFAULT_TILE_SIZE, BlockGrid, Window, cut_tile, tile_origins

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
    note: str | None = None  # a sentence for the user, e.g. when no quality meets the target rate


def _check_sizes(tile_size: int, block_size: int) -> None:
    if tile_size <= 0 or tile_size % 64:
        raise InputError(f"Tile size {tile_size} is not a positive multiple of 64.")
    if block_size < tile_size or block_size % tile_size:
        raise InputError(f"Block size {block_size} is not a multiple of the tile size {tile_size}.")


def _check_geometry(info: SceneInfo, tile_size: int) -> None:
    if info.width < tile_size or info.height < tile_size:
        raise InputError(f"The scene is {info.width}x{info.height} pixels, smaller than one "
                         f"{tile_size}x{tile_size} tile.")


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
    """One block's payload: per band a mask section, then one rANS stream holding every tile that has data
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


def _read_masks(rd: ByteReader, info: SceneInfo, h: int, w: int) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """The mask sections at the start of a block payload: the validity mask and the invalid samples' values."""
    dtype = np.dtype(info.dtype)
    valid = np.ones((info.count, h, w), dtype=bool)
    masked_values = {}
    for b in range(info.count):
        flag = rd.take(1)
        if flag == b"\x01":
            bits = np.frombuffer(rd.inflate((h * w + 7) // 8), dtype=np.uint8)
            valid[b] = np.unpackbits(bits, count=h * w).reshape(h, w).astype(bool)
            n_bad = int((~valid[b]).sum())
            masked_values[b] = np.frombuffer(rd.inflate(n_bad * dtype.itemsize), dtype=dtype.newbyteorder("<"))
        elif flag != b"\x00":
            raise ContainerError(f"{rd.where} is corrupted (unknown mask flag).")
    return valid, masked_values


def decode_block(codec, quality_index: int, payload: bytes, win: Window, info: SceneInfo,
                 mappings: Sequence[Mapping], tile_size: int, where: str, exact: bool = False) -> np.ndarray:
    """Inverse of :func:`encode_block`: the block's samples in the source dtype and units (``exact``: the
    synthesis in fixed point too, for the same samples on every machine; see :meth:`TileCodec.decompress`)."""
    dtype = np.dtype(info.dtype)
    rd = ByteReader(payload, where)
    h, w = win.height, win.width
    out = np.empty((info.count, h, w), dtype=dtype)
    valid, masked_values = _read_masks(rd, info, h, w)
    units = [(b, r, c) for b in range(info.count) for r, c in tile_origins(h, w, tile_size)
             if valid[b, r : r + tile_size, c : c + tile_size].any()]
    stream = rd.take(rd.u32())
    if rd.pos != len(payload):
        raise ContainerError(f"{where} is corrupted (trailing bytes).")
    if units:
        if not stream:
            raise ContainerError(f"{where} is corrupted (missing tile stream).")
        try:
            codes = codec.decompress(stream, len(units), quality_index, tile_size, exact)
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


def encode_bounded_block(codec, quality_index: int, raw: np.ndarray, valid: np.ndarray, db: np.ndarray,
                         win: Window, info: SceneInfo, mappings: Sequence[Mapping], tile_size: int, exact: bool,
                         max_error_db: float) -> bytes:
    """A block payload with the guaranteed-error layer: u32 length and the learned payload, then the residual
    section (:mod:`sar_codec.residual`), checked by decoding it exactly as the decoder will."""
    learned = encode_block(codec, quality_index, raw, valid, db, mappings, tile_size, exact)
    where = f"the block at row {win.row_off}, column {win.col_off}"
    base = decode_block(codec, quality_index, learned, win, info, mappings, tile_size, where, exact=True)
    payload = _U32.pack(len(learned)) + learned + residual.encode(raw, valid, base, info.units, info.nodata,
                                                                  max_error_db)
    back = decode_bounded_block(codec, quality_index, payload, win, info, mappings, tile_size, where, max_error_db)
    err = np.abs(to_db(back[valid], info.units) - to_db(raw[valid], info.units))
    if err.size and not err.max() <= max_error_db:  # residual.encode guarantees it; never store a broken bound
        raise AssertionError(f"{where}: the decoded error {err.max()} dB exceeds the bound {max_error_db} dB")
    return payload


def decode_bounded_block(codec, quality_index: int, payload: bytes, win: Window, info: SceneInfo,
                         mappings: Sequence[Mapping], tile_size: int, where: str, max_error_db: float) -> np.ndarray:
    """Inverse of :func:`encode_bounded_block`; the learned layer is decoded exactly (fixed point)."""
    rd = ByteReader(payload, where)
    learned = rd.take(rd.u32())
    base = decode_block(codec, quality_index, learned, win, info, mappings, tile_size, where, exact=True)
    valid, _ = _read_masks(ByteReader(learned, where), info, win.height, win.width)
    return residual.apply(payload[rd.pos :], base, valid, info.units, info.nodata, max_error_db, where)


def _resolve_quality(scene, grid: BlockGrid, architecture: str, quality: int | None, target_bpp: float | None,
                     device: str, mappings: Sequence[Mapping], tile_size: int, exact: bool
                     ) -> tuple[ModelEntry, str | None]:
    """The table row to use: the asked quality, or the highest whose bpp on sample blocks meets ``target_bpp``
    (rates grow with quality, so the search stops at the first quality above it); and a note when none
    meets it or the top quality stays below it."""
    if target_bpp is None:
        return lookup(architecture, DEFAULT_QUALITY if quality is None else quality), None
    rows = sorted((e for e in model_table() if e.architecture == architecture), key=lambda e: e.quality)
    if not rows:
        lookup(architecture, 1)  # raises the clear error
    picks = np.linspace(0, grid.count - 1, min(4, grid.count)).round().astype(int)
    samples = [(grid.block(int(i)), _block_db(scene, grid.block(int(i)))) for i in picks]
    npix = sum(win.height * win.width * scene.info.count for win, _ in samples)
    chosen, rate = None, math.inf
    for entry in rows:
        codec = load_codec(entry, device)
        bpp = sum(len(encode_block(codec, entry.quality - 1, *blk, mappings, tile_size, exact))
                  for _, blk in samples) * 8 / npix
        if bpp > target_bpp:
            break
        chosen, rate = entry, bpp
    if chosen is None:
        return rows[0], (f"No quality reaches the target rate of {target_bpp:g} bpp (the lowest, quality "
                         f"{rows[0].quality}, needs {bpp:.3f} bpp on sample blocks); quality {rows[0].quality} "
                         "was used.")
    if chosen is rows[-1]:
        return chosen, (f"The target rate of {target_bpp:g} bpp is above what the top quality needs ({rate:.3f} bpp "
                        f"on sample blocks); the top quality, {chosen.quality}, was used.")
    return chosen, None


def compress_scene(inputs: str | Path | Sequence[str | Path], output: str | Path, *,
                   architecture: str = DEFAULT_ARCHITECTURE, quality: int | None = None,
                   target_bpp: float | None = None, device: str = "auto",
                   tile_size: int = DEFAULT_TILE_SIZE, block_size: int = DEFAULT_BLOCK_SIZE,
                   units: Units | None = None, pols: Sequence[str] | None = None, overwrite: bool = False,
                   reproducible: bool = False, max_error_db: float | None = None, progress: Progress | None = None,
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
    max_error_db: guarantee |decoded - original| <= this many dB on every valid sample (dB of amplitude or power
        for such inputs), with a residual layer over the learned one; the container then always decodes exactly.
    progress, cancelled: called with the fraction done / asked whether to stop, once per block.
    overviews: also store the reduced-resolution pyramid (sar_codec.overviews) that fast zoomed-out reads use.
    """
    start = time.monotonic()
    if units is not None:
        check_units(units)
    max_error_db = residual.check_bound(max_error_db)
    if quality is not None and target_bpp is not None:
        raise InputError("Give either a quality or a target bpp, not both.")
    _check_sizes(tile_size, block_size)
    if target_bpp is not None and not (math.isfinite(target_bpp) and target_bpp > 0):
        raise InputError(f"The target rate {target_bpp} bpp is not a positive number; give one such as 1.5.")
    output = Path(output)
    device = pick_device(device)
    if quality is not None or architecture not in {e.architecture for e in model_table()}:
        lookup(architecture, DEFAULT_QUALITY if quality is None else quality)  # fails now, before any I/O
    with bounded_gdal_cache(), open_scene(inputs, units=units, pols=pols) as scene:
        info = scene.info
        if any(same_file(output, p) for p in scene.paths):  # a /vsizip/ path names its zip
            raise OutputExistsError(f"{output} is an input of this run; choose another output path.")
        if output.exists() and not overwrite:
            raise OutputExistsError(f"{output} already exists; choose another path or allow overwriting.")
        _check_geometry(info, tile_size)
        grid = BlockGrid(info.height, info.width, block_size, tile_size)
        mappings = fit_mappings(scene, grid, progress, cancelled)
        entry, note = _resolve_quality(scene, grid, architecture, quality, target_bpp, device, mappings, tile_size,
                                       reproducible)
        codec = load_codec(entry, device)
        levels = plan_levels(info.width, info.height, block_size, tile_size, grid.count) if overviews else []
        # extra block slots: the pyramid's levels first, then a SAFE product's other files (docs/container.md)
        product = store_product(inputs, scene, grid.count + overview_block_count(levels))
        scene_json = info.to_json()
        if product is not None and product.georef is not None:  # GCPs from the annotation
            scene_json["georef"] = product.georef
        header = {
            "format": FORMAT_NAME,
            "software": f"sar-codec {__version__}",
            "scene": scene_json,
            "mappings": [m.to_json() for m in mappings],
            "model": {"architecture": entry.architecture, "quality": entry.quality, "weights": entry.weights,
                      "sha256": entry.sha256, "arithmetic": ARITHMETIC_VERSION},
            "tile_size": tile_size,
            "block_size": block_size,
            **(product.header if product else {}),
        }
        if max_error_db is not None:
            header["max_error_db"] = max_error_db
        if levels:
            header["overviews"] = [lv.to_json() for lv in levels]
        extra = product.payloads if product else []
        first_extra = grid.count + overview_block_count(levels)
        total = first_extra
        done = 0

        def encode(block) -> bytes:  # in a worker thread, while this one reads the next block (pipeline.ahead)
            _, win, raw, valid, db = block
            if not valid.any():
                return b""
            if max_error_db is not None:
                return encode_bounded_block(codec, entry.quality - 1, raw, valid, db, win, info, mappings,
                                            tile_size, reproducible, max_error_db)
            return encode_block(codec, entry.quality - 1, raw, valid, db, mappings, tile_size, reproducible)

        def write(i: int, payload: bytes) -> None:
            nonlocal done
            writer.write_block(i, payload)
            done += 1
            _report(progress, cancelled, 0.1 + 0.9 * done / total)

        def write_overview(i: int, win: Window, power: np.ndarray) -> None:  # a pyramid block (no error bound)
            raw, valid = from_power(power, info.units, info.dtype, info.nodata)
            db = to_db(raw, info.units)
            db[~valid] = np.nan
            write(i, encode_block(codec, entry.quality - 1, raw, valid, db, mappings, tile_size, reproducible)
                  if valid.any() else b"")

        blocks = ((i, win, *_block_db(scene, win)) for i, win in grid.blocks())
        with ContainerWriter(output, header, first_extra + len(extra), overwrite=overwrite) as writer:
            pyramid = PyramidWriter(levels, info.width, info.count, block_size, tile_size, info.units, write_overview)
            for (i, win, raw, valid, _), payload in ahead(blocks, encode):
                write(i, payload)
                pyramid.add_block(win, raw, valid)
            for i, payload in enumerate(extra, start=first_extra):
                writer.write_block(i, payload)
    size = output.stat().st_size
    pixels = info.width * info.height * info.count
    return CompressResult(output, size, pixels, size * 8 / pixels, time.monotonic() - start,
                          entry.architecture, entry.quality, note)


@dataclass(frozen=True)
class OpenedContainer:
    """A scene container opened for decoding: its scene info, mappings, block grid, model row and overviews."""

    container: Container
    info: SceneInfo
    mappings: list[Mapping]
    grid: BlockGrid
    entry: ModelEntry
    max_error_db: float | None = None  # set: blocks carry the guaranteed-error layer and decode exactly
    overviews: tuple[Level, ...] = ()  # the reduced-resolution levels 1, 2, ... (sar_codec.overviews)


def open_container(path: str | Path) -> OpenedContainer:
    """Open a scene container for decoding; checks its header and that its weights are installed."""
    container = Container.open(path)
    try:
        header = parse_scene_header(container.header, str(path))  # every key's type and value checked
        info, mappings, grid, model = header.info, header.mappings, header.grid, header.model
        max_error_db = residual.check_bound(container.header.get("max_error_db"))
        levels = levels_from_header(container.header, grid.count, grid.block_size, grid.tile_size)
        file_blocks = len(container.header.get("files", []))  # a SAFE product's stored files (sar_codec/safe.py)
        if grid.count + overview_block_count(levels) + file_blocks != container.block_count:
            raise ContainerError(f"{path} is corrupted (header and index disagree).")
    except ContainerError:
        container.close()
        raise
    except (KeyError, TypeError, ValueError) as exc:  # InputError is a ValueError: a bad max_error_db
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
    return OpenedContainer(container, info, mappings, grid, entry, max_error_db, tuple(levels))


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


def decode_slot(opened: OpenedContainer, codec, slot: int, win: Window, exact: bool = False) -> np.ndarray:
    """The samples of block slot ``slot`` (a level-0 block, or a pyramid block when ``slot`` is past the scene's
    blocks) covering ``win`` of its level; level-0 blocks of a guaranteed-error container decode with their
    residual layer, exactly (the bound holds for the exact decode only)."""
    payload = opened.container.read_block(slot)
    if not payload:
        return _all_nodata(opened.info, win)
    where = f"block {slot} of {opened.container.path}"
    q, tile = opened.entry.quality - 1, opened.grid.tile_size
    if opened.max_error_db is not None and slot < opened.grid.count:
        return decode_bounded_block(codec, q, payload, win, opened.info, opened.mappings, tile, where,
                                    opened.max_error_db)
    return decode_block(codec, q, payload, win, opened.info, opened.mappings, tile, where, exact)


def decode_blocks(opened: OpenedContainer, target: Window, device: str, progress: Progress | None = None,
                  cancelled: Cancelled | None = None, exact: bool = False):
    """Yield (window inside ``target``, samples) for every block intersecting ``target`` (``exact``: see
    :func:`decode_block`)."""
    codec = load_codec(opened.entry, device)
    ids = opened.grid.blocks_in(target)

    def decode(i: int) -> np.ndarray:  # in a worker thread, while the caller writes the previous block
        return decode_slot(opened, codec, i, opened.grid.block(i), exact)

    for n, (i, data) in enumerate(ahead(ids, decode)):
        win = opened.grid.block(i)
        part = win.intersection(target)
        yield part, data[:, part.row_off - win.row_off : part.row_off - win.row_off + part.height,
                         part.col_off - win.col_off : part.col_off - win.col_off + part.width]
        _report(progress, cancelled, (n + 1) / len(ids))


def _all_nodata(info: SceneInfo, win: Window) -> np.ndarray:
    fill = info.nodata if info.nodata is not None else (np.nan if np.dtype(info.dtype).kind == "f" else 0)
    return np.full((info.count, win.height, win.width), fill, dtype=info.dtype)


def decompress_scene(container: str | Path, output: str | Path, *, window: Sequence[int] | None = None,
                     bbox: Sequence[float] | None = None, cog: bool = False, device: str = "auto",
                     overwrite: bool = False, exact: bool = False, progress: Progress | None = None,
                     cancelled: Cancelled | None = None) -> Path:
    """Decode a container (or a window / bounding box of it) to a GeoTIFF or COG with its georeferencing.

    ``exact``: run the synthesis transform in fixed point too, so that the decoded samples are the same bytes on
    every machine, device and thread count (slower). By default it runs in floating point, a fraction of a
    quantisation step from the exact samples (docs/benchmarks.md); either way every stream decodes everywhere.
    """
    from .raster_out import SceneWriter

    device = pick_device(device)
    output = Path(output)
    opened = open_container(container)
    try:
        target = scene_window(opened.info, window, bbox)
        info = opened.info.for_window(target.row_off, target.col_off, target.height, target.width)
        with bounded_gdal_cache(), \
                SceneWriter(output, info, cog=cog, overwrite=overwrite, protect=[Path(container)]) as writer:
            for part, data in decode_blocks(opened, target, device, progress, cancelled, exact):
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
            decode_slot(opened, codec, lv.first_block + j, win)
            count += 1
    return count


def verify_container(path: str | Path, *, decode: bool = False, device: str = "auto",
                     progress: Progress | None = None) -> dict:
    """Check every CRC and block structure (and with ``decode`` decode every block); raises on a problem."""
    opened = open_container(path)
    try:
        files = sum(1 for _ in stored_files(opened.container))  # a SAFE's files, by name, against their SHA-256
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
        return {"path": str(path), "blocks": blocks, "decoded": decode, "files": files, "ok": True}
    finally:
        opened.container.close()
