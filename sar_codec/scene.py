"""Open a Sentinel-1 scene (GRD GeoTIFF, SAFE, calibrated sigma0/gamma0) as one windowed reader.

Scenes to compress are read here; everything downstream takes arrays and a :class:`SceneInfo`. Other modules
open raster files only for their own job: ``training_data`` reads training images, ``safe`` records the layout of
a SAFE product's measurement files, ``raster_out`` and ``sample`` write rasters. What a scene is besides its pixels
lives in :mod:`sar_codec.scene_info`, its georeferencing maths in :mod:`sar_codec.georef`, what a SAFE product is
in :mod:`sar_codec.safe_discovery`, GDAL's cache policy in :mod:`sar_codec.gdal_env`. Bad inputs raise
:class:`~sar_codec.errors.InputError` with one sentence.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio import windows  # rasterio's Window (col_off, row_off...); sar_codec's is tiling.Window
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from sar_codec.errors import InputError
from sar_codec.files import same_file
from sar_codec.georef import read_georef, same_georef
from sar_codec.radiometry import Units, check_units
from sar_codec.safe_discovery import is_safe_input, measurement_files, safe_root
from sar_codec.scene_info import POL_RE, SUPPORTED_DTYPES, SceneInfo, check_window

SAMPLE_SIZE = 1024  # longest side of the decimated read used for checks and units detection
_SAMPLE_CHUNK_BYTES = 16 << 20  # rows read at once per band while decimating

_DB_RE = re.compile(r"(?<![a-z0-9])(db|decibels?)(?![a-z0-9])", re.IGNORECASE)


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
        check_window(self.info, row_off, col_off, height, width)
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
    is_safe = len(paths) == 1 and is_safe_input(paths[0])
    if is_safe:
        sources: list[tuple[str, str | None]] = list(measurement_files(paths[0]))
    else:
        for p in paths:
            if is_safe_input(p):
                raise InputError(f"{p} is a SAFE product or a directory; give a SAFE product "
                                 "alone, or two raster files.")
        sources = [(str(p), None) for p in paths]
        if len(paths) == 2 and same_file(paths[0], paths[1]):
            raise InputError(f"{paths[0]} was given twice; give two different polarisations (e.g. VV and VH).")
    opened: list[Any] = []
    try:
        for gdal_path, _ in sources:
            opened.append(_open_dataset(gdal_path))
        label = " + ".join(safe_root(p).name for p in paths)  # a product's name, not "manifest.safe"
        return _build_scene(opened, sources, units, pols, is_safe=is_safe, label=label)
    except BaseException:
        for ds in opened:
            ds.close()
        raise


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


def _check_same_grid(first: Any, other: Any) -> None:
    a, b = Path(first.name).name, Path(other.name).name
    if (first.width, first.height) != (other.width, other.height):
        raise InputError(f"{a} is {first.width}x{first.height} but {b} is "
                         f"{other.width}x{other.height}; give two polarisations of the same scene.")
    if first.dtypes[0] != other.dtypes[0]:
        raise InputError(f"{a} is {first.dtypes[0]} but {b} is {other.dtypes[0]}; give two "
                         "polarisations of the same product.")
    if not same_georef(first, other):
        raise InputError(f"{a} and {b} have different georeferencing; give two polarisations of "
                         "the same scene.")


def _band_names(bands: list[tuple[Any, int]], safe_pols: list[str | None]) -> tuple[str, ...]:
    """Names from SAFE file names, band descriptions, file names (one-band files), else B1, B2."""
    names = []
    for k, ((ds, b), safe_pol) in enumerate(zip(bands, safe_pols), start=1):
        desc = ds.descriptions[b - 1]
        from_desc = POL_RE.search(desc or "")
        from_file = POL_RE.search(Path(ds.name).name) if ds.count == 1 else None
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
                     nodata=nodata, band_names=names, units=units, georef=read_georef(first),
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
    """Every ``step``-th sample of every ``step``-th row (at most ``SAMPLE_SIZE`` a side), read in full-width
    chunks of whole file blocks and decimated here: GDAL's own decimated read (``out_shape``) took 8 s for a
    100 MPix tiled, pixel-interleaved GeoTIFF that reads whole in 0.5 s (docs/benchmarks.md)."""
    step = max(1, math.ceil(max(height, width) / SAMPLE_SIZE))
    shape = (math.ceil(height / step), math.ceil(width / step))
    out = np.empty((len(bands), *shape), dtype=dtype)
    row_bytes = width * np.dtype(dtype).itemsize
    try:
        for i, (ds, b) in enumerate(bands):
            block_rows = max(1, ds.block_shapes[b - 1][0])
            chunk = block_rows * max(1, _SAMPLE_CHUNK_BYTES // (block_rows * row_bytes))
            for r0 in range(0, height, chunk):
                first = -r0 % step  # the first sampled row in this chunk
                if first >= min(chunk, height - r0):
                    continue
                rows = ds.read(b, window=windows.Window(0, r0, width, min(chunk, height - r0)))
                picked = rows[first::step, ::step]
                k = (r0 + first) // step
                out[i, k : k + picked.shape[0]] = picked
    except RasterioError as exc:
        raise InputError(f"Could not read {label}: the file may be truncated or corrupted.") from exc
    return out
