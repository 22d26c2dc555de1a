"""What is known about a scene besides its pixels: :class:`SceneInfo` (size, dtype, units, georeferencing, tags)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .georef import copy_georef, shift_georef
from .radiometry import Units

SUPPORTED_DTYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64")
POL_ORDER = ("VV", "VH", "HH", "HV")  # co-pol before cross-pol
POL_RE = re.compile(r"(?<![a-z0-9])(vv|vh|hh|hv)(?![a-z0-9])", re.IGNORECASE)  # a polarisation in a name


def _encode_float(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return str(value)  # "nan", "inf", "-inf": JSON has no literal for them


def _decode_float(value: float | str | None) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class SceneInfo:
    """What is known about a scene besides its pixels: size, dtype, units and georeferencing.

    ``georef`` is JSON-serialisable and holds exactly what the source holds:
    ``{"crs": wkt | None, "transform": [a, b, c, d, e, f] | None,
    "gcps": [[row, col, x, y, z, id, info], ...] | None, "gcp_crs": wkt | None}``.
    """

    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    band_names: tuple[str, ...]
    units: Units
    georef: dict = field(hash=False)
    tags: dict = field(hash=False)
    band_tags: tuple[dict, ...] = field(hash=False)
    band_descriptions: tuple[str | None, ...]

    def __post_init__(self) -> None:
        # One NaN object, so that two infos with NaN nodata compare equal.
        if self.nodata is not None and math.isnan(self.nodata):
            object.__setattr__(self, "nodata", math.nan)
        for name in ("band_names", "band_tags", "band_descriptions"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def to_json(self) -> dict:
        """Plain dict for ``json.dumps``; :meth:`from_json` restores an equal SceneInfo."""
        return {
            "width": self.width,
            "height": self.height,
            "count": self.count,
            "dtype": self.dtype,
            "nodata": _encode_float(self.nodata),
            "band_names": list(self.band_names),
            "units": self.units,
            "georef": copy_georef(self.georef),
            "tags": dict(self.tags),
            "band_tags": [dict(t) for t in self.band_tags],
            "band_descriptions": list(self.band_descriptions),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SceneInfo:
        """Inverse of :meth:`to_json`."""
        return cls(
            width=int(d["width"]),
            height=int(d["height"]),
            count=int(d["count"]),
            dtype=str(d["dtype"]),
            nodata=_decode_float(d["nodata"]),
            band_names=tuple(d["band_names"]),
            units=d["units"],
            georef=copy_georef(d["georef"]),
            tags=dict(d["tags"]),
            band_tags=tuple(dict(t) for t in d["band_tags"]),
            band_descriptions=tuple(d["band_descriptions"]),
        )

    def for_window(self, row_off: int, col_off: int, height: int, width: int) -> SceneInfo:
        """Info of a window of this scene: transform shifted, GCP rows/cols shifted (all kept)."""
        row_off, col_off, height, width = int(row_off), int(col_off), int(height), int(width)
        check_window(self, row_off, col_off, height, width)
        return replace(self, width=width, height=height, georef=shift_georef(self.georef, row_off, col_off))


def check_window(info: SceneInfo, row_off: int, col_off: int, height: int, width: int) -> None:
    """Raise ValueError unless the window ``(row_off, col_off, height, width)`` lies inside the scene."""
    if not (0 <= row_off and 0 <= col_off and 0 < height and 0 < width
            and row_off + height <= info.height and col_off + width <= info.width):
        window = (row_off, col_off, height, width)
        raise ValueError(f"window (row_off, col_off, height, width) = {window} is not inside the "
                         f"{info.height}x{info.width} scene")
