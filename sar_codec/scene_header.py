"""The scene header of a .sarc container: its schema, built (:meth:`SceneHeader.to_json`) and checked
(:func:`parse_scene_header`) in one place.

``docs/container.md`` ("The scene header", and the ``max_error_db`` and ``overviews`` keys of "The guaranteed-error
layer" and "Overviews") documents the keys. A header passes its CRC even when someone edited it and recomputed the
CRC, so :func:`parse_scene_header` checks every key's type and value before anything is decoded: a bad header is
one ContainerError sentence, never a KeyError or a GeoTIFF without its georeferencing. Keys it does not know (a
SAFE product's ``files`` and ``safe``, :mod:`sar_codec.safe`) are left to their own readers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping as AnyMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import ContainerError
from .models import ARITHMETIC_VERSION
from .overviews import Level, levels_from_header, overview_block_count
from .radiometry import UNITS, Mapping
from .scene_info import SUPPORTED_DTYPES, SceneInfo
from .tiling import BlockGrid

if TYPE_CHECKING:
    from .registry import ModelEntry

FORMAT_NAME = "sar-codec"
MAX_SIDE = 2**31 - 1
MAX_BANDS = 2
GEOREF_KEYS = ("crs", "transform", "gcps", "gcp_crs")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class _Invalid(Exception):
    """One reason a header is not valid (becomes the ContainerError's sentence)."""


@dataclass(frozen=True)
class SceneHeader:
    """What a scene container's header says, checked: the scene, its mappings, its block grid, its model, and
    the guaranteed-error bound and overview levels when it has them."""

    info: SceneInfo
    mappings: list[Mapping]
    grid: BlockGrid
    model: dict  # architecture, quality, weights, sha256, arithmetic
    max_error_db: float | None = None  # set: level-0 blocks carry the guaranteed-error layer (sar_codec.residual)
    overviews: tuple[Level, ...] = ()  # the reduced-resolution levels 1, 2, ... (sar_codec.overviews)

    @property
    def block_count(self) -> int:
        """Block slots of the scene and its pyramid (a SAFE product's stored files come after them)."""
        return self.grid.count + overview_block_count(list(self.overviews))

    def to_json(self) -> dict:
        """The header as written (``parse_scene_header`` gives back an equal SceneHeader)."""
        header = {
            "format": FORMAT_NAME,
            "software": f"sar-codec {__version__}",
            "scene": self.info.to_json(),
            "mappings": [m.to_json() for m in self.mappings],
            "model": dict(self.model),
            "tile_size": self.grid.tile_size,
            "block_size": self.grid.block_size,
        }
        if self.max_error_db is not None:
            header["max_error_db"] = self.max_error_db
        if self.overviews:
            header["overviews"] = [lv.to_json() for lv in self.overviews]
        return header


def model_record(entry: ModelEntry) -> dict:
    """The header's ``model`` for a row of the model table, with the fixed-point arithmetic version of this
    sar-codec."""
    return {"architecture": entry.architecture, "quality": entry.quality, "weights": entry.weights,
            "sha256": entry.sha256, "arithmetic": ARITHMETIC_VERSION}


def parse_scene_header(header: AnyMapping[str, Any], name: str) -> SceneHeader:
    """Check a container's header against the scene-header schema; raise ContainerError with one sentence."""
    if header.get("format") != FORMAT_NAME:
        raise ContainerError(f"{name} is not a sar-codec scene container.")
    try:
        info = _scene(_get(header, "scene", dict))
        mappings = [_mapping(m) for m in _get(header, "mappings", list)]
        if len(mappings) != info.count:
            raise _Invalid(f"it has {len(mappings)} radiometric mappings for {info.count} band(s)")
        tile = _get(header, "tile_size", int)
        block = _get(header, "block_size", int)
        if tile <= 0 or tile % 64 or block < tile or block % tile:
            raise _Invalid(f"its tile size {tile} and block size {block} are not positive multiples of 64 and of "
                           "the tile size")
        model = _model(_get(header, "model", dict))
        grid = BlockGrid(info.height, info.width, block, tile)
        max_error_db = _bound(header)
        levels = _overviews(header, grid)
    except _Invalid as exc:
        raise ContainerError(f"{name} has an invalid header ({exc}); it was edited or damaged.") from None
    return SceneHeader(info, mappings, grid, model, max_error_db, levels)


def _get(d: AnyMapping[str, Any], key: str, kind: type, where: str = "") -> Any:
    if key not in d:
        raise _Invalid(f"{where}{key} is missing")
    value = d[key]
    if not _is(value, kind):
        raise _Invalid(f"{where}{key} is not a{'n' if kind is int else ''} {_KIND_NAMES[kind]}")
    return value


_KIND_NAMES = {int: "integer", float: "number", str: "string", list: "list", dict: "JSON object"}


def _is(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, kind)


def _strings(values: Any, count: int, what: str, optional: bool = False) -> list:
    ok = isinstance(values, list) and len(values) == count and all(
        isinstance(v, str) or (optional and v is None) for v in values)
    if not ok:
        raise _Invalid(f"scene {what} is not a list of {count} string(s)")
    return values


def _tags(value: Any, what: str) -> dict:
    if not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
        raise _Invalid(f"scene {what} are not text tags")
    return value


def _scene(s: dict) -> SceneInfo:
    w = "scene "
    width, height, count = _get(s, "width", int, w), _get(s, "height", int, w), _get(s, "count", int, w)
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE and 0 < count <= MAX_BANDS):
        raise _Invalid(f"a scene of {width}x{height} pixels and {count} band(s) cannot be")
    dtype = _get(s, "dtype", str, w)
    if dtype not in SUPPORTED_DTYPES:
        raise _Invalid(f"scene dtype {dtype!r} is not one of {', '.join(SUPPORTED_DTYPES)}")
    if "nodata" not in s:
        raise _Invalid("scene nodata is missing")
    nodata = s["nodata"]
    if not (nodata is None or _is(nodata, float) or nodata in ("nan", "inf", "-inf")):
        raise _Invalid(f"scene nodata {nodata!r} is neither a number, 'nan', 'inf', '-inf' nor null")
    names = _strings(s.get("band_names"), count, "band_names")
    if len(set(names)) != count or not all(names):
        raise _Invalid("scene band_names are empty or repeated")
    units = _get(s, "units", str, w)
    if units not in UNITS:
        raise _Invalid(f"scene units {units!r} are not one of {', '.join(UNITS)}")
    georef = _georef(_get(s, "georef", dict, w))
    band_tags = s.get("band_tags")
    if not (isinstance(band_tags, list) and len(band_tags) == count):
        raise _Invalid(f"scene band_tags is not a list of {count} tag set(s)")
    return SceneInfo.from_json({
        **s, "georef": georef, "tags": _tags(s.get("tags"), "tags"),
        "band_tags": [_tags(t, "band_tags") for t in band_tags],
        "band_descriptions": _strings(s.get("band_descriptions"), count, "band_descriptions", optional=True),
    })


def _georef(g: dict) -> dict:
    if sorted(g) != sorted(GEOREF_KEYS):
        raise _Invalid(f"scene georef does not hold exactly {', '.join(GEOREF_KEYS)}")
    for key in ("crs", "gcp_crs"):
        if g[key] is not None:
            _crs(g[key], key)
    t = g["transform"]
    if t is not None and not (isinstance(t, list) and len(t) == 6 and all(_is(v, float) for v in t)
                              and t[0] * t[4] - t[1] * t[3] != 0):
        raise _Invalid("scene transform is not six finite numbers of an invertible affine transform")
    gcps = g["gcps"]
    if gcps is not None:
        if not (isinstance(gcps, list) and gcps and all(_gcp(p) for p in gcps)):
            raise _Invalid("scene gcps are not a list of [row, col, x, y, z, id, info] points")
    return g


def _gcp(p: Any) -> bool:
    return (isinstance(p, list) and len(p) == 7 and all(_is(v, float) for v in p[:4])
            and (p[4] is None or _is(p[4], float)) and all(v is None or isinstance(v, str) for v in p[5:]))


def _crs(wkt: Any, key: str) -> None:
    import rasterio
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        if isinstance(wkt, str):
            with rasterio.Env():  # GDAL's complaint becomes the CRSError, not a line on stderr
                CRS.from_wkt(wkt)
            return
    except CRSError:
        pass
    raise _Invalid(f"scene {key} is not a coordinate reference system in WKT")


def _mapping(m: Any) -> Mapping:
    if not isinstance(m, dict):
        raise _Invalid("a radiometric mapping is not a JSON object")
    knots = [m.get("knots_db"), m.get("knots_norm")]
    if not all(isinstance(k, list) and all(_is(v, float) for v in k) for k in knots):
        raise _Invalid("a radiometric mapping's knots are not lists of finite numbers")
    try:
        return Mapping.from_json(m)
    except ValueError as exc:
        raise _Invalid(str(exc)) from None


def _bound(header: AnyMapping[str, Any]) -> float | None:
    if "max_error_db" not in header:
        return None
    value = header["max_error_db"]
    if not (_is(value, float) and value > 0):
        raise _Invalid(f"max_error_db {value!r} is not a positive number of dB")
    return float(value)


_LEVEL_KEYS = ("level", "width", "height", "first_block", "block_count")


def _overviews(header: AnyMapping[str, Any], grid: BlockGrid) -> tuple[Level, ...]:
    if "overviews" not in header:
        return ()
    levels = _get(header, "overviews", list)
    if not all(isinstance(lv, dict) and all(_is(lv.get(k), int) for k in _LEVEL_KEYS) for lv in levels):
        raise _Invalid("overviews is not a list of levels of whole numbers "
                       f"({', '.join(_LEVEL_KEYS)})")
    try:
        return tuple(levels_from_header(header, grid.count, grid.block_size, grid.tile_size))
    except ValueError as exc:
        raise _Invalid(str(exc)) from None


def _model(m: dict) -> dict:
    w = "model "
    _get(m, "architecture", str, w)
    _get(m, "weights", str, w)
    if _get(m, "quality", int, w) < 1:
        raise _Invalid(f"model quality {m['quality']} is not positive")
    if not _SHA256.fullmatch(_get(m, "sha256", str, w)):
        raise _Invalid("model sha256 is not 64 hexadecimal digits")
    if "arithmetic" in m and not _is(m["arithmetic"], int):
        raise _Invalid("model arithmetic is not an integer")
    return m
