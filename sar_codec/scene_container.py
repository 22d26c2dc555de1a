"""A scene container opened for decoding, and its blocks decoded.

:func:`open_container` opens the file (:class:`~sar_codec.container.Container` checks its bytes), checks its
header against the scene-header schema (:mod:`sar_codec.scene_header`), that its index holds exactly the blocks
the header describes, and that the weights and fixed-point arithmetic that coded it are this sar-codec's.
:func:`decode_slot` and :func:`decode_blocks` then decode its block payloads (:mod:`sar_codec.block_payload`,
:mod:`sar_codec.residual`) into samples; ``decompress``, ``verify``, the reader and the SAFE rebuild all go through
them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .block_payload import decode_block
from .container import Container
from .errors import ContainerError, WeightsError
from .models import ARITHMETIC_VERSION
from .overviews import Level
from .pipeline import DECODE_WORKERS, ahead
from .progress import Cancelled, Progress
from .progress import report as _report
from .radiometry import Mapping
from .registry import ModelEntry, find_by_hash, load_decoder
from .residual import decode_bounded_block
from .scene_header import SceneHeader, parse_scene_header
from .scene_info import SceneInfo
from .tiling import BlockGrid, Window


@dataclass(frozen=True)
class OpenedContainer:
    """A scene container opened for decoding: its checked header and the model row that decodes it."""

    container: Container
    header: SceneHeader
    entry: ModelEntry

    @property
    def info(self) -> SceneInfo:
        return self.header.info

    @property
    def mappings(self) -> list[Mapping]:
        return self.header.mappings

    @property
    def grid(self) -> BlockGrid:
        return self.header.grid

    @property
    def max_error_db(self) -> float | None:
        """Set: level-0 blocks carry the guaranteed-error layer and decode exactly."""
        return self.header.max_error_db

    @property
    def overviews(self) -> tuple[Level, ...]:
        """The reduced-resolution levels 1, 2, ... (sar_codec.overviews)."""
        return self.header.overviews


def open_container(path: str | Path) -> OpenedContainer:
    """Open a scene container for decoding; checks its header and that its weights are installed."""
    container = Container.open(path)
    try:
        header = parse_scene_header(container.header, str(path))  # every key's type and value checked
        files = container.header.get("files", [])  # a SAFE product's stored files (sar_codec/safe.py)
        if not isinstance(files, list):
            raise ContainerError(f"{path} has an invalid header (files is not a list).")
        if header.block_count + len(files) != container.block_count:
            raise ContainerError(f"{path} is corrupted (header and index disagree).")
        entry = _installed_model(header.model, path)
    except BaseException:
        container.close()
        raise
    return OpenedContainer(container, header, entry)


def _installed_model(model: dict, path: str | Path) -> ModelEntry:
    """The model table's row for the header's ``model``: the same weights (by SHA-256) and arithmetic."""
    arithmetic = model.get("arithmetic", 1)
    if arithmetic != ARITHMETIC_VERSION:
        raise WeightsError(f"{path} was coded with fixed-point arithmetic version {arithmetic} and this "
                           f"sar-codec decodes version {ARITHMETIC_VERSION}; decode it with the sar-codec "
                           "version that made it.")
    entry = find_by_hash(model["architecture"], model["sha256"])
    if entry is None:
        raise WeightsError(f"{path} was made with {model['architecture']} weights {model['sha256'][:12]}..., "
                           "which are not installed; install the sar-codec version that made it.")
    row = find_by_hash(entry.architecture, entry.sha256, int(model["quality"]))
    if row is None:
        raise ContainerError(f"{path} names quality {model['quality']} of {entry.architecture}, which its weights "
                             "do not have; the file is damaged.")
    return row


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


def decode_slots(opened: OpenedContainer, codec, slots: Iterable[tuple[int, Window]],
                 exact: bool = False) -> Iterator[tuple[tuple[int, Window], np.ndarray]]:
    """``((slot, window), samples)`` of :func:`decode_slot` for each slot, in order, decoded ahead of the caller:
    two blocks at a time with the torch-free decoder, each on one BLAS thread (:data:`~sar_codec.pipeline.
    DECODE_WORKERS`), one at a time with torch (whose threads already fill the cores)."""
    from .models.numpy_decoder import NumpyTileDecoder  # what load_decoder gave has loaded it already

    workers, blas = 1, contextlib.nullcontext()
    if isinstance(codec, NumpyTileDecoder):
        from threadpoolctl import threadpool_limits

        workers, blas = DECODE_WORKERS, threadpool_limits(1, user_api="blas")
    with blas:
        yield from ahead(slots, lambda slot: decode_slot(opened, codec, *slot, exact), workers=workers)


def decode_blocks(opened: OpenedContainer, target: Window, device: str, progress: Progress | None = None,
                  cancelled: Cancelled | None = None, exact: bool = False):
    """Yield (window inside ``target``, samples) for every block intersecting ``target`` (``exact``: see
    :func:`~sar_codec.block_payload.decode_block`)."""
    codec = load_decoder(opened.entry, device)
    ids = opened.grid.blocks_in(target)
    slots = [(i, opened.grid.block(i)) for i in ids]
    for n, ((_, win), data) in enumerate(decode_slots(opened, codec, slots, exact)):
        part = win.intersection(target)
        yield part, data[:, part.row_off - win.row_off : part.row_off - win.row_off + part.height,
                         part.col_off - win.col_off : part.col_off - win.col_off + part.width]
        _report(progress, cancelled, (n + 1) / len(ids))


def _all_nodata(info: SceneInfo, win: Window) -> np.ndarray:
    """The samples of an empty block: the scene's nodata value (NaN, or 0 for integers, when it has none)."""
    fill = info.nodata if info.nodata is not None else (np.nan if np.dtype(info.dtype).kind == "f" else 0)
    return np.full((info.count, win.height, win.width), fill, dtype=info.dtype)
