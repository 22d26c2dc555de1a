"""Helpers shared by the tests and their fixtures: GCP grids, small GeoTIFFs, GRD-like speckle, and a small
SAFE product completed from the shared full-size one. A module of its own (not conftest.py) so that tests can
import it by a name no other conftest.py shadows."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.control import GroundControlPoint
from rasterio.errors import NotGeoreferencedWarning


def make_gcps(height: int, width: int, n_rows: int = 4, n_cols: int = 5) -> list[GroundControlPoint]:
    """A grid of GCPs over a slightly rotated footprint in EPSG:4326, ids "1".."n" as GeoTIFF numbers them."""
    gcps = []
    for i in range(n_rows):
        for j in range(n_cols):
            row, col = i * height / (n_rows - 1), j * width / (n_cols - 1)
            x = 78.2 - 0.0011 * col + 0.0002 * row
            y = 10.7 + 0.0002 * col - 0.0009 * row
            gcps.append(GroundControlPoint(row=row, col=col, x=x, y=y, z=255.3 + 0.01 * i,
                                           id=str(len(gcps) + 1), info=""))
    return gcps


def write_raster(path: Path, array: np.ndarray, **profile) -> Path:
    """Write ``array`` (bands, rows, cols) as a GeoTIFF; ``gcps``, ``tags``, ``band_tags`` and
    ``descriptions`` are applied after creation, everything else goes to ``rasterio.open``."""
    gcps = profile.pop("gcps", None)
    tags = profile.pop("tags", {})
    band_tags = profile.pop("band_tags", [{}] * array.shape[0])
    descriptions = profile.pop("descriptions", [None] * array.shape[0])
    count, height, width = array.shape
    with warnings.catch_warnings():  # rasters without georeferencing are wanted here
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        dst = rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=count,
                            dtype=array.dtype, **profile)
    with dst:
        if gcps is not None:
            dst.gcps = gcps
        dst.update_tags(**tags)
        for i in range(count):
            dst.update_tags(i + 1, **band_tags[i])
            if descriptions[i]:
                dst.set_band_description(i + 1, descriptions[i])
        dst.write(array)
    return path


def speckle_amplitude(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """uint16 amplitude DN with gamma speckle, like a GRD measurement file."""
    rng = np.random.default_rng(seed)
    return np.clip(np.sqrt(rng.gamma(1.0, 1.0e4, size=shape)), 1, 65535).astype("uint16")


# --- a small SAFE product completed from the shared full-size one ------------------------------------------

SAFE_NAME = "S1B_IW_GRDH_1SDV_20210401T052623_20210401T052648_026269_032297_ECC8.SAFE"
SAFE_STEM = "s1b-iw-grd-{pol}-20210401t052623-20210401t052648-026269-032297-{n:03d}"
SAFE_SIZE = (320, 448)  # lines, samples of the test product


def _rescale_tags(text: str, tag: str, scale: float, offset: float = 0.0) -> str:
    """Rescale every integer ``<tag>n</tag>`` (or space-separated list) as round(offset + n * scale)."""
    def one(m: re.Match) -> str:
        values = " ".join(str(round(offset + int(v) * scale)) for v in m.group(2).split())
        return f"{m.group(1)}{values}</{tag}>"
    return re.sub(rf"(<{tag}(?: [^>]*)?>)([-0-9 ]+)</{tag}>", one, text)


def build_test_safe(shared: Path, dest: Path) -> Path:
    """A small IW GRDH SAFE product that GDAL's SENTINEL1 driver opens: the shared product's manifest, its VV
    and VH annotations shrunk to ``SAFE_SIZE`` (geolocation grid rescaled), calibration and noise XMLs made
    from the real IW1 examples (line/pixel rescaled), and VV/VH measurements cut from real GRD texture (VV
    striped and uncompressed as ESA writes it, VH tiled and DEFLATE-compressed), plus a PNG quick-look."""
    src = shared / "safe-grd-full-size" / SAFE_NAME
    examples = shared / "safe-grd-full-size" / "calibration-schema-examples"
    texture = shared / "grd-uint16-gcps"
    lines, samples = SAFE_SIZE
    safe = dest / SAFE_NAME
    for sub in ("annotation/calibration", "measurement", "preview"):
        (safe / sub).mkdir(parents=True)
    (safe / "manifest.safe").write_bytes((src / "manifest.safe").read_bytes())
    cal_text = next(examples.glob("calibration-*.xml")).read_text()
    noise_text = next(examples.glob("noise-*.xml")).read_text()
    cal_lines = [int(v) for v in re.findall(r"<line>(-?\d+)</line>", cal_text)]
    line_scale = lines * 1.1 / (max(cal_lines) - min(cal_lines))
    line_offset = -0.05 * lines - min(cal_lines) * line_scale
    for n, pol in ((1, "vv"), (2, "vh")):
        stem = SAFE_STEM.format(pol=pol, n=n)
        ann = (src / "annotation" / f"{stem}.xml").read_text()
        ann = _rescale_tags(ann, "pixel", (samples - 1) / 25787)
        ann = _rescale_tags(ann, "line", (lines - 1) / 16684)
        ann = ann.replace("<numberOfSamples>25788<", f"<numberOfSamples>{samples}<")
        ann = ann.replace("<numberOfLines>16685<", f"<numberOfLines>{lines}<")
        (safe / "annotation" / f"{stem}.xml").write_text(ann)
        cal = _rescale_tags(cal_text, "pixel", (samples - 1) / 21631)
        cal = _rescale_tags(cal, "line", line_scale, line_offset)
        cal = (cal.replace("<productType>SLC<", "<productType>GRD<").replace("<swath>IW1<", "<swath>IW<")
               .replace("<polarisation>VV<", f"<polarisation>{pol.upper()}<"))
        (safe / "annotation" / "calibration" / f"calibration-{stem}.xml").write_text(cal)
        (safe / "annotation" / "calibration" / f"noise-{stem}.xml").write_text(
            noise_text.replace("<polarisation>VV<", f"<polarisation>{pol.upper()}<"))
        with rasterio.open(next(texture.glob(f"S1A_IW_GRDH_*_iw-{pol}.tiff"))) as ds:
            array = ds.read(window=((100, 100 + lines), (200, 200 + samples)))
            gcps = [GroundControlPoint(row=g.row - 100, col=g.col - 200, x=g.x, y=g.y, z=g.z, id=g.id)
                    for g in ds.gcps[0]]
            layout = ({"tiled": False, "blockysize": 1} if pol == "vv"
                      else {"tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
                            "predictor": 2})
            write_raster(safe / "measurement" / f"{stem}.tiff", array, gcps=(gcps, ds.gcps[1]),
                         tags=ds.tags(), **layout)
            if pol == "vv":
                look = (array[:, ::8, ::8] // 64).astype("uint8")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)
                    with rasterio.open(safe / "preview" / "quick-look.png", "w", driver="PNG", count=1,
                                       width=look.shape[2], height=look.shape[1], dtype="uint8") as png:
                        png.write(look)
    return safe
