"""The compact header encoding of container format version 2: JSON values as tagged binary, deflated.

A JSON value (``None``, bools, ints, floats, strings, lists, dicts with string keys) is written as a tagged
binary value in two parts: a skeleton (tags, lengths, strings, dict keys sorted) and then the values (every
number exactly: an integral float as a varint, another float as float16, float32 or float64, whichever is the
shortest that holds it bit for bit; a lowercase hexadecimal string, e.g. a sha256, as its bytes). Headers of
the same kind share their skeleton, which the preset dictionary then matches in a few long runs.

The result is compressed with raw deflate and a preset dictionary built here from typical header skeletons
(keys, the common CRS WKTs, model names). ``docs/container.md`` specifies the tags. The dictionary of each
encoding id is frozen (a test pins its sha256): changing it would make old files unreadable.

Only the standard library is used, so that ``read_header`` stays fast.
"""

from __future__ import annotations

import functools
import math
import re
import struct
import zlib

__all__ = ["ENCODING", "HeaderFormatError", "encode", "decode", "dictionary"]

ENCODING = 4  # the first header byte written: raw deflate (RFC 1951), dictionary 4, of the tagged value below
# the encodings read: 1 (dictionary 1, written before the light decoder became the default), 2 (dictionary 2, while
# mbt2018-mean-light was the default), 3 (while bmshj2018-hyperprior-light was)
ENCODINGS = (1, 2, 3, 4)
MAX_DEPTH = 64  # nesting allowed on reading (lists and dicts)
MAX_INFLATED = 1 << 28  # a header inflates to at most 256 MiB

# tags (one byte each)
NULL, FALSE, TRUE, INT, FLOAT_INT, FLOAT16, FLOAT32, FLOAT64, STRING, HEX, LIST, DICT = range(12)
_HEX_RE = re.compile(r"(?:[0-9a-f]{2})+\Z")
_F16, _F32, _F64 = struct.Struct("<e"), struct.Struct("<f"), struct.Struct("<d")


class HeaderFormatError(ValueError):
    """The bytes are not a valid compact header."""


def _varint(n: int, out: bytearray) -> None:
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return


def _zigzag(n: int) -> int:
    return 2 * n if n >= 0 else -2 * n - 1


class _Writer:
    """Writes the skeleton (tags, lengths, strings, keys) and the values (numbers, hex bytes) apart."""

    def __init__(self) -> None:
        self.skeleton = bytearray()
        self.values = bytearray()

    def float(self, v: float) -> None:
        if not math.isfinite(v):
            raise ValueError(f"the container header must be strict JSON (no NaN or Infinity): {v!r}")
        if v.is_integer() and math.copysign(1.0, v) > 0 and v < 2**63:
            self.skeleton.append(FLOAT_INT)
            _varint(int(v), self.values)
            return
        bits = _F64.pack(v)
        for tag, fmt in ((FLOAT16, _F16), (FLOAT32, _F32)):
            try:
                packed = fmt.pack(v)
            except (OverflowError, struct.error):
                continue
            if _F64.pack(fmt.unpack(packed)[0]) == bits:
                self.skeleton.append(tag)
                self.values += packed
                return
        self.skeleton.append(FLOAT64)
        self.values += bits

    def text(self, s: str) -> None:
        data = s.encode("utf-8")
        _varint(len(data), self.skeleton)
        self.skeleton += data

    def value(self, v, depth: int = 0) -> None:
        if depth > MAX_DEPTH:
            raise ValueError(f"the container header nests deeper than {MAX_DEPTH} levels")
        sk = self.skeleton
        if v is None:
            sk.append(NULL)
        elif v is True or v is False:
            sk.append(TRUE if v else FALSE)
        elif isinstance(v, int):
            sk.append(INT)
            _varint(_zigzag(int(v)), self.values)
        elif isinstance(v, float):
            self.float(float(v))
        elif isinstance(v, str):
            if _HEX_RE.match(v):
                raw = bytes.fromhex(v)
                sk.append(HEX)
                _varint(len(raw), sk)
                self.values += raw
            else:
                sk.append(STRING)
                self.text(v)
        elif isinstance(v, (list, tuple)):
            sk.append(LIST)
            _varint(len(v), sk)
            for item in v:
                self.value(item, depth + 1)
        elif isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                raise TypeError("the container header's dict keys must be strings")
            sk.append(DICT)
            _varint(len(v), sk)
            for k in sorted(v):
                self.text(k)
                self.value(v[k], depth + 1)
        else:
            raise TypeError(f"the container header cannot hold a {type(v).__name__}")


def _split(value) -> _Writer:
    w = _Writer()
    w.value(value)
    return w


def tagged(value) -> bytes:
    """The tagged binary form of a JSON value (before deflate): skeleton length, skeleton, values."""
    w = _split(value)
    out = bytearray()
    _varint(len(w.skeleton), out)
    return bytes(out + w.skeleton + w.values)


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None):
        self.data, self.pos, self.end = data, pos, len(data) if end is None else end

    def take(self, n: int) -> bytes:
        if n > self.end - self.pos:
            raise HeaderFormatError("it ends early")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def varint(self) -> int:
        n, shift = 0, 0
        while True:
            (b,) = self.take(1)
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7
            if shift > 70:
                raise HeaderFormatError("a number is too long")

    def text(self) -> str:
        try:
            return self.take(self.varint()).decode("utf-8")
        except UnicodeDecodeError:
            raise HeaderFormatError("a string is not UTF-8") from None


class _Parser:
    """Reads the skeleton and takes each number from the values that follow it."""

    def __init__(self, sk: _Reader, vals: _Reader):
        self.sk, self.vals = sk, vals

    def value(self, depth: int = 0):
        if depth > MAX_DEPTH:
            raise HeaderFormatError(f"it nests deeper than {MAX_DEPTH} levels")
        sk, vals = self.sk, self.vals
        (tag,) = sk.take(1)
        if tag == NULL:
            return None
        if tag in (FALSE, TRUE):
            return tag == TRUE
        if tag == INT:
            z = vals.varint()
            return z >> 1 if not z & 1 else -((z + 1) >> 1)
        if tag == FLOAT_INT:
            return float(vals.varint())
        if tag in (FLOAT16, FLOAT32, FLOAT64):
            fmt = {FLOAT16: _F16, FLOAT32: _F32, FLOAT64: _F64}[tag]
            v = fmt.unpack(vals.take(fmt.size))[0]
            if not math.isfinite(v):
                raise HeaderFormatError("it holds a NaN or infinite number")
            return v
        if tag == STRING:
            return sk.text()
        if tag == HEX:
            return vals.take(sk.varint()).hex()
        if tag in (LIST, DICT):
            n = sk.varint()
            if n > sk.end - sk.pos:
                raise HeaderFormatError("a list or dict is longer than the header")
            if tag == LIST:
                return [self.value(depth + 1) for _ in range(n)]
            out = {}
            for _ in range(n):
                k = sk.text()
                out[k] = self.value(depth + 1)
            return out
        raise HeaderFormatError(f"unknown tag {tag}")


def untagged(data: bytes):
    """Inverse of :func:`tagged`; raises HeaderFormatError on malformed bytes."""
    head = _Reader(data)
    n = head.varint()
    if n > len(data) - head.pos:
        raise HeaderFormatError("its skeleton is longer than the header")
    sk, vals = _Reader(data, head.pos, head.pos + n), _Reader(data, head.pos + n)
    v = _Parser(sk, vals).value()
    if sk.pos != sk.end or vals.pos != vals.end:
        raise HeaderFormatError("it has trailing bytes")
    return v


# --- the preset dictionary (encoding 1): frozen, pinned by a test ---------------------------------

_WGS84 = ('GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],'
          'AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",'
          '0.0174532925199433,AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],AXIS["Longitude",EAST],'
          'AUTHORITY["EPSG","4326"]]')
_UTM = ('PROJCS["WGS 84 / UTM zone 33N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,'
        '298.257223563,AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG",'
        '"8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],AUTHORITY["EPSG","4326"]],'
        'PROJECTION["Transverse_Mercator"],PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",15],'
        'PARAMETER["scale_factor",0.9996],PARAMETER["false_easting",500000],PARAMETER["false_northing",0],'
        'UNIT["metre",1,AUTHORITY["EPSG","9001"]],AXIS["Easting",EAST],AXIS["Northing",NORTH],'
        'AUTHORITY["EPSG","32633"]]')
# numbers of the kinds real headers hold (knots on float32 grids, float64 pixel sizes), so that the tags match
_KNOTS = {"knots_db": [-48.818359375, -45.5947265625, -4.5146484375, -3.6025390625],
          "knots_norm": [0.0, 0.019136428833007812, 0.9945850372314453, 1.0]}
_TRANSFORM = [8.983152841195213e-05, 0.0, 12.345678912, 0.0, -8.983152841195213e-05, 45.678912345]
_SAMPLES = (  # encoding 1: never change these (old files would not read); add an encoding instead
    {"files": [{"block": 1, "path": "annotation/s1a-iw-grd-vv.xml", "sha256": "00", "size": 1}],
     "overviews": [{"block_count": 1, "first_block": 1, "height": 1, "level": 1, "width": 1}],
     "max_error_db": 0.5},
    {"model": {"architecture": "bmshj2018-factorized", "weights": "bmshj2018-factorized.pt"}},
    {"model": {"architecture": "mbt2018", "weights": "mbt2018.pt"}},
    {"model": {"architecture": "mbt2018-mean", "weights": "mbt2018-mean.pt"}},
    {"scene": {"band_names": ["HH", "HV"], "dtype": "float32", "units": "power",
               "georef": {"crs": _UTM.replace("33N", "31N").replace("15]", "3]").replace("32633", "32631"),
                          "gcp_crs": None, "gcps": None, "transform": [20.0, 0.0, 1.0, 0.0, -20.0, 1.0]},
               "tags": {"AREA_OR_POINT": "Point"}}},
    {"format": "sar-codec", "software": "sar-codec 0.1.0", "block_size": 512, "tile_size": 64,
     "mappings": [_KNOTS],
     "model": {"architecture": "bmshj2018-hyperprior", "arithmetic": 2, "quality": 1,
               "sha256": "0" * 64, "weights": "bmshj2018-hyperprior.pt"},
     "scene": {"band_descriptions": [None], "band_names": ["VV"], "band_tags": [{}], "count": 1,
               "dtype": "uint16", "georef": {"crs": None, "gcp_crs": _WGS84,
                                              "gcps": [[1.0, 1.0, 1.5, 1.5, 1.5, "1", ""]], "transform": None},
               "height": 64, "nodata": 0.0, "tags": {}, "units": "amplitude", "width": 64}},
    {"format": "sar-codec", "software": "sar-codec 0.1.0", "block_size": 512, "tile_size": 64,
     "mappings": [_KNOTS, _KNOTS],
     "model": {"architecture": "bmshj2018-hyperprior", "arithmetic": 2, "quality": 1,
               "sha256": "0" * 64, "weights": "bmshj2018-hyperprior.pt"},
     "scene": {"band_descriptions": ["VV", "VH"], "band_names": ["VV", "VH"], "band_tags": [{}, {}],
               "count": 2, "dtype": "float32", "georef": {"crs": _WGS84, "gcp_crs": None, "gcps": None,
                                                           "transform": _TRANSFORM},
               "height": 64, "nodata": "nan", "tags": {"AREA_OR_POINT": "Area"}, "units": "db", "width": 64}},
)



def _default_model(sample: dict, architecture: str) -> dict:
    if "model" not in sample or "arithmetic" not in sample["model"]:
        return sample
    return {**sample, "model": {**sample["model"], "architecture": architecture, "weights": f"{architecture}.pt"}}


# encoding 2: encoding 1's samples with the default model of this release (mbt2018-mean-light) in the two typical
# headers, and bmshj2018-hyperprior among the other names; frozen like encoding 1's
_SAMPLES_2 = ({"model": {"architecture": "bmshj2018-hyperprior", "weights": "bmshj2018-hyperprior.pt"}},
              *(_default_model(s, "mbt2018-mean-light") for s in _SAMPLES))


# encoding 3: the same with this release's default (bmshj2018-hyperprior-light) in the two typical headers, and
# mbt2018-mean-light among the other names; frozen like the others
_SAMPLES_3 = ({"model": {"architecture": "mbt2018-mean-light", "weights": "mbt2018-mean-light.pt"}},
              *(_default_model(s, "bmshj2018-hyperprior-light") for s in _SAMPLES_2))


# encoding 4: the same with this release's default (bmshj2018-hyperprior-fast) in the two typical headers, and
# bmshj2018-hyperprior-light among the other names; frozen like the others
_SAMPLES_4 = ({"model": {"architecture": "bmshj2018-hyperprior-light", "weights": "bmshj2018-hyperprior-light.pt"}},
              *(_default_model(s, "bmshj2018-hyperprior-fast") for s in _SAMPLES_3))


@functools.lru_cache(maxsize=4)
def dictionary(encoding: int = ENCODING) -> bytes:
    """The preset deflate dictionary of an encoding: skeletons of typical headers, the commonest last."""
    samples = {1: _SAMPLES, 2: _SAMPLES_2, 3: _SAMPLES_3, 4: _SAMPLES_4}[encoding]
    return b"".join(bytes(_split(s).skeleton) for s in samples)


def encode(value: dict) -> bytes:
    """A header dict -> its compact form: the encoding byte, then raw deflate of the tagged value."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, dictionary(ENCODING))
    return bytes([ENCODING]) + c.compress(tagged(value)) + c.flush()


def decode(data: bytes):
    """Inverse of :func:`encode`; raises HeaderFormatError when the bytes are not a compact header."""
    if not data or data[0] not in ENCODINGS:
        raise HeaderFormatError(f"it uses header encoding {data[0] if data else None}, not one of "
                                f"{', '.join(map(str, ENCODINGS))}")
    d = zlib.decompressobj(-15, dictionary(data[0]))
    try:
        raw = d.decompress(data[1:], MAX_INFLATED)
    except zlib.error:
        raise HeaderFormatError("its deflate stream is invalid") from None
    if not d.eof or d.unconsumed_tail or d.unused_data:
        raise HeaderFormatError("its deflate stream is incomplete, too large or followed by other bytes")
    return untagged(raw)
