"""GDAL reads a .sarc in place: a VRT whose bands are computed by :func:`pixels`, a Python pixel function.

Each band of the VRT is a ``VRTDerivedRasterBand`` with no sources; GDAL calls :func:`pixels` (this module must be
trusted: ``GDAL_VRT_PYTHON_TRUSTED_MODULES``) with the window it needs and the VRT's ``PixelFunctionArguments``
(container path, band, pyramid level), and the function fills it from :func:`sar_codec.open`. Each pyramid level
of the container is a VRT ``<Overview>``, an inline VRT dataset of that level, so zoomed-out views decode only the
level they show. A Python exception in the pixel function (a truncated or corrupted container) makes GDAL's read
fail. docs/reading.md says how to use it and why this route.
"""

from __future__ import annotations

import atexit
import math
import os
import sys
import sysconfig
import threading
from html import escape
from pathlib import Path

from .codec import container_info
from .errors import ContainerError, InputError, OutputExistsError
from .files import write_text_atomic
from .tiling import Window

MODULE = __name__  # "sar_codec.vrt": the module GDAL must trust
PIXEL_FUNCTION = f"{MODULE}.pixels"
_GDAL_TYPES = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32", "int32": "Int32",
               "float32": "Float32", "float64": "Float64"}


# --- writing the VRT --------------------------------------------------------------------------------


def write_vrt(container: str | Path, output: str | Path | None = None, *, overwrite: bool = False) -> Path:
    """Write a GDAL VRT that reads ``container`` in place (default: beside it, ``.vrt``); returns its path.

    The VRT names the container by its absolute path: move the container and write the VRT again.
    """
    container = Path(container)
    info = container_info(container)  # reads and checks the header; raises the clear errors
    if info.get("format") != "sar-codec":
        raise ContainerError(f"{container} is not a sar-codec scene container.")
    output = Path(output) if output is not None else container.with_suffix(".vrt")
    if output.resolve() == container.resolve():
        raise OutputExistsError(f"{output} is the container itself; choose another output path.")
    if output.exists() and not overwrite:
        raise OutputExistsError(f"{output} already exists; choose another path or allow overwriting.")
    write_text_atomic(output, vrt_xml(container.resolve(), info))
    return output


def vrt_xml(container: Path, info: dict) -> str:
    """The VRT of a container whose :func:`~sar_codec.codec.container_info` is ``info``."""
    scene = info["scene"]
    width, height = int(scene["width"]), int(scene["height"])
    levels = [(int(d["width"]), int(d["height"]), int(d["level"])) for d in info.get("overviews") or []]
    georef = scene["georef"]
    lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">']
    if georef.get("crs"):
        lines.append(f"  <SRS>{escape(georef['crs'])}</SRS>")
    if georef.get("transform"):
        a, b, c, d, e, f = georef["transform"]
        lines.append(f"  <GeoTransform>{c!r}, {a!r}, {b!r}, {f!r}, {d!r}, {e!r}</GeoTransform>")
    if georef.get("gcps"):
        projection = f' Projection="{escape(georef["gcp_crs"])}"' if georef.get("gcp_crs") else ""
        lines.append(f"  <GCPList{projection}>")
        for row, col, x, y, z, gid, ginfo in georef["gcps"]:
            lines.append(f'    <GCP Id="{escape(str(gid or ""))}" Info="{escape(str(ginfo or ""))}" Pixel="{col!r}" '
                         f'Line="{row!r}" X="{x!r}" Y="{y!r}" Z="{(z or 0.0)!r}"/>')
        lines.append("  </GCPList>")
    if scene.get("tags"):
        lines.append("  <Metadata>")
        lines += [f'    <MDI key="{escape(str(k))}">{escape(str(v))}</MDI>' for k, v in scene["tags"].items()]
        lines.append("  </Metadata>")
    count = int(scene["count"])
    overviews = [_overview(container, scene, info["block_size"], count, w, h, k) for w, h, k in levels]
    for b in range(1, count + 1):
        lines += _band(container, scene, info["block_size"], b, 0, overviews, indent="  ")
    lines.append("</VRTDataset>")
    return "\n".join(lines) + "\n"


def _band(container: Path, scene: dict, block: int, band: int, level: int, overviews: list[str],
          indent: str) -> list[str]:
    """One derived band computing container band ``band`` of ``level``, with ``overviews`` (inline datasets)."""
    dtype = _GDAL_TYPES[scene["dtype"]]
    lines = [f'{indent}<VRTRasterBand dataType="{dtype}" band="{band}" '
             f'subClass="VRTDerivedRasterBand" '
             f'blockXSize="{block}" blockYSize="{block}">']
    inner = indent + "  "
    if level == 0:
        lines.append(f"{inner}<Description>{escape(scene['band_names'][band - 1])}</Description>")
    nodata = scene.get("nodata")
    if nodata is not None:
        lines.append(f"{inner}<NoDataValue>{_gdal_number(float(nodata))}</NoDataValue>")
    lines += [f"{inner}<PixelFunctionType>{PIXEL_FUNCTION}</PixelFunctionType>",
              f"{inner}<PixelFunctionLanguage>Python</PixelFunctionLanguage>",
              f'{inner}<PixelFunctionArguments path="{escape(str(container))}" band="{band}" level="{level}"/>']
    for ovr in overviews:
        lines.append(f"{inner}<Overview><SourceFilename>{escape(ovr)}</SourceFilename>"
                     f"<SourceBand>{band}</SourceBand></Overview>")
    lines.append(f"{indent}</VRTRasterBand>")
    return lines


def _overview(container: Path, scene: dict, block: int, count: int, width: int, height: int, level: int) -> str:
    """An inline VRT dataset (GDAL opens XML given as a file name) of every band of one pyramid level: one
    dataset per level, so that tools reading overviews as datasets (gdalwarp) find every band in it."""
    body = [line for b in range(1, count + 1) for line in _band(container, scene, block, b, level, [], indent="")]
    return f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">' + "".join(body) + "</VRTDataset>"


def _gdal_number(value: float) -> str:
    return "nan" if math.isnan(value) else repr(value)


# --- what GDAL needs to run the pixel function --------------------------------------------------------


def gdal_environment() -> dict[str, str]:
    """Environment variables that let GDAL tools (gdalinfo, gdal_translate, QGIS...) run :func:`pixels`:
    the trusted module, the Python library GDAL should load (``PYTHONSO``) and the folders that hold sar_codec
    and its dependencies (``PYTHONPATH``), as this interpreter sees them."""
    package_parent = str(Path(__file__).resolve().parents[1])
    paths = [package_parent] + [p for p in sys.path if p.endswith("-packages") and os.path.isdir(p)]
    env = {
        "GDAL_VRT_ENABLE_PYTHON": "TRUSTED_MODULES",
        "GDAL_VRT_PYTHON_TRUSTED_MODULES": MODULE,
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
    }
    libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    if libdir and soname and os.path.exists(os.path.join(libdir, soname)):
        env["PYTHONSO"] = os.path.join(libdir, soname)
    return env


def env_lines() -> str:
    """Shell lines (``export ...``) that set :func:`gdal_environment`, keeping what the user already had."""
    env = gdal_environment()
    out = []
    for key, value in env.items():
        if key == "PYTHONPATH":
            out.append(f'export PYTHONPATH="{value}${{PYTHONPATH:+:$PYTHONPATH}}"')
        elif key == "GDAL_VRT_PYTHON_TRUSTED_MODULES":
            out.append(f'export {key}="${{{key}:+${key},}}{value}"')
        else:
            out.append(f'export {key}="{value}"')
    return "\n".join(out) + "\n"


def enable_in_process() -> None:
    """Let the GDAL of this process (rasterio, osgeo.gdal, QGIS) run :func:`pixels`: trust this module in the
    process environment, which GDAL reads when no config option overrides it."""
    trusted = [m for m in os.environ.get("GDAL_VRT_PYTHON_TRUSTED_MODULES", "").split(",") if m]
    if MODULE not in trusted:
        os.environ["GDAL_VRT_PYTHON_TRUSTED_MODULES"] = ",".join([*trusted, MODULE])
    if os.environ.get("GDAL_VRT_ENABLE_PYTHON", "TRUSTED_MODULES").upper() == "NO":
        os.environ["GDAL_VRT_ENABLE_PYTHON"] = "TRUSTED_MODULES"


# --- the pixel function ----------------------------------------------------------------------------

_datasets: dict[str, tuple[tuple[int, int, int], object]] = {}
_datasets_lock = threading.Lock()


@atexit.register
def _close_datasets() -> None:
    with _datasets_lock:
        for _, ds in _datasets.values():
            ds.close()
        _datasets.clear()


def _dataset(path: str):
    """The open reader of ``path``, reopened when the file changed (so a rewritten container is never mixed
    with the blocks cached from the old one)."""
    from .reader import open as open_sarc

    try:
        st = os.stat(path)
    except OSError as exc:
        raise ContainerError(f"{path} cannot be read ({exc.strerror}).") from None
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    with _datasets_lock:
        cached = _datasets.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        if cached is not None:
            cached[1].close()
            del _datasets[path]
        ds = open_sarc(path)
        _datasets[path] = (key, ds)
        return ds


def pixels(in_ar, out_ar, xoff, yoff, xsize, ysize, raster_xsize, raster_ysize, buf_radius, gt, **kwargs):
    """GDAL's Python pixel function: fill ``out_ar`` with band ``band`` of level ``level`` of the container at
    ``path`` over the window (xoff, yoff, xsize, ysize), resampled to ``out_ar``'s shape when GDAL asks for less.

    Any problem raises, so that GDAL's read fails rather than shows a wrong block.
    """
    args = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in kwargs.items()}
    try:
        path, band, level = args["path"], int(args["band"]), int(args["level"])
    except (KeyError, ValueError):
        raise InputError(f"The VRT's PixelFunctionArguments {args} lack path, band or level; write the VRT "
                         "again from its container.") from None
    ds = _dataset(path)
    if level >= len(ds.levels) or (ds.levels[level].width, ds.levels[level].height) != (raster_xsize, raster_ysize):
        raise ContainerError(f"{path} no longer matches the VRT (level {level} is not {raster_xsize}x"
                             f"{raster_ysize}); write the VRT again from the container.")
    window = Window(yoff, xoff, ysize, xsize)
    if out_ar.shape == (ysize, xsize):
        data = ds.read_level(level, window, band)
    elif level == 0:  # GDAL asks for fewer pixels than the window holds: read from the nearest pyramid level
        data = ds.read(band, window=((yoff, yoff + ysize), (xoff, xoff + xsize)), out_shape=out_ar.shape)
    else:
        data = ds.read_level(level, window, band, out_shape=out_ar.shape)
    out_ar[...] = data
