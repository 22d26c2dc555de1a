"""Open a Sentinel-1 scene (GRD GeoTIFF, SAFE, calibrated sigma0/gamma0) as one windowed reader.

This is the only module that reads scenes (``training_data`` reads training images, ``raster_out`` writes
decoded scenes); everything downstream takes arrays and a :class:`SceneInfo`. Bad inputs raise
:class:`~sar_codec.errors.InputError` with one sentence.
"""

from __future__ import annotations

import math
import os
import re
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio import windows  # rasterio's Window (col_off, row_off...); sar_codec's is tiling.Window
from rasterio.control import GroundControlPoint
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import GCPTransformer

from sar_codec.errors import InputError
from sar_codec.files import same_file
from sar_codec.radiometry import Units, check_units

SUPPORTED_DTYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64")
POL_ORDER = ("VV", "VH", "HH", "HV")  # co-pol before cross-pol
SAMPLE_SIZE = 1024  # longest side of the decimated read used for checks and units detection

_POL_RE = re.compile(r"(?<![a-z0-9])(vv|vh|hh|hv)(?![a-z0-9])", re.IGNORECASE)
_MEASUREMENT_RE = re.compile(r"(^|/)measurement/[^/]+\.tiff?$", re.IGNORECASE)
_DB_RE = re.compile(r"(?<![a-z0-9])(db|decibels?)(?![a-z0-9])", re.IGNORECASE)


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
            "georef": {k: _copy_json(v) for k, v in self.georef.items()},
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
            georef={k: _copy_json(v) for k, v in d["georef"].items()},
            tags=dict(d["tags"]),
            band_tags=tuple(dict(t) for t in d["band_tags"]),
            band_descriptions=tuple(d["band_descriptions"]),
        )

    def for_window(self, row_off: int, col_off: int, height: int, width: int) -> SceneInfo:
        """Info of a window of this scene: transform shifted, GCP rows/cols shifted (all kept)."""
        row_off, col_off, height, width = int(row_off), int(col_off), int(height), int(width)
        _check_window(self, row_off, col_off, height, width)
        georef = {k: _copy_json(v) for k, v in self.georef.items()}
        if georef.get("transform") is not None:
            shifted = Affine(*georef["transform"]) * Affine.translation(col_off, row_off)
            georef["transform"] = list(shifted)[:6]
        if georef.get("gcps") is not None:
            georef["gcps"] = [[r - row_off, c - col_off, *rest] for r, c, *rest in georef["gcps"]]
        return replace(self, width=width, height=height, georef=georef)


def _check_window(info: SceneInfo, row_off: int, col_off: int, height: int, width: int) -> None:
    if not (0 <= row_off and 0 <= col_off and 0 < height and 0 < width
            and row_off + height <= info.height and col_off + width <= info.width):
        window = (row_off, col_off, height, width)
        raise ValueError(f"window (row_off, col_off, height, width) = {window} is not inside the "
                         f"{info.height}x{info.width} scene")


def _copy_json(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_copy_json(v) for v in value]
    return value


def valid_mask(array: np.ndarray, nodata: float | None, *, zero_is_nodata: bool) -> np.ndarray:
    """True where a sample holds data: finite, not the nodata value, not 0 if ``zero_is_nodata``."""
    mask = np.ones(array.shape, dtype=bool)
    if array.dtype.kind == "f":
        mask &= np.isfinite(array)
        if nodata is not None and not math.isnan(nodata):
            mask &= array != array.dtype.type(nodata)
    elif nodata is not None and math.isfinite(nodata):
        mask &= array != nodata
    if zero_is_nodata:
        mask &= array != 0
    return mask


class Scene:
    """An open scene of one or two polarisations; read it by windows. Use as a context manager."""

    def __init__(self, info: SceneInfo, bands: Sequence[tuple[Any, int]], paths: Sequence[str]):
        self.info = info
        self.paths = tuple(paths)  # what GDAL opened, in band order of first appearance
        self._bands = list(bands)  # (rasterio dataset, 1-based band index) per output band
        self._datasets = list({id(ds): ds for ds, _ in self._bands}.values())

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying files."""
        for ds in self._datasets:
            ds.close()

    def read(self, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        """Samples of a window inside the scene: (count, height, width), source dtype, as stored."""
        _check_window(self.info, row_off, col_off, height, width)
        window = windows.Window(col_off, row_off, width, height)
        out = np.empty((self.info.count, height, width), dtype=self.info.dtype)
        try:
            if len(self._datasets) == 1:
                self._datasets[0].read([b for _, b in self._bands], window=window, out=out)
            else:
                for i, (ds, b) in enumerate(self._bands):
                    ds.read(b, window=window, out=out[i])
        except RasterioError as exc:
            raise InputError(f"Could not read {' + '.join(self.paths)}: the file may be "
                             "truncated or corrupted.") from exc
        return out

    def valid_mask(self, array: np.ndarray) -> np.ndarray:
        """False where a sample is nodata: the nodata value, NaN/inf, 0 in uint16 amplitude (GRD)."""
        return valid_mask(array, self.info.nodata, zero_is_nodata=_zero_is_nodata(self.info))


def _zero_is_nodata(info: SceneInfo) -> bool:
    return info.units == "amplitude" and info.dtype == "uint16"


def detect_units(dtype: str | np.dtype, tags: Mapping[str, str], sample: np.ndarray) -> Units:
    """Guess the units: integers are amplitude; floats are dB when a tag, description or file
    name (the values of ``tags``) says dB or when most valid values of ``sample`` are negative,
    else linear power."""
    kind = np.dtype(dtype).kind
    if kind in "iu":
        return "amplitude"
    if kind != "f":
        raise InputError(f"Data type {np.dtype(dtype).name} is not supported; convert the scene to "
                         "uint16 amplitude or float32 sigma0/gamma0 first.")
    if any(_DB_RE.search(str(v)) for v in tags.values()):
        return "db"
    values = np.asarray(sample).ravel()
    values = values[np.isfinite(values)]
    if values.size and np.count_nonzero(values < 0) * 2 > values.size:
        return "db"
    return "power"


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


# --- opening -------------------------------------------------------------------------------


def open_scene(inputs: str | Path | Sequence[str | Path], *, units: Units | None = None,
               pols: Sequence[str] | None = None) -> Scene:
    """Open a scene from one raster, two single-band rasters, or a SAFE product (directory or .zip).

    Parameters
    ----------
    inputs
        A GDAL raster of 1 or 2 bands, two single-band rasters of the same grid, or a SAFE
        product (its directory, its ``manifest.safe`` or its ``.zip``).
    units
        Force the units instead of detecting them.
    pols
        Polarisations (band names) to keep, e.g. ``["VV"]``; default all.
    """
    if units is not None:
        check_units(units)
    paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if not 1 <= len(paths) <= 2:
        raise InputError(f"Got {len(paths)} input files; give one raster, two single-band "
                         "rasters (e.g. VV and VH) or one SAFE product.")
    is_safe = len(paths) == 1 and _is_safe(paths[0])
    if is_safe:
        sources: list[tuple[str, str | None]] = list(_expand_safe(paths[0]))
    else:
        for p in paths:
            if _is_safe(p):
                raise InputError(f"{p} is a SAFE product or a directory; give a SAFE product "
                                 "alone, or two raster files.")
        sources = [(str(p), None) for p in paths]
        if len(paths) == 2 and same_file(paths[0], paths[1]):
            raise InputError(f"{paths[0]} was given twice; give two different polarisations (e.g. VV and VH).")
    opened: list[Any] = []
    try:
        for gdal_path, _ in sources:
            opened.append(_open_dataset(gdal_path))
        label = " + ".join(Path(p).name for p in paths)
        if label.lower() == "manifest.safe":
            label = Path(paths[0]).parent.name
        return _build_scene(opened, sources, units, pols, is_safe=is_safe, label=label)
    except BaseException:
        for ds in opened:
            ds.close()
        raise


def is_safe_dir(path: str | Path) -> bool:
    """Whether a directory is a SAFE product: named ``*.SAFE`` or holding a ``manifest.safe``."""
    p = Path(path)
    return p.name.lower().endswith(".safe") or (p / "manifest.safe").is_file()


def _is_safe(path: str | Path) -> bool:
    """Whether an input names a SAFE product: its ``manifest.safe``, a directory or a ``.zip``."""
    p = Path(path)
    if p.name.lower() == "manifest.safe":
        return True
    if p.is_dir():
        return True  # a directory can only be a SAFE product; _expand_safe says if it is not
    return p.suffix.lower() == ".zip"


def _expand_safe(path: str | Path) -> list[tuple[str, str]]:
    """GDAL paths and polarisations of a SAFE product's measurement files, VV before VH."""
    p = Path(path)
    if p.name.lower() == "manifest.safe":
        p = p.parent
    if not p.exists():
        raise InputError(f"{p} does not exist; check the path.")
    if p.is_dir():
        members = [str(f) for f in sorted((p / "measurement").glob("*.tif*"))]
    else:
        try:
            with zipfile.ZipFile(p) as zf:
                names = sorted(n for n in zf.namelist() if _MEASUREMENT_RE.search(n))
        except (zipfile.BadZipFile, OSError) as exc:
            raise InputError(f"{p} is not a readable zip file; give a SAFE .zip or its "
                             "unzipped directory.") from exc
        members = [f"/vsizip/{p.resolve()}/{n}" for n in names]
    if not members:
        raise InputError(f"{p} has no measurement/*.tiff files; give a Sentinel-1 SAFE product "
                         "(GRD) or a raster file.")
    sources: list[tuple[str, str]] = []
    for m in members:
        match = _POL_RE.search(Path(m).name)
        if match is None:
            raise InputError(f"Cannot tell the polarisation of {Path(m).name} from its name; give "
                             "the measurement files directly instead.")
        sources.append((m, match.group(1).upper()))
    sources.sort(key=lambda s: POL_ORDER.index(s[1]))
    pols = [pol for _, pol in sources]
    if len(set(pols)) != len(pols):
        raise InputError(f"{p} has several measurement files per polarisation (an SLC product?); "
                         "only GRD products are supported.")
    return sources


GDAL_CACHE_MB = 128


def bounded_gdal_cache() -> rasterio.Env:
    """A rasterio environment whose GDAL block cache holds at most ``GDAL_CACHE_MB`` (GDAL's default is 5 % of
    RAM, which fills as a large scene streams through and makes peak memory grow with the scene). A
    ``GDAL_CACHEMAX`` set by the user in the process environment wins."""
    if "GDAL_CACHEMAX" in os.environ:
        return rasterio.Env()
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB)


def _open_dataset(path: str) -> Any:
    name = Path(path).name
    if not path.startswith("/vsi") and not Path(path).exists():
        raise InputError(f"{path} does not exist; check the path.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(path)
    except RasterioError as exc:
        raise InputError(f"{name} is not a raster GDAL can read; give a GeoTIFF, a SAFE "
                         "product or another GDAL raster.") from exc
    if ds.count == 0:
        ds.close()
        raise InputError(f"{name} has no raster bands (it may hold subdatasets); open one of its "
                         "subdatasets instead.")
    dtypes = set(ds.dtypes)
    if len(dtypes) != 1 or next(iter(dtypes)) not in SUPPORTED_DTYPES:
        ds.close()
        shown = "/".join(sorted(dtypes))
        hint = " (SLC? use a GRD product)" if "complex" in shown else ""
        raise InputError(f"{name} has data type {shown}, which is not supported{hint}; use "
                         f"{', '.join(SUPPORTED_DTYPES)} (e.g. uint16 amplitude or float32 sigma0).")
    return ds


def _read_georef(ds: Any) -> dict:
    gcps, gcp_crs = ds.gcps
    transform = ds.transform
    has_transform = not (transform.is_identity and (ds.crs is None or gcps))
    return {
        "crs": ds.crs.to_wkt() if ds.crs else None,
        "transform": list(transform)[:6] if has_transform else None,
        "gcps": [[g.row, g.col, g.x, g.y, g.z, g.id, g.info] for g in gcps] if gcps else None,
        "gcp_crs": gcp_crs.to_wkt() if (gcps and gcp_crs) else None,
    }


def _check_same_grid(first: Any, other: Any) -> None:
    a, b = Path(first.name).name, Path(other.name).name
    if (first.width, first.height) != (other.width, other.height):
        raise InputError(f"{a} is {first.width}x{first.height} but {b} is "
                         f"{other.width}x{other.height}; give two polarisations of the same scene.")
    if first.dtypes[0] != other.dtypes[0]:
        raise InputError(f"{a} is {first.dtypes[0]} but {b} is {other.dtypes[0]}; give two "
                         "polarisations of the same product.")
    ga, gb = first.gcps, other.gcps
    same = (first.crs == other.crs
            and np.allclose(tuple(first.transform), tuple(other.transform), rtol=1e-12, atol=1e-9)
            and len(ga[0]) == len(gb[0]) and ga[1] == gb[1]
            and np.allclose(_gcp_array(ga[0]), _gcp_array(gb[0]), rtol=1e-12, atol=1e-9))
    if not same:
        raise InputError(f"{a} and {b} have different georeferencing; give two polarisations of "
                         "the same scene.")


def _gcp_array(gcps: Sequence[GroundControlPoint]) -> np.ndarray:
    return np.array([[g.row, g.col, g.x, g.y, g.z or 0.0] for g in gcps], dtype=float).reshape(-1, 5)


def _band_names(bands: list[tuple[Any, int]], safe_pols: list[str | None]) -> tuple[str, ...]:
    """Names from SAFE file names, band descriptions, file names (one-band files), else B1, B2."""
    names = []
    for k, ((ds, b), safe_pol) in enumerate(zip(bands, safe_pols), start=1):
        desc = ds.descriptions[b - 1]
        from_desc = _POL_RE.search(desc or "")
        from_file = _POL_RE.search(Path(ds.name).name) if ds.count == 1 else None
        if safe_pol:
            names.append(safe_pol)
        elif from_desc:
            names.append(from_desc.group(1).upper())
        elif from_file:
            names.append(from_file.group(1).upper())
        else:
            names.append(desc or f"B{k}")
    if len(set(names)) != len(names):
        names = [f"B{k}" for k in range(1, len(bands) + 1)]
    return tuple(names)


def _select_pols(bands: list, names: tuple[str, ...], pols: Sequence[str] | None,
                 label: str) -> tuple[list, tuple[str, ...]]:
    if pols is None:
        return bands, names
    wanted = list(dict.fromkeys(p.upper() for p in pols))
    upper = [n.upper() for n in names]
    missing = [p for p in wanted if p not in upper]
    if missing or not wanted:
        what = f"no {'/'.join(missing)} band" if missing else "no polarisation chosen"
        raise InputError(f"{label}: {what}; choose among {', '.join(names)}.")
    keep = [i for i, n in enumerate(upper) if n in wanted]
    return [bands[i] for i in keep], tuple(names[i] for i in keep)


SCENE_DATE_TAG = "TIFFTAG_DATETIME"


def _merge_tags(datasets: list[Any], bands: list[tuple[Any, int]]) -> tuple[dict, tuple[dict, ...]]:
    """Dataset tags common to all files; tags that differ between files go to their bands, and the scene
    keeps the earliest of its files' dates (``TIFFTAG_DATETIME``)."""
    per_file = [ds.tags() for ds in datasets]
    common = {k: v for k, v in per_file[0].items() if all(t.get(k) == v for t in per_file[1:])}
    band_tags = []
    for ds, b in bands:
        own = {k: v for k, v in ds.tags().items() if k not in common}
        band_tags.append({**own, **ds.tags(b)})
    dates = [t[SCENE_DATE_TAG] for t in per_file if t.get(SCENE_DATE_TAG)]
    if dates:
        common.setdefault(SCENE_DATE_TAG, min(dates))  # "YYYY:MM:DD HH:MM:SS" sorts as time does
    return common, tuple(band_tags)


def _build_scene(opened: list[Any], sources: list[tuple[str, str | None]], units: Units | None,
                 pols: Sequence[str] | None, *, is_safe: bool, label: str) -> Scene:
    bands = [(ds, b) for ds in opened for b in range(1, ds.count + 1)]
    safe_pols = [pol if is_safe else None for ds, (_, pol) in zip(opened, sources) for _ in range(ds.count)]
    bands, names = _select_pols(bands, _band_names(bands, safe_pols), pols, label)
    if len(bands) > 2:
        raise InputError(f"{label} has {len(bands)} bands; give one or two polarisations (e.g. VV "
                         "and VH) as one 2-band file or two single-band files, or choose with pols.")
    used = [ds for ds in opened if any(ds is d for d, _ in bands)]
    for ds in opened:
        if not any(ds is d for d in used):
            ds.close()
    first = used[0]
    for other in used[1:]:
        _check_same_grid(first, other)
    nodata = _merge_nodata(used, label)
    tags, band_tags = _merge_tags(used, bands)
    descriptions = tuple(ds.descriptions[b - 1] for ds, b in bands)
    dtype = first.dtypes[0]
    sample = _decimated_sample(bands, first.height, first.width, dtype, label)
    if units is None:
        hints = [*tags.values(), *(v for t in band_tags for v in t.values()),
                 *(d or "" for d in descriptions), *(Path(ds.name).name for ds in used)]
        valid = sample[valid_mask(sample, nodata, zero_is_nodata=False)]
        units = detect_units(dtype, {str(i): h for i, h in enumerate(hints)}, valid)
    info = SceneInfo(width=first.width, height=first.height, count=len(bands), dtype=dtype,
                     nodata=nodata, band_names=names, units=units, georef=_read_georef(first),
                     tags=tags, band_tags=band_tags, band_descriptions=descriptions)
    if not valid_mask(sample, nodata, zero_is_nodata=_zero_is_nodata(info)).any():
        raise InputError(f"{label} holds only nodata; give a scene with valid samples.")
    return Scene(info, bands, [ds.name for ds in used])


def _merge_nodata(datasets: list[Any], label: str) -> float | None:
    values = {"nan" if v is not None and math.isnan(v) else v for v in (ds.nodata for ds in datasets)}
    values.discard(None)
    if len(values) > 1:
        raise InputError(f"The files of {label} have different nodata values "
                         f"({', '.join(sorted(map(str, values)))}); give two polarisations of the "
                         "same product.")
    if not values:
        return None
    value = values.pop()
    return math.nan if value == "nan" else float(value)


def _decimated_sample(bands: list[tuple[Any, int]], height: int, width: int, dtype: str,
                      label: str) -> np.ndarray:
    step = max(1, math.ceil(max(height, width) / SAMPLE_SIZE))
    shape = (math.ceil(height / step), math.ceil(width / step))
    out = np.empty((len(bands), *shape), dtype=dtype)
    try:
        for i, (ds, b) in enumerate(bands):
            ds.read(b, out=out[i], resampling=Resampling.nearest)
    except RasterioError as exc:
        raise InputError(f"Could not read {label}: the file may be truncated or corrupted.") from exc
    return out
