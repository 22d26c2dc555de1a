"""Tests of sar_codec.scene: opening each kind of input, units, errors, and real files."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

import sar_codec.scene as scene_module
from sar_codec.errors import InputError
from sar_codec.scene import detect_units, open_scene


def split_bands(write_raster, path: Path, names: tuple[str, str]) -> list[Path]:
    """Write each band of ``path`` to its own file, named after ``names``."""
    out = []
    with rasterio.open(path) as src:
        for i, name in enumerate(names, start=1):
            profile = {k: src.profile[k] for k in ("nodata", "crs", "transform")}
            dst = path.with_name(name)
            write_raster(dst, src.read([i]), **profile)
            if src.gcps[0]:
                with rasterio.open(dst, "r+") as d:
                    d.gcps = src.gcps
            out.append(dst)
    return out


# --- each kind of input --------------------------------------------------------------------


def test_open_db_scene(db_scene):
    with open_scene(db_scene) as scene:
        info = scene.info
        assert (info.width, info.height, info.count, info.dtype) == (56, 40, 2, "float32")
        assert math.isnan(info.nodata)
        assert info.band_names == ("VV", "VH") and info.units == "db"
        assert info.band_descriptions == ("VV", "VH")
        assert info.georef["gcps"] is None and info.georef["gcp_crs"] is None
        assert CRS.from_wkt(info.georef["crs"]) == CRS.from_epsg(4326)
        assert info.georef["transform"] == [8.983e-05, 0, -1.6097, 0, -8.983e-05, 10.3485]
        block = scene.read(2, 3, 10, 20)
        with rasterio.open(db_scene) as src:
            expected = src.read(window=((2, 12), (3, 23)))
        assert block.shape == (2, 10, 20) and block.dtype == np.float32
        np.testing.assert_array_equal(block, expected)
        mask = scene.valid_mask(block)
        assert mask.shape == block.shape and not mask[:, :3, :4].any() and mask[:, 5:, 5:].all()


def test_open_grd_scene_with_gcps(grd_scene):
    with open_scene(grd_scene) as scene:
        info = scene.info
        assert (info.count, info.dtype, info.nodata, info.units) == (2, "uint16", 0.0, "amplitude")
        assert info.band_names == ("VV", "VH")
        assert info.georef["transform"] is None and info.georef["crs"] is None
        assert len(info.georef["gcps"]) == 20
        assert CRS.from_wkt(info.georef["gcp_crs"]) == CRS.from_epsg(4326)
        assert info.tags["MISSION"] == "S1A"
        assert info.band_tags == ({"POLARISATION": "VV"}, {"POLARISATION": "VH"})
        assert not scene.valid_mask(scene.read(0, 0, 48, 64))[:, :, :6].any()


def test_uint16_zero_is_nodata_without_nodata_tag(tmp_path, make_raster):
    path = make_raster(tmp_path / "s1a-iw-grd-vh-x.tiff", np.array([[[0, 5], [7, 0]]], "uint16"))
    with open_scene(path) as scene:
        assert scene.info.nodata is None and scene.info.band_names == ("VH",)
        np.testing.assert_array_equal(scene.valid_mask(scene.read(0, 0, 2, 2)), [[[False, True], [True, False]]])


def test_open_two_single_band_files(db_scene, make_raster):
    vv, vh = split_bands(make_raster, db_scene, ("chip_vv.tif", "chip_vh.tif"))
    with open_scene([vv, vh]) as scene, open_scene(db_scene) as whole:
        assert scene.info.band_names == ("VV", "VH") and scene.info.count == 2
        assert scene.info.georef == whole.info.georef
        np.testing.assert_array_equal(scene.read(0, 0, 40, 56), whole.read(0, 0, 40, 56))
    with open_scene([vv, vh], pols=["vh"]) as scene:
        assert scene.info.band_names == ("VH",) and scene.paths == (str(vh),)


def test_open_safe_directory_zip_and_manifest(safe_dir, tmp_path):
    with open_scene(safe_dir) as scene:
        assert scene.info.band_names == ("VV", "VH")  # VV first, whatever the listing order
        assert len(scene.info.georef["gcps"]) == 20 and scene.info.units == "amplitude"
        assert "-vv-" in scene.paths[0]
        both = scene.read(0, 0, 32, 40)
    with open_scene(safe_dir / "manifest.safe", pols=["VH"]) as scene:
        assert scene.info.band_names == ("VH",)
        np.testing.assert_array_equal(scene.read(0, 0, 32, 40)[0], both[1])
    archive = shutil.make_archive(str(tmp_path / safe_dir.stem), "zip", safe_dir.parent, safe_dir.name)
    with open_scene(archive) as scene:
        assert scene.info.band_names == ("VV", "VH") and scene.paths[0].startswith("/vsizip/")
        np.testing.assert_array_equal(scene.read(0, 0, 32, 40), both)


# --- units -------------------------------------------------------------------------------


def test_detect_units():
    positive = np.abs(np.random.default_rng(0).normal(0.1, 0.05, 100)).astype("float32")
    assert detect_units("uint16", {}, np.array([1, 2])) == "amplitude"
    assert detect_units("int16", {}, np.array([-1, -2])) == "amplitude"
    assert detect_units("float32", {}, positive) == "power"
    assert detect_units("float32", {}, -positive) == "db"
    assert detect_units("float32", {}, np.array([np.nan, np.nan, -3.0, 1.0, -2.0])) == "db"
    assert detect_units("float32", {"UNITS": "dB"}, positive) == "db"
    assert detect_units("float32", {"file": "scene_norm_db.tif"}, positive) == "db"
    assert detect_units("float64", {"file": "feedback.tif"}, positive) == "power"


def test_units_forced_and_power_detected(db_scene, tmp_path, make_raster):
    with open_scene(db_scene, units="power") as scene:
        assert scene.info.units == "power"
    power = np.full((1, 8, 8), 0.05, "float32")
    with open_scene(make_raster(tmp_path / "sigma0.tif", power)) as scene:
        assert scene.info.units == "power" and scene.info.band_names == ("B1",)
        assert scene.info.georef == {"crs": None, "transform": None, "gcps": None, "gcp_crs": None}


@pytest.mark.parametrize("profile", [{}, {"tiled": True, "blockxsize": 256, "blockysize": 256},
                                     {"blockysize": 3, "compress": "deflate"}])
def test_decimated_sample_is_every_step_th_sample(tmp_path, make_raster, profile, monkeypatch):
    """The sample for units detection and the all-nodata check is the scene's every step-th row and column,
    whatever the file's layout (strips, tiles, compression) and however chunks fall on the sampled rows."""
    monkeypatch.setattr(scene_module, "_SAMPLE_CHUNK_BYTES", 7 * 1234 * 2)  # chunks of a few rows
    array = np.random.default_rng(3).integers(1, 60000, (2, 1100, 1234), dtype="uint16")
    path = make_raster(tmp_path / "grd.tif", array, **profile)
    with rasterio.open(path) as ds:
        sample = scene_module._decimated_sample([(ds, 1), (ds, 2)], 1100, 1234, "uint16", "grd.tif")
    np.testing.assert_array_equal(sample, array[:, ::2, ::2])


# --- bad inputs --------------------------------------------------------------------------


def _bad_inputs(make_raster, tmp_path, db_scene, safe_dir):
    not_raster = tmp_path / "notes.tif"
    not_raster.write_text("hello")
    bad_zip = tmp_path / "bad.zip"
    bad_zip.write_text("hello")
    three = make_raster(tmp_path / "rgb.tif", np.ones((3, 8, 8), "float32"))
    cplx = make_raster(tmp_path / "slc.tif", np.ones((1, 8, 8), "complex64"))
    int8 = make_raster(tmp_path / "int8.tif", np.ones((1, 8, 8), "int8"))
    empty = make_raster(tmp_path / "empty.tif", np.full((1, 8, 8), np.nan, "float32"), nodata=np.nan)
    zeros = make_raster(tmp_path / "zeros.tif", np.zeros((1, 8, 8), "uint16"))
    small = make_raster(tmp_path / "small_vh.tif", np.ones((1, 8, 8), "float32"))
    vv, vh = split_bands(make_raster, db_scene, ("a_vv.tif", "a_vh.tif"))
    moved = make_raster(tmp_path / "moved_vh.tif", np.ones((1, 40, 56), "float32"),
                         crs=CRS.from_epsg(4326), transform=Affine(1e-4, 0, 5, 0, -1e-4, 6))
    with rasterio.open(db_scene) as src:
        ints = make_raster(tmp_path / "ints_vh.tif", np.ones((1, 40, 56), "uint16"), crs=src.crs,
                           transform=src.transform)
    no_measurement = tmp_path / "EMPTY.SAFE"
    no_measurement.mkdir()
    (no_measurement / "manifest.safe").write_text("<xfdu/>")
    return {
        "missing": (tmp_path / "nope.tif", {}, "does not exist"),
        "not a raster": (not_raster, {}, "not a raster"),
        "3 bands": (three, {}, "3 bands"),
        "3 files": ([vv, vh, vv], {}, "3 input files"),
        "complex": (cplx, {}, "SLC"),
        "int8": (int8, {}, "int8"),
        "all nan": (empty, {}, "only nodata"),
        "all zero amplitude": (zeros, {}, "only nodata"),
        "bad units": (db_scene, {"units": "linear"}, "Unknown units"),
        "size mismatch": ([vv, small], {}, "56x40 but"),
        "georef mismatch": ([vv, moved], {}, "different georeferencing"),
        "dtype mismatch": ([vv, ints], {}, "is uint16"),
        "safe without measurement": (no_measurement, {}, "no measurement"),
        "safe without pol": (safe_dir, {"pols": ["HH"]}, "no HH band"),
        "no pol chosen": (db_scene, {"pols": []}, "no polarisation chosen"),
        "bad zip": (bad_zip, {}, "not a readable zip"),
    }


def test_bad_inputs_raise_one_sentence(make_raster, tmp_path, db_scene, safe_dir):
    for case, (inputs, kwargs, words) in _bad_inputs(make_raster, tmp_path, db_scene, safe_dir).items():
        with pytest.raises(InputError) as err:
            open_scene(inputs, **kwargs).close()
        message = str(err.value)
        assert words in message, (case, message)
        assert message.endswith(".") and "\n" not in message, (case, message)


# --- real Sentinel-1 files -------------------------------------------------------------------


@pytest.mark.data
def test_real_sen1floods11_chips(shared_data):
    files = sorted((shared_data / "sen1floods11-dualpol-db").glob("*.tif"))
    assert len(files) == 7
    for path in files:
        with open_scene(path) as scene:
            info = scene.info
            assert (info.count, info.dtype, info.units, info.band_names) == (2, "float32", "db", ("VV", "VH"))
            assert math.isnan(info.nodata) and CRS.from_wkt(info.georef["crs"]) == CRS.from_epsg(4326)
            assert scene.valid_mask(scene.read(0, 0, 64, 64)).dtype == bool


@pytest.mark.data
def test_real_grd_pair_with_gcps(shared_data):
    folder = shared_data / "grd-uint16-gcps"
    vv, vh = folder / "S1A_IW_GRDH_20180716T004042_iw-vv.tiff", folder / "S1A_IW_GRDH_20180716T004042_iw-vh.tiff"
    with open_scene([vh, vv], pols=["VV", "VH"]) as scene:  # pols keeps the order given by files
        info = scene.info
        assert info.band_names == ("VH", "VV") and info.units == "amplitude" and info.nodata is None
        assert (info.width, info.height, info.dtype) == (1280, 837, "uint16")
        assert len(info.georef["gcps"]) == 210 and info.georef["transform"] is None
        assert CRS.from_wkt(info.georef["gcp_crs"]) == CRS.from_epsg(4326)
        # The two files differ in TIFFTAG_DATETIME only: each band keeps its own, the scene the earliest.
        dates = [t["TIFFTAG_DATETIME"] for t in info.band_tags]
        assert dates[0] != dates[1] and info.tags["TIFFTAG_DATETIME"] == min(dates)
        assert info.tags["TIFFTAG_IMAGEDESCRIPTION"] == "Sentinel-1A IW GRD HR L1"
    with open_scene(folder / "S1A_S1_GRDH_20230809T020729_s1-vh.tiff") as scene:
        assert scene.info.band_names == ("VH",) and len(scene.info.georef["gcps"]) == 294


@pytest.mark.data
def test_real_units_from_other_sets(shared_data):
    with open_scene(next((shared_data / "pyrosar-gamma0-db").glob("*.tif"))) as scene:
        assert scene.info.units == "db" and scene.info.nodata == -99 and scene.info.band_names == ("VV",)
    with open_scene(shared_data / "cnnspecklefilter-sigma0" / "834_snippet_vh.tif") as scene:
        assert scene.info.units == "power" and scene.info.band_names == ("VH",)
