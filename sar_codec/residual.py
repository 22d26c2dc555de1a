"""The guaranteed-error layer: a residual in dB over the learned layer, so that |decoded - original| <= E dB.

For each valid sample the encoder sends an integer q; the decoder's value is the learned layer's value moved by
q * 2E dB (``reconstruct``), in the source units and dtype. The encoder picks, per sample, the q nearest to the
residual that keeps the error of the *final* value (after the conversion to the source units and the rounding
to the source dtype, exactly as the decoder computes it) within E dB; it tries q, q -/+ 1, q -/+ 2 in turn, and
stores a sample that none of them brings within E (a uint16 DN whose neighbours are more than 2E dB apart, a
float rounding) exactly, as an exception. The bound is measured as :func:`sar_codec.radiometry.to_db` measures
dB (20 log10 of amplitude, 10 log10 of power, dB as is). The q of each band are coded with static rANS
(CompressAI's coder with the band's own histogram), or as int8/16/32 with zlib or raw LZMA2, whichever is
smallest. Bai et al., "Learning scalable l-infinity-constrained near-lossless image compression via joint lossy
image and residual compression" (CVPR 2021), use a learned lossy layer the same way.

A bounded block payload is the learned payload of :mod:`sar_codec.block_payload` followed by this residual
section (:func:`encode_bounded_block`, :func:`decode_bounded_block`); the layout is in ``docs/container.md``
("The guaranteed-error layer").
"""

from __future__ import annotations

import lzma
import math
import struct
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .block_payload import decode_block, encode_block, read_masks
from .byte_reader import ByteReader
from .errors import InputError
from .radiometry import Mapping, Units, from_db, to_db
from .tiling import Window

if TYPE_CHECKING:
    from .scene_info import SceneInfo

_HEAD = struct.Struct("<BBI")  # width in bytes of q (1, 2 or 4), method (0 zlib, 1 raw LZMA2), length
_U32 = struct.Struct("<I")
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
_TRIES = (0, -1, 1, -2, 2)
ZLIB, LZMA, RANS = 0, 1, 2
RANS_PRECISION = 16  # CompressAI's rANS coder works with 16-bit CDFs
RANS_MAX_SYMBOLS = 4096  # wider q ranges go to zlib/LZMA only
_RANS_TABLE = struct.Struct("<iH")  # q_min, symbol count k


def check_bound(max_error_db: float | None) -> float | None:
    """The bound as a float, or an InputError when it is not a positive finite number of dB."""
    if max_error_db is None:
        return None
    try:
        e = float(max_error_db)
    except (TypeError, ValueError):
        e = math.nan
    if not (math.isfinite(e) and e > 0):
        raise InputError(f"The maximum error {max_error_db!r} must be a positive number of dB.")
    return e


def reconstruct(base_db: np.ndarray, q: np.ndarray, step: float, units: Units, dtype: np.dtype,
                nodata: float | None) -> np.ndarray:
    """The decoded values: the learned layer's dB moved by q * step, in the source units and dtype.

    A float value that would equal the nodata value is moved one step away, as
    :func:`~sar_codec.block_payload.decode_block` does.
    """
    out = from_db(base_db + q * step, units, dtype)
    if nodata is not None and not math.isnan(nodata) and dtype.kind == "f":
        clash = out == dtype.type(nodata)
        out[clash] = np.nextafter(out[clash], dtype.type(np.inf))
    return out


def _rans_cdf(q_min: int, freqs: np.ndarray) -> list[int]:
    """The CDF CompressAI's coder takes: the k symbol frequencies, then the overflow symbol's, summing to 2**16."""
    cdf = [0, *np.cumsum(freqs, dtype=np.int64).tolist()]
    return cdf + [1 << RANS_PRECISION]


def _rans_pack(q: np.ndarray) -> bytes | None:
    """Static rANS (CompressAI's coder) with the band's own histogram: a zlib'd frequency table, then the stream."""
    if not q.size:
        return None
    from .models.compressai_ans import RansEncoder

    q_min = int(q.min())
    k = int(q.max()) - q_min + 1
    if k > RANS_MAX_SYMBOLS:
        return None
    counts = np.bincount(q - q_min, minlength=k)
    freqs = counts * ((1 << RANS_PRECISION) - k - 1) // q.size + 1  # each >= 1; leaves >= 1 for the overflow
    cdf = _rans_cdf(q_min, freqs)
    stream = RansEncoder().encode_with_indexes(q.tolist(), [0] * q.size, [cdf], [len(cdf)], [q_min])
    table = zlib.compress(_RANS_TABLE.pack(q_min, k) + freqs.astype("<u2").tobytes(), 9)
    return _U32.pack(len(table)) + table + stream


def _pack_q(q: np.ndarray) -> bytes:
    hi = int(np.abs(q).max()) if q.size else 0
    width = 1 if hi < 2**7 else 2 if hi < 2**15 else 4
    data = q.astype(f"<i{width}").tobytes()
    options = [(ZLIB, zlib.compress(data, 9)),
               (LZMA, lzma.compress(data, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS))]
    rans = _rans_pack(q)
    if rans is not None:
        options.append((RANS, rans))
    method, blob = min(options, key=lambda o: len(o[1]))
    return _HEAD.pack(width, method, len(blob)) + blob


def _rans_unpack(rd: ByteReader, blob: bytes, count: int) -> np.ndarray:
    from .models.compressai_ans import RansDecoder

    inner = ByteReader(blob, rd.where, rd.section)
    try:
        table = zlib.decompress(inner.take(_U32.unpack(inner.take(4))[0]))
    except zlib.error:
        raise rd.bad("a bad frequency table") from None
    if len(table) < _RANS_TABLE.size:
        raise rd.bad("a short frequency table")
    q_min, k = _RANS_TABLE.unpack_from(table)
    freqs = np.frombuffer(table, "<u2", offset=_RANS_TABLE.size).astype(np.int64)
    if not 1 <= k <= RANS_MAX_SYMBOLS or freqs.size != k or freqs.min() < 1 or freqs.sum() >= 1 << RANS_PRECISION:
        raise rd.bad("a bad frequency table")
    cdf = _rans_cdf(q_min, freqs)
    q = np.array(RansDecoder().decode_with_indexes(blob[inner.pos :], [0] * count, [cdf], [len(cdf)], [q_min]),
                 dtype=np.int64)
    if q.size != count or (count and (q.min() < q_min or q.max() >= q_min + k)):
        raise rd.bad("residuals out of range")
    return q


def _pack_exceptions(index: np.ndarray, values: np.ndarray) -> bytes:
    if not index.size:
        return _U32.pack(0)
    blob = zlib.compress(_U32.pack(index.size) + index.astype("<u4").tobytes()
                         + values.astype(values.dtype.newbyteorder("<")).tobytes(), 9)
    return _U32.pack(len(blob)) + blob


def encode(raw: np.ndarray, valid: np.ndarray, base: np.ndarray, units: Units, nodata: float | None,
           max_error_db: float) -> bytes:
    """The residual section of one block: per band, the q of its valid samples and its exceptions.

    ``raw``: the original samples (bands, rows, cols); ``base``: what the learned layer decodes to (same shape
    and dtype), exactly as the decoder computes it.
    """
    step, dtype = 2.0 * max_error_db, raw.dtype
    parts = []
    for b in range(raw.shape[0]):
        v = valid[b]
        x = raw[b][v]
        x_db = to_db(x, units)
        base_db = to_db(base[b][v], units)
        q0 = np.rint((x_db - base_db) / step)
        q = q0.copy()
        todo = np.arange(x.size)
        for t in _TRIES:
            if not todo.size:
                break
            cand = q0[todo] + t
            rec = reconstruct(base_db[todo], cand, step, units, dtype, nodata)
            ok = np.abs(to_db(rec, units) - x_db[todo]) <= max_error_db
            q[todo[ok]] = cand[ok]
            todo = todo[~ok]
        q[todo] = 0
        parts.append(_pack_q(q.astype(np.int64)) + _pack_exceptions(todo, x[todo]))
    return b"".join(parts)




def _unpack_q(rd: ByteReader, count: int) -> np.ndarray:
    width, method, n = _HEAD.unpack(rd.take(_HEAD.size))
    if width not in (1, 2, 4) or method not in (ZLIB, LZMA, RANS):
        raise rd.bad("unknown residual coding")
    blob, expected = rd.take(n), count * width
    if method == RANS:
        return _rans_unpack(rd, blob, count)
    try:
        if method == ZLIB:
            z = zlib.decompressobj()
            data = z.decompress(blob, expected)
            ended = z.eof and not z.unconsumed_tail and not z.unused_data
        else:
            x = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
            data = x.decompress(blob, expected)
            ended = x.eof and not x.unused_data
    except (zlib.error, lzma.LZMAError):
        raise rd.bad("bad residual data") from None
    if len(data) != expected or not ended:
        raise rd.bad("residuals of the wrong size")
    return np.frombuffer(data, dtype=f"<i{width}").astype(np.int64)


def _unpack_exceptions(rd: ByteReader, count: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    (n,) = _U32.unpack(rd.take(4))
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, dtype)
    try:
        data = zlib.decompress(rd.take(n))
    except zlib.error:
        raise rd.bad("bad exception data") from None
    if len(data) < 4:
        raise rd.bad("exceptions of the wrong size")
    (k,) = _U32.unpack_from(data)
    if len(data) != 4 + k * (4 + dtype.itemsize):
        raise rd.bad("exceptions of the wrong size")
    index = np.frombuffer(data, "<u4", k, 4).astype(np.int64)
    values = np.frombuffer(data, dtype.newbyteorder("<"), k, 4 + 4 * k).astype(dtype)
    if k and (index.max() >= count or np.any(np.diff(index) <= 0)):
        raise rd.bad("exception positions out of range")
    return index, values


def apply(section: bytes, base: np.ndarray, valid: np.ndarray, units: Units, nodata: float | None,
          max_error_db: float, where: str) -> np.ndarray:
    """Inverse of :func:`encode`: the block's final values from the learned layer ``base`` and the section."""
    rd = ByteReader(section, where, "residual section")
    out = base.copy()
    step, dtype = 2.0 * max_error_db, base.dtype
    for b in range(base.shape[0]):
        v = valid[b]
        count = int(v.sum())
        q = _unpack_q(rd, count)
        index, values = _unpack_exceptions(rd, count, dtype)
        band = reconstruct(to_db(base[b][v], units), q, step, units, dtype, nodata)
        band[index] = values
        out[b][v] = band
    if rd.pos != len(section):
        raise rd.bad("trailing bytes")
    return out


def encode_bounded_block(codec, quality_index: int, raw: np.ndarray, valid: np.ndarray, db: np.ndarray,
                         win: Window, info: SceneInfo, mappings: Sequence[Mapping], tile_size: int, exact: bool,
                         max_error_db: float, effort: int = 0, lmbda: float = 0.0) -> bytes:
    """A block payload with the guaranteed-error layer: u32 length and the learned payload, then the residual
    section, checked by decoding it exactly as the decoder will."""
    learned = encode_block(codec, quality_index, raw, valid, db, mappings, tile_size, exact, effort, lmbda)
    where = f"the block at row {win.row_off}, column {win.col_off}"
    base = decode_block(codec, quality_index, learned, win, info, mappings, tile_size, where, exact=True)
    payload = _U32.pack(len(learned)) + learned + encode(raw, valid, base, info.units, info.nodata, max_error_db)
    back = decode_bounded_block(codec, quality_index, payload, win, info, mappings, tile_size, where, max_error_db)
    err = np.abs(to_db(back[valid], info.units) - to_db(raw[valid], info.units))
    if err.size and not err.max() <= max_error_db:  # encode guarantees it; never store a broken bound
        raise AssertionError(f"{where}: the decoded error {err.max()} dB exceeds the bound {max_error_db} dB")
    return payload


def decode_bounded_block(codec, quality_index: int, payload: bytes, win: Window, info: SceneInfo,
                         mappings: Sequence[Mapping], tile_size: int, where: str, max_error_db: float) -> np.ndarray:
    """Inverse of :func:`encode_bounded_block`; the learned layer is decoded exactly (fixed point)."""
    rd = ByteReader(payload, where)
    learned = rd.take(rd.u32())
    base = decode_block(codec, quality_index, learned, win, info, mappings, tile_size, where, exact=True)
    valid, _ = read_masks(ByteReader(learned, where), info, win.height, win.width)
    return apply(payload[rd.pos :], base, valid, info.units, info.nodata, max_error_db, where)
