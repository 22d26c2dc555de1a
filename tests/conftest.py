"""Shared fixtures: tiny rasters made on the fly, and the real data in ../shared/data when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS
from rasters import SAFE_NAME, build_test_safe, make_gcps, speckle_amplitude, write_raster  # noqa: F401

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
