"""Georeferencing maths: a scene's georeferencing as JSON (CRS, affine transform, GCPs), shifted to a window,
compared between files, and a bounding box in map coordinates turned into a pixel window."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.transform import GCPTransformer

from .errors import InputError

if TYPE_CHECKING:
    from .scene_info import SceneInfo


def _copy_json(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_copy_json(v) for v in value]
    return value


def copy_georef(georef: dict) -> dict:
    """A deep copy of a georeferencing dict, with tuples as lists (as JSON gives them back)."""
    return {k: _copy_json(v) for k, v in georef.items()}


def read_georef(ds: Any) -> dict:
    """What an open rasterio dataset holds as georeferencing: ``{"crs", "transform", "gcps", "gcp_crs"}``, each
    None where the file has none (an identity transform beside GCPs or without a CRS is no transform)."""
    gcps, gcp_crs = ds.gcps
    transform = ds.transform
    has_transform = not (transform.is_identity and (ds.crs is None or gcps))
    return {
        "crs": ds.crs.to_wkt() if ds.crs else None,
        "transform": list(transform)[:6] if has_transform else None,
        "gcps": [[g.row, g.col, g.x, g.y, g.z, g.id, g.info] for g in gcps] if gcps else None,
        "gcp_crs": gcp_crs.to_wkt() if (gcps and gcp_crs) else None,
    }


def shift_georef(georef: dict, row_off: int, col_off: int) -> dict:
    """The georeferencing of a window starting at ``(row_off, col_off)``: transform shifted, GCP rows/cols
    shifted (all kept)."""
    georef = copy_georef(georef)
    if georef.get("transform") is not None:
        shifted = Affine(*georef["transform"]) * Affine.translation(col_off, row_off)
        georef["transform"] = list(shifted)[:6]
    if georef.get("gcps") is not None:
        georef["gcps"] = [[r - row_off, c - col_off, *rest] for r, c, *rest in georef["gcps"]]
    return georef


def gcp_array(gcps: Sequence[GroundControlPoint]) -> np.ndarray:
    """GCPs as an ``(n, 5)`` float array of row, col, x, y, z (z 0 where missing)."""
    return np.array([[g.row, g.col, g.x, g.y, g.z or 0.0] for g in gcps], dtype=float).reshape(-1, 5)


def same_georef(first: Any, other: Any) -> bool:
    """Whether two open rasterio datasets have the same CRS, transform and GCPs (to rounding)."""
    ga, gb = first.gcps, other.gcps
    return bool(first.crs == other.crs
                and np.allclose(tuple(first.transform), tuple(other.transform), rtol=1e-12, atol=1e-9)
                and len(ga[0]) == len(gb[0]) and ga[1] == gb[1]
                and np.allclose(gcp_array(ga[0]), gcp_array(gb[0]), rtol=1e-12, atol=1e-9))


def window_from_bbox(info: SceneInfo,
                     bbox: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """Pixel window ``(row_off, col_off, height, width)`` covering ``(minx, miny, maxx, maxy)``
    in the scene CRS (the GCP CRS for GCP scenes), clipped to the scene."""
    minx, miny, maxx, maxy = (float(v) for v in bbox)
    if not (minx < maxx and miny < maxy):
        raise InputError(f"Bounding box {tuple(bbox)} is empty; give it as minx miny maxx maxy.")
    # Sample the bbox outline: with GCPs (or rotation) its image is not a rectangle.
    t = np.linspace(0.0, 1.0, 33)
    xs = np.concatenate([minx + (maxx - minx) * t, np.full_like(t, maxx),
                         maxx - (maxx - minx) * t, np.full_like(t, minx)])
    ys = np.concatenate([np.full_like(t, miny), miny + (maxy - miny) * t,
                         np.full_like(t, maxy), maxy - (maxy - miny) * t])
    georef = info.georef
    if georef.get("transform") is not None:
        cols, rows = ~Affine(*georef["transform"]) * (xs, ys)
    elif georef.get("gcps"):
        gcps = [GroundControlPoint(row=r, col=c, x=x, y=y, z=z) for r, c, x, y, z, *_ in georef["gcps"]]
        with GCPTransformer(gcps) as transformer:
            rows, cols = transformer.rowcol(xs, ys, op=float)
    else:
        raise InputError("The scene has no georeferencing, so a bounding box cannot be used; "
                         "give a pixel window instead.")
    rows, cols = np.asarray(rows, dtype=float), np.asarray(cols, dtype=float)
    ok = np.isfinite(rows) & np.isfinite(cols)
    rows, cols = rows[ok], cols[ok]
    if rows.size:
        row0, col0 = max(0, math.floor(rows.min())), max(0, math.floor(cols.min()))
        row1, col1 = min(info.height, math.ceil(rows.max())), min(info.width, math.ceil(cols.max()))
    if not rows.size or row1 <= row0 or col1 <= col0:
        raise InputError(f"Bounding box {tuple(bbox)} does not intersect the scene; give "
                         "coordinates in the scene's CRS that overlap it.")
    return row0, col0, row1 - row0, col1 - col0
