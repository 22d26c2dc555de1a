"""Compress a Sentinel-1 scene into a .sarc container and decode it back, streaming block by block: the
orchestration of the container's layers.

Compression checks every option, then reads the scene twice, one block at a time (so memory does not grow with
the scene): a first pass accumulates per-polarisation dB histograms to fit the radiometric mapping
(:func:`fit_mappings`), a second codes each block into its payload (:mod:`sar_codec.block_payload`, or
:mod:`sar_codec.residual` with an error bound) while the overview pyramid (:mod:`sar_codec.overviews`) is built
from the same samples. The quality comes from :mod:`sar_codec.rate_control`, the header from
:mod:`sar_codec.scene_header`, and the bytes are laid out by :mod:`sar_codec.container`. Decoding opens the
container through :mod:`sar_codec.scene_container` and writes what it decodes with :mod:`sar_codec.raster_out`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import block_payload, residual
from .container import Container, ContainerWriter, read_header
from .device import check_device, pick_device
from .errors import InputError, OutputExistsError
from .files import same_file
from .gdal_env import bounded_gdal_cache
from .overviews import Level, PyramidWriter, from_power, overview_block_count, overview_bytes, plan_levels
from .pipeline import ENCODE_WORKERS, ahead
from .progress import Cancelled, Progress
from .progress import report as _report
from .radiometry import DbHistogram, Mapping, Units, check_units, to_db
from .rate_control import check_rate_options, resolve_quality, sample_block_ids
from .registry import DEFAULT_ARCHITECTURE, load_codec, load_decoder, lookup
from .safe import store_product, stored_files
from .scene import open_scene
from .scene_container import OpenedContainer, decode_blocks, decode_slot, open_container
from .scene_header import MAX_BANDS, SceneHeader, model_record
from .scene_info import SceneInfo
from .tiling import (
    DEFAULT_BLOCK_SIZE,
    DEFAULT_TILE_SIZE,
    BlockGrid,
    Window,
    check_sizes,
    check_window_options,
    scene_tile_size,
    scene_window,
)


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


def _check_geometry(info: SceneInfo, tile_size: int) -> None:
    if info.width < tile_size or info.height < tile_size:
        raise InputError(f"The scene is {info.width}x{info.height} pixels, smaller than one "
                         f"{tile_size}x{tile_size} tile.")


def check_effort(effort: int, architecture: str, reproducible: bool) -> None:
    """Latent refinement's options (sar_codec.models.refinement), checked before anything is read."""
    if isinstance(effort, int) and not isinstance(effort, bool) and effort == 0:
        return
    from .models.refinement import check_refinable  # torch: only when refinement is asked for

    try:
        check_refinable(architecture, effort)
    except ValueError as e:
        raise InputError(str(e)) from None
    if reproducible:
        raise InputError("Latent refinement (an effort above 0) runs in floating point, so its containers are not "
                         "reproducible; ask for one or the other.")


def _check_pols(pols: Sequence[str] | None) -> list[str] | None:
    """The polarisations option's checks that need no scene: one or two names, e.g. ["VV"] or ["VV", "VH"]
    (which of them the scene has is checked when it is opened)."""
    if pols is None:
        return None
    names = [pols] if isinstance(pols, str) else list(pols)
    if isinstance(pols, str) or not names or not all(isinstance(p, str) and p.strip() for p in names):
        raise InputError(f"The polarisations {pols!r} are not a list of names; give one or two, such as VV, or "
                         "VV and VH.")
    if len({p.upper() for p in names}) > MAX_BANDS:
        raise InputError(f"The polarisations {', '.join(names)} are more than the {MAX_BANDS} a scene holds; "
                         "give one or two.")
    return names


def block_db(scene, win: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw samples, validity mask and dB values (NaN where invalid) of a block: what the encoder codes."""
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
        raw = scene.read(win.row_off, win.col_off, win.height, win.width)
        valid = scene.valid_mask(raw)
        for b, h in enumerate(hists):
            h.add_samples(raw[b][valid[b]], scene.info.units)
        _report(progress, cancelled, share * (i + 1) / grid.count)
    if all(h.total == 0 for h in hists):
        raise InputError("The scene holds only nodata; there is nothing to compress.")
    return [h.mapping() if h.total else Mapping((-1.0, 1.0), (0.0, 1.0)) for h in hists]


def compress_scene(inputs: str | Path | Sequence[str | Path], output: str | Path, *,
                   architecture: str = DEFAULT_ARCHITECTURE, quality: int | None = None,
                   target_bpp: float | None = None, device: str = "auto",
                   tile_size: int | None = None, block_size: int = DEFAULT_BLOCK_SIZE,
                   units: Units | None = None, pols: Sequence[str] | None = None, overwrite: bool = False,
                   reproducible: bool = False, max_error_db: float | None = None, progress: Progress | None = None,
                   cancelled: Cancelled | None = None, overviews: bool = True, effort: int = 0,
                   allocation: str = "normalised") -> CompressResult:
    """Compress a Sentinel-1 scene (one or two polarisations) into a .sarc container at ``output``.

    Parameters
    ----------
    inputs: a raster, a SAFE product, or two single-polarisation rasters.
    architecture, quality: the model and its quality level (see ``sar-codec models``).
    target_bpp: instead of ``quality``, the highest quality whose rate on sample blocks is at most this.
    device: ``auto``, ``cpu`` or ``cuda``.
    tile_size: the model's input in pixels (a multiple of 64); default: the tile size the model was trained for,
        halved while larger than the scene's shorter side or not dividing ``block_size``
        (``sar_codec.tiling.scene_tile_size``).
    units: force ``amplitude``, ``power`` or ``db`` instead of detecting them.
    reproducible: run the encoder's analysis transform in fixed point as well, so that the same scene gives
        the same container bytes on every machine (slower). Decoding is exact and device-independent either way.
    max_error_db: guarantee |decoded - original| <= this many dB on every valid sample (dB of amplitude or power
        for such inputs), with a residual layer over the learned one; the container then always decodes exactly.
    progress, cancelled: called with the fraction done / asked whether to stop, once per block.
    overviews: also store the reduced-resolution pyramid (sar_codec.overviews) that fast zoomed-out reads use.
    effort: steps of encoder-side latent refinement per block (0: none; sar_codec.models.refinement): fewer bits
        for the same quality (about 5 % at 100 steps, measured), at a far slower encode; floating point, so not
        with ``reproducible``; bmshj2018-hyperprior and its light variant only.
    allocation: ``normalised`` (default): ``quality`` codes the scene; ``db``: ``quality`` is read as a trade-off
        in dB, the same for every scene, so a band whose core spans many dB gets a higher quality and a flat one a
        lower (``sar_codec.rate_control.db_quality``; fewer bits for the same error in dB over many scenes).
    """
    start = time.monotonic()
    # every option is checked before the scene is read
    if units is not None:
        check_units(units)
    max_error_db = residual.check_bound(max_error_db)
    check_rate_options(architecture, quality, target_bpp, allocation)
    check_sizes(DEFAULT_TILE_SIZE if tile_size is None else tile_size, block_size)
    check_effort(effort, architecture, reproducible)
    pols = _check_pols(pols)
    device = pick_device(device)
    output = Path(output)
    with bounded_gdal_cache(), open_scene(inputs, units=units, pols=pols) as scene:
        info = scene.info
        if any(same_file(output, p) for p in scene.paths):  # a /vsizip/ path names its zip
            raise OutputExistsError(f"{output} is an input of this run; choose another output path.")
        if output.exists() and not overwrite:
            raise OutputExistsError(f"{output} already exists; choose another path or allow overwriting.")
        if tile_size is None:
            tile_size = scene_tile_size(lookup(architecture, 1).tile_size, info.height, info.width, block_size)
        _check_geometry(info, tile_size)
        grid = BlockGrid(info.height, info.width, block_size, tile_size)
        mappings = fit_mappings(scene, grid, progress, cancelled)
        samples = [block_db(scene, grid.block(i)) for i in sample_block_ids(grid)] if target_bpp is not None else []
        entry, note = resolve_quality(architecture, quality, target_bpp, samples, device, mappings, tile_size,
                                      reproducible, allocation)
        codec = load_codec(entry, device)
        levels = plan_levels(info.width, info.height, block_size, tile_size, grid.count) if overviews else []
        # extra block slots: the pyramid's levels first, then a SAFE product's other files (docs/container.md)
        product = store_product(inputs, scene, grid.count + overview_block_count(levels))
        header_info = info
        if product is not None and product.georef is not None:  # GCPs from the annotation
            header_info = replace(info, georef=product.georef)
        header = SceneHeader(header_info, mappings, grid, model_record(entry), max_error_db, tuple(levels)).to_json()
        header.update(product.header if product else {})
        extra = product.payloads if product else []
        first_extra = grid.count + overview_block_count(levels)
        total = first_extra
        done = 0

        def encode(job) -> bytes:  # in a worker thread, while this one reads the next block (pipeline.ahead)
            _, win, source = job
            if isinstance(source, np.ndarray):  # an overview block's linear power (no error bound)
                raw, valid = from_power(source, info.units, info.dtype, info.nodata)
                db = to_db(raw, info.units)
                db[~valid] = np.nan
                bound = None
            else:
                (raw, valid, db), bound = source, max_error_db
            if not valid.any():
                return b""
            if bound is not None:
                return residual.encode_bounded_block(codec, entry.quality - 1, raw, valid, db, win, info, mappings,
                                                     tile_size, reproducible, bound, effort, entry.lmbda)
            return block_payload.encode_block(codec, entry.quality - 1, raw, valid, db, mappings, tile_size,
                                              reproducible, effort, entry.lmbda)

        def jobs():  # the scene's blocks in order, each followed by the pyramid's blocks it completes
            finished: list = []
            pyramid = PyramidWriter(levels, info.width, info.count, block_size, tile_size, info.units,
                                    lambda i, win, power: finished.append((i, win, power.copy())))
            for i, win in grid.blocks():
                raw, valid, db = block_db(scene, win)
                yield i, win, (raw, valid, db)
                pyramid.add_block(win, raw, valid)
                yield from finished
                finished.clear()

        with ContainerWriter(output, header, first_extra + len(extra), overwrite=overwrite) as writer:
            for (i, _, _), payload in ahead(jobs(), encode, workers=ENCODE_WORKERS):
                writer.write_block(i, payload)
                done += 1
                _report(progress, cancelled, 0.1 + 0.9 * done / total)
            for i, payload in enumerate(extra, start=first_extra):
                writer.write_block(i, payload)
    size = output.stat().st_size
    pixels = info.width * info.height * info.count
    return CompressResult(output, size, pixels, size * 8 / pixels, time.monotonic() - start,
                          entry.architecture, entry.quality, note)


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

    check_window_options(window, bbox)
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
    codec = load_decoder(opened.entry, device)
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
    device = pick_device(device) if decode else check_device(device)
    opened = open_container(path)
    try:
        files = sum(1 for _ in stored_files(opened.container))  # a SAFE's files, by name, against their SHA-256
        blocks = 0
        if decode:
            full = Window(0, 0, opened.info.height, opened.info.width)
            for _ in decode_blocks(opened, full, device, progress):
                blocks += 1
            blocks += _decode_overviews(opened, device)
        else:
            for i in range(opened.container.block_count):
                opened.container.read_block(i)
                blocks += 1
                if progress is not None:
                    progress((i + 1) / opened.container.block_count)
        return {"path": str(path), "blocks": blocks, "decoded": decode, "files": files, "ok": True}
    finally:
        opened.container.close()
