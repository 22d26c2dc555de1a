"""A block payload: every polarisation of one block, as mask sections and one rANS stream of its tiles.

The byte layout is ``docs/container.md`` ("A block payload"): per band a mask flag, and for a block with invalid
samples the zlib'd validity mask and the invalid samples' original values (so nodata comes back bit for bit);
then a u32 length and one stream holding every tile with at least one valid sample. The guaranteed-error
variant, which wraps this payload, is :mod:`sar_codec.residual`.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .byte_reader import ByteReader
from .errors import ContainerError
from .radiometry import Mapping, from_db
from .tiling import Window, cut_tile, tile_origins

if TYPE_CHECKING:
    from .scene_info import SceneInfo

_U32 = struct.Struct("<I")


def _pack_mask(valid: np.ndarray, raw: np.ndarray) -> bytes:
    bits = zlib.compress(np.packbits(valid, axis=None).tobytes(), 9)
    values = zlib.compress(np.ascontiguousarray(raw[~valid]).astype(raw.dtype.newbyteorder("<")).tobytes(), 9)
    return _U32.pack(len(bits)) + bits + _U32.pack(len(values)) + values


def encode_block(codec, quality_index: int, raw: np.ndarray, valid: np.ndarray, db: np.ndarray,
                 mappings: Sequence[Mapping], tile_size: int, exact: bool = False, effort: int = 0,
                 lmbda: float = 0.0) -> bytes:
    """One block's payload: per band a mask section, then one rANS stream holding every tile that has data
    (``exact``: a fixed-point analysis transform; ``effort``, ``lmbda``: latent refinement; see
    :meth:`TileCodec.compress`)."""
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
    stream = codec.compress(np.stack(tiles)[:, None], quality_index, exact, effort, lmbda) if tiles else b""
    parts.append(_U32.pack(len(stream)) + stream)
    return b"".join(parts)


def read_masks(rd: ByteReader, info: SceneInfo, h: int, w: int) -> tuple[np.ndarray, dict[int, np.ndarray]]:
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
    valid, masked_values = read_masks(rd, info, h, w)
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
        # a code (0 to 2**12) maps to one sample value per band: look each up in a table of every code
        levels = np.arange(2**12 + 1) / float(2**12)
        tables = [from_db(mappings[b].inverse(levels), info.units, dtype) for b in range(info.count)]
        for b in range(info.count):
            out[b] = tables[b][0]  # where no tile was coded (invalid samples, restored below)
        for (b, r, c), code in zip(units, codes):
            piece = out[b, r : r + tile_size, c : c + tile_size]
            piece[...] = tables[b].take(code[0, : piece.shape[0], : piece.shape[1]], mode="clip")
    for b in range(info.count):
        bad = ~valid[b]
        if b in masked_values:
            out[b][bad] = masked_values[b]
        if info.nodata is not None and not math.isnan(info.nodata) and dtype.kind == "f":
            clash = valid[b] & (out[b] == dtype.type(info.nodata))  # a decoded value must never read as nodata
            out[b][clash] = np.nextafter(out[b][clash], dtype.type(np.inf))
    return out
