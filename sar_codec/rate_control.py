"""Rate control: which row of the model table codes a scene, from a quality or from a target rate.

With a target rate (bits per pixel per polarisation), the sample blocks that :func:`sample_block_ids` picks are
coded at each quality in turn, lowest first; rates grow with quality, so the search stops at the first quality
whose rate is above the target and keeps the one before it. The rate counts the block payloads only: the
container's metadata and overview pyramid come on top (``docs/container.md``, "Overviews").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from . import block_payload
from .errors import InputError
from .radiometry import Mapping
from .registry import DEFAULT_QUALITY, ModelEntry, load_codec, lookup, model_table
from .tiling import BlockGrid

SAMPLE_BLOCKS = 4  # blocks the rate search codes, evenly spread over the scene
# How a quality is read: "normalised", its lambda weighs the squared error in the codec's [0, 1] domain (the
# founding study's); "db", the same trade-off in dB for every scene (see db_quality).
ALLOCATIONS = ("normalised", "db")
# dB per unit of [0, 1] at which both readings agree: about a typical band's core (the dev sets' bands: 15-39).
DB_REFERENCE = 20.0

Block = tuple[np.ndarray, np.ndarray, np.ndarray]  # raw samples, validity mask, dB (NaN where invalid)


def check_rate_options(architecture: str, quality: int | None, target_bpp: float | None,
                       allocation: str = "normalised") -> None:
    """The model, quality, target-rate and allocation options' checks, which need neither the scene nor torch."""
    if quality is not None and target_bpp is not None:
        raise InputError("Give either a quality or a target bpp, not both.")
    if check_allocation(allocation) != "normalised" and target_bpp is not None:
        raise InputError("An allocation chooses the quality that codes a scene; with a target bpp the rate chooses "
                         "it: give one or the other.")
    if target_bpp is not None and not (isinstance(target_bpp, (int, float)) and math.isfinite(target_bpp)
                                       and target_bpp > 0):
        raise InputError(f"The target rate {target_bpp} bpp is not a positive number; give one such as 1.5.")
    if quality is not None or architecture not in {e.architecture for e in model_table()}:
        lookup(architecture, DEFAULT_QUALITY if quality is None else quality)  # the clear error


def check_allocation(allocation: str) -> str:
    """``allocation`` if it is one of :data:`ALLOCATIONS`, else InputError."""
    if allocation not in ALLOCATIONS:
        raise InputError(f"Unknown allocation {allocation!r}: use one of {', '.join(ALLOCATIONS)}.")
    return allocation


def db_quality(entry: ModelEntry, mappings: Sequence[Mapping]) -> ModelEntry:
    """The row that codes a scene at ``entry``'s quality read as a trade-off in dB.

    A quality's lambda weighs the squared error in [0, 1]; a band's error in dB is that error times its mapping's
    dB per unit ``s`` (:meth:`Mapping.db_per_unit`), so the same weight on the error in dB is
    ``lambda * (s / DB_REFERENCE)**2``: a band whose core spans many dB (dark water beside bright land) gets a
    higher quality, a flat one a lower. The row is the one whose lambda is nearest in log (``s``: the geometric mean
    of the bands'). Coding many scenes so spends bits where they lower the error in dB most, which one quality
    for all does not (measured in docs/models.md, "Allocation in dB")."""
    rows = [e for e in model_table() if e.architecture == entry.architecture]
    s = math.exp(float(np.mean([math.log(m.db_per_unit()) for m in mappings])))
    target = math.log(entry.lmbda) + 2.0 * math.log(s / DB_REFERENCE)
    return min(rows, key=lambda e: (abs(math.log(e.lmbda) - target), e.quality))


def sample_block_ids(grid: BlockGrid) -> list[int]:
    """The blocks the rate search codes: up to :data:`SAMPLE_BLOCKS`, evenly spread from the first to the last."""
    return [int(i) for i in np.linspace(0, grid.count - 1, min(SAMPLE_BLOCKS, grid.count)).round().astype(int)]


def resolve_quality(architecture: str, quality: int | None, target_bpp: float | None, samples: Sequence[Block],
                    device: str, mappings: Sequence[Mapping], tile_size: int, exact: bool,
                    allocation: str = "normalised") -> tuple[ModelEntry, str | None]:
    """The table row to use: the asked quality (read in dB with ``allocation="db"``: :func:`db_quality`), or the
    highest whose bpp on the ``samples`` blocks meets ``target_bpp``; and a note when none meets it or the top
    quality stays below it."""
    if target_bpp is None:
        entry = lookup(architecture, DEFAULT_QUALITY if quality is None else quality)
        return (db_quality(entry, mappings) if allocation == "db" else entry), None
    rows = sorted((e for e in model_table() if e.architecture == architecture), key=lambda e: e.quality)
    if not rows:
        lookup(architecture, 1)  # raises the clear error
    npix = sum(raw.size for raw, _, _ in samples)
    chosen, rate = None, math.inf
    for entry in rows:
        codec = load_codec(entry, device)
        bpp = sum(len(block_payload.encode_block(codec, entry.quality - 1, *blk, mappings, tile_size, exact))
                  for blk in samples) * 8 / npix
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
