"""A block payload holds the bytes docs/container.md ("A block payload") describes, and decodes back from them.

The tile stream is the model's (tested through the codec in test_codec.py); here a stand-in coder records the
tiles it is given, so that the framing around it (mask flags, masks, masked values, stream length, which tiles
are coded) is checked byte by byte against the documented layout.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from sar_codec.block_payload import decode_block, encode_block
from sar_codec.errors import ContainerError
from sar_codec.radiometry import Mapping, to_db
from sar_codec.scene_info import SceneInfo
from sar_codec.tiling import Window

TILE = 64
MAPPING = Mapping((-40.0, 20.0), (0.0, 1.0))


class StandIn:
    """A tile coder that stores each tile's first code, so that decoding gives back a flat tile."""

    def __init__(self):
        self.compressed: list[int] = []

    def compress(self, tiles, quality_index, exact=False, effort=0, lmbda=0.0):
        self.compressed.append(len(tiles))
        codes = np.rint(tiles[:, 0, 0, 0] * 4096).astype("<u2")
        return b"T" + codes.tobytes()

    def decompress(self, stream, count, quality_index, tile_size, exact=False):
        assert stream[:1] == b"T"
        codes = np.frombuffer(stream[1:], "<u2")
        assert codes.size == count
        return np.broadcast_to(codes[:, None, None, None], (count, 1, tile_size, tile_size)).copy()


def _info(count, dtype, nodata):
    return SceneInfo(width=128, height=96, count=count, dtype=dtype, nodata=nodata, band_names=("VV", "VH")[:count],
                     units="db", georef={"crs": None, "transform": None, "gcps": None, "gcp_crs": None}, tags={},
                     band_tags=({},) * count, band_descriptions=(None,) * count)


def _encode(raw, valid, codec):
    db = to_db(raw, "db").astype(np.float64)
    db[~valid] = np.nan
    return encode_block(codec, 0, raw, valid, db, [MAPPING] * raw.shape[0], TILE)


def test_a_block_without_nodata_is_one_flag_byte_per_band_then_the_stream():
    raw = np.full((2, 96, 128), -10.0, dtype="float32")
    codec = StandIn()
    payload = _encode(raw, np.ones(raw.shape, bool), codec)
    assert payload[:2] == b"\x00\x00"  # band 0, band 1: every sample valid
    (k,) = struct.unpack_from("<I", payload, 2)
    assert payload[6:] == payload[6 : 6 + k] and payload[6:7] == b"T"  # the stream ends the payload
    assert codec.compressed == [2 * 2 * 2]  # 96x128 is 2x2 tiles of 64 (edge tiles padded), for both bands


def test_masks_and_masked_values_are_laid_out_as_documented_and_come_back_bit_for_bit():
    raw = np.full((1, 96, 128), -10.0, dtype="float32")
    valid = np.ones(raw.shape, bool)
    valid[0, :, 64:] = False  # the right column of tiles has no valid sample: it is not coded
    valid[0, 5, 7] = False
    odd_nan = np.frombuffer(struct.pack("<I", 0x7FC01234), "<f4")[0]  # a NaN with a payload
    raw[0, 5, 7] = odd_nan
    raw[0, :, 64:] = -9999.0
    codec = StandIn()
    payload = _encode(raw, valid, codec)

    assert payload[0:1] == b"\x01"
    (n,) = struct.unpack_from("<I", payload, 1)
    bits = zlib.decompress(payload[5 : 5 + n])
    assert bits == np.packbits(valid[0], axis=None).tobytes()  # row-major, 1 = valid
    pos = 5 + n
    (m,) = struct.unpack_from("<I", payload, pos)
    values = np.frombuffer(zlib.decompress(payload[pos + 4 : pos + 4 + m]), "<f4")
    assert values.tobytes() == raw[0][~valid[0]].astype("<f4").tobytes()
    pos += 4 + m
    (k,) = struct.unpack_from("<I", payload, pos)
    assert pos + 4 + k == len(payload)
    assert codec.compressed == [2]  # the two tiles of the left column

    info = _info(1, "float32", None)
    out = decode_block(codec, 0, payload, Window(0, 0, 96, 128), info, [MAPPING], TILE, "the block")
    assert out[0, 5, 7].tobytes() == odd_nan.tobytes()
    assert np.all(out[0, :, 64:] == -9999.0)
    assert np.allclose(out[0][valid[0]], -10.0, atol=0.05)


def test_an_empty_stream_is_allowed_only_when_no_tile_has_data():
    info = _info(1, "uint16", 0)
    raw = np.zeros((1, 64, 64), dtype="uint16")
    valid = np.zeros(raw.shape, bool)
    codec = StandIn()
    payload = _encode(raw, valid, codec)
    assert codec.compressed == [] and payload.endswith(struct.pack("<I", 0))
    assert np.all(decode_block(codec, 0, payload, Window(0, 0, 64, 64), info, [MAPPING], TILE, "the block") == 0)
    raw[0, 0, 0], valid[0, 0, 0] = 100, True
    with_data = _encode(raw, valid, codec)
    (k,) = struct.unpack_from("<I", with_data, len(with_data) - 4 - 3)  # the stand-in's stream: b"T" + one code
    assert k == 3
    no_stream = with_data[: -4 - k] + struct.pack("<I", 0)
    with pytest.raises(ContainerError, match="missing tile stream"):
        decode_block(codec, 0, no_stream, Window(0, 0, 64, 64), info, [MAPPING], TILE, "the block")


@pytest.mark.parametrize(("change", "message"), [
    (lambda p: b"\x02" + p[1:], "unknown mask flag"),
    (lambda p: p + b"\x00", "trailing bytes"),
    (lambda p: p[:-1], "shorter than its structure"),
])
def test_a_damaged_payload_is_one_container_error(change, message):
    raw = np.full((1, 64, 64), -10.0, dtype="float32")
    codec = StandIn()
    payload = _encode(raw, np.ones(raw.shape, bool), codec)
    with pytest.raises(ContainerError, match=message):
        decode_block(codec, 0, change(payload), Window(0, 0, 64, 64), _info(1, "float32", None), [MAPPING], TILE,
                     "the block")
