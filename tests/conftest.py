"""Shared fixtures: tiny rasters made on the fly, and the real data in ../shared/data when present."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()


# --- real Sentinel-1 data ------------------------------------------------------------------


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder ``../shared/data`` (see its MANIFEST.md); skips the test when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


# --- tiny synthetic scenes -----------------------------------------------------------------


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


@pytest.fixture(scope="session")
def make_raster():
    """The :func:`write_raster` helper, for tests that make their own small rasters."""
    return write_raster


@pytest.fixture
def db_scene(tmp_path: Path) -> Path:
    """2-band float32 sigma0 in dB (VV, VH), EPSG:4326 transform, NaN nodata in one corner."""
    rng = np.random.default_rng(1)
    array = np.stack([rng.normal(-12, 3, (40, 56)), rng.normal(-19, 3, (40, 56))]).astype("float32")
    array[:, :5, :7] = np.nan
    return write_raster(tmp_path / "chip_S1Hand.tif", array, nodata=np.nan, crs=CRS.from_epsg(4326),
                        transform=Affine(8.983e-05, 0, -1.6097, 0, -8.983e-05, 10.3485),
                        descriptions=["VV", "VH"], tags={"OVR_RESAMPLING_ALG": "NEAREST"})


@pytest.fixture
def grd_scene(tmp_path: Path) -> Path:
    """2-band uint16 amplitude georeferenced by 20 GCPs in EPSG:4326, nodata 0, tags and descriptions."""
    array = speckle_amplitude((2, 48, 64))
    array[:, :, :6] = 0  # no-data border, as in GRD products
    return write_raster(
        tmp_path / "grd.tif", array, nodata=0, gcps=(make_gcps(48, 64), CRS.from_epsg(4326)),
        tags={"TIFFTAG_IMAGEDESCRIPTION": "Sentinel-1A IW GRD HR L1", "MISSION": "S1A"},
        band_tags=[{"POLARISATION": "VV"}, {"POLARISATION": "VH"}],
        descriptions=["VV amplitude", "VH amplitude"], tiled=True, blockxsize=16, blockysize=16,
    )


@pytest.fixture
def safe_dir(tmp_path: Path) -> Path:
    """A tiny fake SAFE product: manifest.safe and measurement/ with a VH and a VV GRD tiff."""
    safe = tmp_path / "S1A_IW_GRDH_1SDV_20180716T004042_20180716T004107_022809_0278E2_3E5B.SAFE"
    (safe / "measurement").mkdir(parents=True)
    (safe / "manifest.safe").write_text("<?xml version='1.0'?><xfdu:XFDU/>\n")
    gcps = (make_gcps(32, 40), CRS.from_epsg(4326))
    stem = "s1a-iw-grd-{pol}-20180716t004042-20180716t004107-022809-0278e2-{n:03d}.tiff"
    for n, pol in ((2, "vh"), (1, "vv")):  # VH listed first on disk, on purpose
        array = speckle_amplitude((1, 32, 40), seed=n)
        write_raster(safe / "measurement" / stem.format(pol=pol, n=n), array, gcps=gcps,
                     tags={"TIFFTAG_IMAGEDESCRIPTION": "Sentinel-1A IW GRD HR L1"})
    return safe


@pytest.fixture(scope="module")
def speckled_db_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2-band float32 sigma0 dB (VV, VH) of 128x192, 4.4-look speckle over smooth fields, UTM transform, a NaN
    nodata strip along the top: whole 64-pixel tiles, for codec comparisons (one file per test module)."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:128, 0:192]
    field = -10 + 4 * np.sin(xx / 23.0) * np.cos(yy / 31.0)
    power = 10 ** (np.stack([field, field - 7]) / 10) * rng.gamma(4.4, 1 / 4.4, (2, 128, 192))
    array = (10 * np.log10(power)).astype("float32")
    array[:, :4, :] = np.nan
    return write_raster(tmp_path_factory.mktemp("scene") / "speckled_db.tif", array, nodata=np.nan,
                        crs=CRS.from_epsg(32631), transform=Affine(10.0, 0, 500000.0, 0, -10.0, 4650000.0),
                        descriptions=["VV", "VH"])


@pytest.fixture(scope="module")
def speckled_grd_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1-band uint16 amplitude of 128x128 georeferenced by GCPs, nodata 0: a small GRD measurement file
    (one file per test module)."""
    array = speckle_amplitude((1, 128, 128), seed=3)
    array[:, :, :5] = 0
    return write_raster(tmp_path_factory.mktemp("scene") / "grd_vv.tif", array, nodata=0,
                        gcps=(make_gcps(128, 128), CRS.from_epsg(4326)), band_tags=[{"POLARISATION": "VV"}])


@pytest.fixture(scope="session")
def point() -> tuple[str, int]:
    """The cheapest installed learned point: the default architecture if installed, at its lowest quality."""
    from sar_codec.registry import DEFAULT_ARCHITECTURE, model_table

    table = model_table()
    if not table:
        pytest.skip("no model weights are installed")
    arch = DEFAULT_ARCHITECTURE if any(e.architecture == DEFAULT_ARCHITECTURE for e in table) else table[0].architecture
    return arch, min(e.quality for e in table if e.architecture == arch)


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


@pytest.fixture(scope="session")
def test_safe(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small VV+VH IW GRDH SAFE folder built by :func:`build_test_safe`."""
    return build_test_safe(shared_data, tmp_path_factory.mktemp("safe"))


@pytest.fixture(scope="session")
def safe_container(test_safe: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`test_safe` compressed at the lowest quality in 256-pixel blocks (2 x 2 blocks)."""
    from sar_codec.codec import compress_scene

    out = tmp_path_factory.mktemp("sarc") / "product.sarc"
    return compress_scene(test_safe, out, quality=1, block_size=256, device="cpu").output


@pytest.fixture(scope="session")
def pyramid_container(tmp_path_factory, point) -> tuple[Path, Path, Path]:
    """The built-in sample (640 px, sigma0 dB, NaN nodata border, UTM) compressed in 128-pixel blocks with its
    overview pyramid (one level, 320 px), and its full decode: (source, container, decoded GeoTIFF)."""
    from sar_codec.codec import compress_scene, decompress_scene
    from sar_codec.sample import write_sample

    folder = tmp_path_factory.mktemp("pyramid")
    source = write_sample(folder / "scene.tif", "db", 640)
    sarc = compress_scene(source, folder / "scene.sarc", architecture=point[0], quality=point[1], block_size=128,
                          device="cpu").output
    return source, sarc, decompress_scene(sarc, folder / "decoded.tif", device="cpu")
