"""GDAL reads a .sarc through the VRT that sar_codec.vrt writes: same pixels as the reader, errors on damage."""

from __future__ import annotations

import math
import os
import subprocess

import numpy as np
import pytest
import rasterio

import sar_codec
from sar_codec import vrt
from sar_codec.container import Container
from sar_codec.tiling import Window

gdal = pytest.importorskip("osgeo.gdal", reason="GDAL's Python bindings (python3-gdal) are not installed")


@pytest.fixture(scope="module", autouse=True)
def trusted():
    vrt.enable_in_process()
    gdal.UseExceptions()


@pytest.fixture(scope="module")
def scene_vrt(pyramid_container, tmp_path_factory):
    return vrt.write_vrt(pyramid_container[1], tmp_path_factory.mktemp("vrt") / "scene.vrt")


def test_the_vrt_describes_the_scene(pyramid_container, scene_vrt):
    source = pyramid_container[0]
    ds = gdal.Open(str(scene_vrt))
    src = gdal.Open(str(source))
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (640, 640, 2)
    assert ds.GetGeoTransform() == src.GetGeoTransform()
    assert ds.GetSpatialRef().IsSame(src.GetSpatialRef())
    for b in (1, 2):
        band = ds.GetRasterBand(b)
        assert band.DataType == gdal.GDT_Float32 and math.isnan(band.GetNoDataValue())
        assert band.GetDescription() == ("VV", "VH")[b - 1]
        assert band.GetBlockSize() == [128, 128]
        assert [(band.GetOverview(i).XSize, band.GetOverview(i).YSize) for i in range(band.GetOverviewCount())] \
            == [(320, 320)]


def test_gdal_reads_the_same_pixels_as_the_reader(pyramid_container, scene_vrt):
    ds = gdal.Open(str(scene_vrt))
    with sar_codec.open(pyramid_container[1]) as reader:
        assert np.array_equal(ds.ReadAsArray(50, 100, 350, 200), reader.read(window=((100, 300), (50, 400))),
                              equal_nan=True)
        level = reader.read_level(1, Window(0, 0, 320, 320))
        assert np.array_equal(ds.GetRasterBand(2).GetOverview(0).ReadAsArray(), level[1], equal_nan=True)
        assert np.array_equal(ds.ReadAsArray(buf_xsize=320, buf_ysize=320), level, equal_nan=True)
        with rasterio.open(scene_vrt) as rio:
            assert rio.descriptions == ("VV", "VH") and rio.overviews(1) == [2]
            assert np.array_equal(rio.read(window=((600, 640), (10, 138))),
                                  reader.read(window=((600, 640), (10, 138))), equal_nan=True)


def test_gdal_translate_reads_a_window(pyramid_container, scene_vrt, tmp_path):
    out = tmp_path / "window.tif"
    env = {**os.environ, **vrt.gdal_environment()}
    done = subprocess.run(["gdal_translate", "-q", "-srcwin", "600", "0", "40", "300", str(scene_vrt), str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    with rasterio.open(out) as got, sar_codec.open(pyramid_container[1]) as reader:
        assert got.crs == reader.crs and got.descriptions == ("VV", "VH")
        a, b = got.read(), reader.read(window=((0, 300), (600, 640)))
    # another process: the float synthesis may round its last bit otherwise (BLAS thread count; docs/benchmarks.md)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    valid = ~np.isnan(a)
    assert np.abs(a[valid] - b[valid]).max() < 0.05 and np.mean(a[valid] == b[valid]) > 0.99


def test_gcps_survive_in_the_vrt(speckled_grd_scene, point, tmp_path):
    from sar_codec.codec import compress_scene

    sarc = compress_scene(speckled_grd_scene, tmp_path / "grd.sarc", architecture=point[0], quality=point[1],
                          device="cpu").output
    ds, src = gdal.Open(str(vrt.write_vrt(sarc))), gdal.Open(str(speckled_grd_scene))
    assert ds.GetGCPCount() == src.GetGCPCount() == 20
    assert ds.GetGCPSpatialRef().IsSame(src.GetGCPSpatialRef())
    assert [(g.GCPPixel, g.GCPLine, g.GCPX, g.GCPY) for g in ds.GetGCPs()] == \
        [(g.GCPPixel, g.GCPLine, g.GCPX, g.GCPY) for g in src.GetGCPs()]
    band = ds.GetRasterBand(1)
    assert band.DataType == gdal.GDT_UInt16 and band.GetNoDataValue() == 0 and band.GetOverviewCount() == 0
    with sar_codec.open(sarc) as reader:
        assert np.array_equal(ds.ReadAsArray(), reader.read(1))


def _damaged(sarc, path, block):
    """A copy of ``sarc`` with one byte of ``block``'s payload flipped."""
    with Container.open(sarc) as c:
        offset = int(c._index[block]["offset"]) + c.block_length(block) // 2
    data = bytearray(sarc.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


def test_a_damaged_container_makes_gdal_fail(pyramid_container, tmp_path):
    sarc = pyramid_container[1]
    bad = vrt.write_vrt(_damaged(sarc, tmp_path / "bad.sarc", 6))  # block row 1, column 1
    ds = gdal.Open(str(bad))
    with pytest.raises(RuntimeError, match="block 6 of .* is corrupted"):
        ds.ReadAsArray(100, 100, 100, 100)
    assert ds.ReadAsArray(0, 0, 100, 100).shape == (2, 100, 100)  # blocks that are intact still read

    cut = tmp_path / "cut.sarc"
    cut.write_bytes(sarc.read_bytes())
    cut_vrt = vrt.write_vrt(cut)
    cut.write_bytes(sarc.read_bytes()[:-100])
    with pytest.raises(RuntimeError, match="truncated"):
        gdal.Open(str(cut_vrt)).ReadAsArray(0, 0, 10, 10)
    env = {**os.environ, **vrt.gdal_environment()}
    done = subprocess.run(["gdal_translate", "-q", str(cut_vrt), str(tmp_path / "cut.tif")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and "truncated" in done.stderr


def test_write_vrt_refuses_to_overwrite(pyramid_container, scene_vrt):
    from sar_codec.errors import OutputExistsError

    before = scene_vrt.read_text()
    with pytest.raises(OutputExistsError, match="already exists"):
        vrt.write_vrt(pyramid_container[1], scene_vrt)
    assert scene_vrt.read_text() == before
    with pytest.raises(OutputExistsError, match="the container itself"):
        vrt.write_vrt(pyramid_container[1], pyramid_container[1], overwrite=True)


def test_env_lines_name_the_trusted_module_and_python():
    text = vrt.env_lines()
    assert "sar_codec.vrt" in text and "export PYTHONPATH=" in text
    env = vrt.gdal_environment()
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(sar_codec.__file__).rsplit("/sar_codec/", 1)[0]


def test_cli_vrt_env_and_info(pyramid_container, tmp_path):
    from click.testing import CliRunner

    from sar_codec_cli.main import cli

    runner = CliRunner()
    out = tmp_path / "cli.vrt"
    r = runner.invoke(cli, ["vrt", str(pyramid_container[1]), "-o", str(out)])
    assert r.exit_code == 0 and r.output.strip() == str(out) and gdal.Open(str(out)).RasterCount == 2
    r = runner.invoke(cli, ["vrt", str(pyramid_container[1]), "-o", str(out)])
    assert r.exit_code == 1 and "already exists" in r.output
    assert runner.invoke(cli, ["vrt", "--env"]).output == vrt.env_lines()
    r = runner.invoke(cli, ["info", str(pyramid_container[1])])
    assert "overviews: 1 level (320x320), " in r.output and "% of the file" in r.output


def test_gdalwarp_reads_the_pyramid(pyramid_container, scene_vrt):
    warped = gdal.Warp("", str(scene_vrt), format="MEM", dstSRS="EPSG:4326", width=200)  # from the 320 px level
    assert warped.RasterCount == 2 and warped.GetSpatialRef().GetAuthorityCode(None) == "4326"
    with sar_codec.open(pyramid_container[1]) as reader:
        level = reader.read_level(1, Window(0, 0, 320, 320))
    for b in (1, 2):
        got = warped.GetRasterBand(b).ReadAsArray()
        assert np.isfinite(got).mean() > 0.5
        assert np.nanmean(got) == pytest.approx(np.nanmean(level[b - 1]), abs=0.3)
