"""Write a decoded scene window by window to a GeoTIFF or COG that restores the source's metadata.

CRS and transform, or every GCP with its CRS (never flattened to a transform), nodata (NaN
included), dtype, band order, descriptions (a band without one is described by its polarisation),
dataset and band tags all come back. The file
appears at its path only once complete: it is built in a temporary file beside it, then moved.
GeoTIFF numbers GCPs itself, so GCP ids come back as "1".."n" (as GRD files already number them)
and GCP info strings empty; a source with both GCPs and a transform keeps its GCPs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio import windows  # rasterio's Window (col_off, row_off...); sar_codec's is tiling.Window
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from sar_codec.errors import InputError, OutputExistsError
from sar_codec.files import publish, remove_stale_temps, same_file, temp_path
from sar_codec.scene_info import POL_ORDER, SceneInfo

BLOCK_SIZE = 512
COMPRESS = "DEFLATE"


def _gtiff_profile(info: SceneInfo) -> dict[str, Any]:
    georef = info.georef
    profile: dict[str, Any] = dict(
        driver="GTiff", width=info.width, height=info.height, count=info.count, dtype=info.dtype,
        nodata=info.nodata, tiled=True, blockxsize=BLOCK_SIZE, blockysize=BLOCK_SIZE,
        compress=COMPRESS, predictor=3 if np.dtype(info.dtype).kind == "f" else 2,
        bigtiff="IF_SAFER",
    )
    if not georef.get("gcps"):  # GeoTIFF holds either GCPs or a transform: GCPs win
        if georef.get("transform") is not None:
            profile["transform"] = Affine(*georef["transform"])
        if georef.get("crs"):
            profile["crs"] = CRS.from_wkt(georef["crs"])
    return profile


def _band_description(info: SceneInfo, i: int) -> str | None:
    """The source's description of band ``i``, else its polarisation (so that a reader sees which is which)."""
    name = info.band_names[i]
    return info.band_descriptions[i] or (name if name.upper() in POL_ORDER else None)


class SceneWriter:
    """Write windows of a scene described by a :class:`SceneInfo`; use as a context manager.

    Parameters
    ----------
    path
        Destination file; refused if it exists (unless ``overwrite``) or is one of ``protect``.
    info
        Size, dtype, nodata, georeferencing and tags to write.
    cog
        Convert to a Cloud Optimized GeoTIFF (GDAL's COG driver) when closing.
    overwrite
        Replace an existing file at ``path``.
    protect
        Paths never to write over, even with ``overwrite`` (the inputs).
    """

    def __init__(self, path: str | Path, info: SceneInfo, *, cog: bool = False,
                 overwrite: bool = False, protect: Sequence[str | Path] = ()):
        self.path = Path(path)
        self.info = info
        self.cog = cog
        self._overwrite = overwrite
        for p in protect:
            if same_file(self.path, p):
                raise OutputExistsError(f"{self.path} is an input of this run; choose another "
                                        "output path.")
        self._check_destination()
        # A fresh name that GDAL creates itself, so the file gets the usual permissions.
        remove_stale_temps(self.path)
        self._tmp = temp_path(self.path, "part")
        self._temps = [self._tmp]
        try:
            self._dst = self._create()
        except BaseException:
            self._cleanup()
            raise

    def _check_destination(self) -> None:
        if self.path.is_dir():
            raise OutputExistsError(f"{self.path} is a directory; give a file name for the output.")
        if self.path.exists() and not self._overwrite:
            raise OutputExistsError(f"{self.path} already exists; choose another path or allow "
                                    "overwriting.")
        if not self.path.parent.is_dir():
            raise InputError(f"The output folder {self.path.parent} does not exist; create it first.")

    def _create(self) -> Any:
        info, georef = self.info, self.info.georef
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                dst = rasterio.open(self._tmp, "w", **_gtiff_profile(info))
            if georef.get("gcps"):
                gcps = [GroundControlPoint(row=g[0], col=g[1], x=g[2], y=g[3], z=g[4],
                                           id=g[5], info=g[6]) for g in georef["gcps"]]
                gcp_crs = georef.get("gcp_crs") or georef.get("crs")
                dst.gcps = (gcps, CRS.from_wkt(gcp_crs) if gcp_crs else None)
            if info.tags:
                dst.update_tags(**info.tags)
            for i in range(info.count):
                if info.band_tags[i]:
                    dst.update_tags(i + 1, **info.band_tags[i])
                description = _band_description(info, i)
                if description:
                    dst.set_band_description(i + 1, description)
        except RasterioError as exc:
            raise InputError(f"Could not create {self.path}: check the folder's permissions "
                             "and free space.") from exc
        return dst

    def __enter__(self) -> SceneWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, row_off: int, col_off: int, array: np.ndarray) -> None:
        """Write ``array`` of shape (count, h, w) and dtype ``info.dtype`` at the given offset."""
        count, height, width = array.shape
        if count != self.info.count or array.dtype != np.dtype(self.info.dtype):
            raise ValueError(f"expected {self.info.count} bands of {self.info.dtype}, got "
                             f"{count} of {array.dtype}")
        if not (0 <= row_off and 0 <= col_off and row_off + height <= self.info.height
                and col_off + width <= self.info.width):
            raise ValueError(f"window {(row_off, col_off, height, width)} is outside the "
                             f"{self.info.height}x{self.info.width} scene")
        try:
            self._dst.write(array, window=windows.Window(col_off, row_off, width, height))
        except RasterioError as exc:
            raise InputError(f"Could not write {self.path}: check the free space.") from exc

    def close(self) -> None:
        """Finish the file (converting to COG if asked) and move it onto ``path``."""
        try:
            self._dst.close()
            final = self._tmp
            if self.cog:
                final = temp_path(self.path, "cog")
                self._temps.append(final)
                rasterio.shutil.copy(self._tmp, final, driver="COG", compress=COMPRESS,
                                     predictor="YES", blocksize=BLOCK_SIZE, bigtiff="IF_SAFER")
            self._check_destination()  # it may have appeared meanwhile
            publish(final, self.path)
        except RasterioError as exc:
            self._cleanup()
            raise InputError(f"Could not write {self.path}: check the free space.") from exc
        except BaseException:
            self._cleanup()
            raise
        self._cleanup()

    def abort(self) -> None:
        """Drop everything written so far; ``path`` is left untouched."""
        try:
            self._dst.close()
        except RasterioError:
            pass
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        for tmp in self._temps:
            for p in (tmp, tmp.with_name(tmp.name + ".aux.xml")):
                try:
                    p.unlink()
                except FileNotFoundError:
                    pass
