"""The three algorithms through processing.run: outputs, georeferencing, errors and cancellation."""

from __future__ import annotations

import json

import pytest
from qgis_env import cancelling_feedback

pytestmark = pytest.mark.qgis


def _layer(path):
    from qgis.core import QgsRasterLayer

    layer = QgsRasterLayer(str(path), "out", "gdal")
    assert layer.isValid(), path
    return layer


def _crs(path) -> str:
    return _layer(path).crs().toWkt()


def _size(path) -> tuple[int, int, int]:
    """Pixel width, height and band count of the file (QGIS shows a GCP raster through a warped VRT)."""
    from osgeo import gdal

    ds = gdal.Open(str(path))
    return ds.RasterXSize, ds.RasterYSize, ds.RasterCount


def _gcp_count(path) -> int:
    from osgeo import gdal

    return gdal.Open(str(path)).GetGCPCount()


@pytest.fixture(scope="module")
def grd_container(run, sample_grd, tmp_path_factory):
    """The GRD sample compressed in 128-pixel blocks (4 blocks, so that a window reads only some)."""
    out = tmp_path_factory.mktemp("compressed") / "grd.sarc"
    result = run("compress", {"INPUT": str(sample_grd), "QUALITY": 1, "BLOCK_SIZE": 128, "OUTPUT": str(out)})
    return out, result


def test_compress_writes_a_container_and_reports_its_rate(grd_container):
    out, result = grd_container
    assert result["OUTPUT"] == str(out) and out.stat().st_size == result["BYTES"]
    assert result["QUALITY_USED"] == 1 and 0 < result["BPP"] < 16


def test_reproducible_compress_matches_the_library(run, grd_container, sample_grd, tmp_path):
    from sar_codec.codec import compress_scene

    out = tmp_path / "exact.sarc"
    run("compress", {"INPUT": str(sample_grd), "QUALITY": 1, "BLOCK_SIZE": 128, "REPRODUCIBLE": True,
                     "OUTPUT": str(out)})
    ref = compress_scene(sample_grd, tmp_path / "ref.sarc", quality=1, block_size=128, device="cpu",
                         reproducible=True).output
    assert out.read_bytes() == ref.read_bytes()


def test_compress_with_a_maximum_error_holds_it_on_every_sample(run, sample_grd, tmp_path):
    import numpy as np
    import rasterio

    out, back = tmp_path / "bounded.sarc", tmp_path / "bounded.tif"
    run("compress", {"INPUT": str(sample_grd), "QUALITY": 1, "MAX_ERROR_DB": 0.5, "OUTPUT": str(out)})
    run("decompress", {"INPUT": str(out), "OUTPUT": str(back)})
    with rasterio.open(sample_grd) as a, rasterio.open(back) as b:
        x, y = a.read().astype("float64"), b.read().astype("float64")
    valid = x > 0
    assert valid.sum() > 1000 and (y[valid] > 0).all()
    err = np.abs(20 * np.log10(y[valid]) - 20 * np.log10(x[valid]))
    assert err.max() <= 0.5 + 1e-9


def test_compress_with_effort_writes_a_container_that_decodes(run, sample_grd, tmp_path):
    out, back = tmp_path / "refined.sarc", tmp_path / "refined.tif"
    result = run("compress", {"INPUT": str(sample_grd), "QUALITY": 1, "EFFORT": 2, "OUTPUT": str(out)})
    assert result["BYTES"] == out.stat().st_size > 0
    assert _size(run("decompress", {"INPUT": str(out), "OUTPUT": str(back)})["OUTPUT"])[2] == 2


def test_compress_with_the_quality_in_db_uses_the_librarys_choice(run, sample_grd, tmp_path):
    from sar_codec.codec import compress_scene

    result = run("compress", {"INPUT": str(sample_grd), "QUALITY": 1, "QUALITY_IN_DB": True,
                              "OUTPUT": str(tmp_path / "db.sarc")})
    ref = compress_scene(sample_grd, tmp_path / "ref.sarc", quality=1, allocation="db", device="cpu")
    assert result["QUALITY_USED"] == ref.quality > 1  # the sample spans far more dB per unit than the reference


def test_decompress_gives_a_layer_in_the_input_crs(run, grd_container, sample_grd, tmp_path):
    result = run("decompress", {"INPUT": str(grd_container[0]), "OUTPUT": str(tmp_path / "full.tif")})
    layer = _layer(result["OUTPUT"])
    assert _size(result["OUTPUT"]) == (256, 256, 2)
    assert layer.crs().isValid() and _crs(result["OUTPUT"]) == _crs(sample_grd)
    assert _gcp_count(result["OUTPUT"]) == _gcp_count(sample_grd) > 0


def test_decompress_exact_is_the_librarys_exact_decode(run, grd_container, tmp_path):
    import numpy as np
    import rasterio

    from sar_codec.codec import decompress_scene

    result = run("decompress", {"INPUT": str(grd_container[0]), "WINDOW": "0 0 64 64", "EXACT": True,
                                "OUTPUT": str(tmp_path / "exact.tif")})
    ref = decompress_scene(grd_container[0], tmp_path / "ref.tif", window=(0, 0, 64, 64), device="cpu", exact=True)
    with rasterio.open(result["OUTPUT"]) as a, rasterio.open(ref) as b:
        assert np.array_equal(a.read(), b.read())


def test_decompress_window_and_extent(run, grd_container, sample_grd, tmp_path):
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsCoordinateTransform,
        QgsProject,
        QgsRectangle,
    )

    result = run("decompress", {"INPUT": str(grd_container[0]), "WINDOW": "64 32 100 50", "COG": True,
                                "OUTPUT": str(tmp_path / "window.tif")})
    assert _size(result["OUTPUT"]) == (100, 50, 2)
    assert _crs(result["OUTPUT"]) == _crs(sample_grd)
    # the middle of the scene, given in Web Mercator: reprojected to the GCPs' CRS by the algorithm
    full = _layer(sample_grd)
    e = full.extent()
    middle = QgsRectangle(e.xMinimum() + 0.4 * e.width(), e.yMinimum() + 0.4 * e.height(),
                          e.xMinimum() + 0.6 * e.width(), e.yMinimum() + 0.6 * e.height())
    mercator = QgsCoordinateReferenceSystem("EPSG:3857")
    m = QgsCoordinateTransform(full.crs(), mercator, QgsProject.instance()).transformBoundingBox(middle)
    extent = f"{m.xMinimum()},{m.xMaximum()},{m.yMinimum()},{m.yMaximum()} [EPSG:3857]"
    result = run("decompress", {"INPUT": str(grd_container[0]), "EXTENT": extent,
                                "OUTPUT": str(tmp_path / "extent.tif")})
    part = _layer(result["OUTPUT"])
    width, height, _ = _size(result["OUTPUT"])
    assert 0 < width < 256 and 0 < height < 256
    assert part.crs().toWkt() == full.crs().toWkt()
    assert part.extent().intersects(middle)


def test_two_polarisation_files(run, sample_pols, tmp_path):
    vv, vh = sample_pols
    out = tmp_path / "pols.sarc"
    run("compress", {"INPUT": str(vv), "SECOND_INPUT": str(vh), "QUALITY": 1, "OUTPUT": str(out)})
    result = run("decompress", {"INPUT": str(out), "OUTPUT": str(tmp_path / "pols.tif")})
    assert _size(result["OUTPUT"]) == (256, 256, 2)
    assert _layer(result["OUTPUT"]).crs().authid() == "EPSG:32631"


@pytest.mark.parametrize("params, message", [
    ({"QUALITY": 1, "TARGET_BPP": 0.5}, "Give either a quality or a target bpp, not both."),
    ({"QUALITY": 1, "MAX_ERROR_DB": 0.0}, "must be a positive number of dB"),
    ({"QUALITY": 1, "EFFORT": 5, "REPRODUCIBLE": True}, "not reproducible"),
    ({"TARGET_BPP": 0.5, "QUALITY_IN_DB": True}, "with a target bpp the rate chooses it"),
    ({"QUALITY": 99}, "QUALITY"),  # the parameter's range is the installed qualities
])
def test_compress_errors_are_the_library_sentences(run, sample_grd, tmp_path, params, message):
    from qgis.core import QgsProcessingException

    out = tmp_path / "bad.sarc"
    with pytest.raises(QgsProcessingException, match=message):
        run("compress", {"INPUT": str(sample_grd), **params, "OUTPUT": str(out)})
    assert not out.exists()


def test_decompress_rejects_a_bad_window(run, grd_container, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="four whole numbers"):
        run("decompress", {"INPUT": str(grd_container[0]), "WINDOW": "0 0 big",
                           "OUTPUT": str(tmp_path / "x.tif")})
    with pytest.raises(QgsProcessingException, match="is not inside the 256x256 scene"):
        run("decompress", {"INPUT": str(grd_container[0]), "WINDOW": "200 0 100 10",
                           "OUTPUT": str(tmp_path / "x.tif")})
    assert not (tmp_path / "x.tif").exists()


def test_compare_writes_a_report_and_an_error_map_in_the_input_crs(run, sample_grd, tmp_path):
    folder = tmp_path / "report"
    feedback = cancelling_feedback(after=1000)  # never cancels; records progress
    result = run("compare", {"INPUT": str(sample_grd), "MODELS": ["mbt2018-mean"], "QUALITIES": "1",
                             "CROP": 128, "OUTPUT": str(folder)}, feedback=feedback)
    assert result["BEST"] == "mbt2018-mean q1"
    report = json.loads((folder / "report.json").read_text())
    assert report["crop"]["width"] == 128 and report["points"][0]["label"] == "mbt2018-mean q1"
    error_map = result["ERROR_MAP"]
    error_map = error_map.source() if hasattr(error_map, "source") else error_map
    assert _layer(error_map).bandCount() == 2 and _crs(error_map) == _crs(sample_grd)
    assert feedback.reports and feedback.reports[-1] == pytest.approx(100)


# --- cancellation: the library stops at the next block and leaves nothing behind -----------------


def test_cancelled_compress_leaves_no_file(run, sample_grd, tmp_path):
    from qgis.core import QgsProcessingException

    feedback = cancelling_feedback(after=30)  # in the second pass, after a block was written
    out = tmp_path / "cancelled.sarc"
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run("compress", {"INPUT": str(sample_grd), "QUALITY": 1, "BLOCK_SIZE": 128, "OUTPUT": str(out)},
            feedback=feedback)
    assert len(feedback.reports) >= 1 and feedback.reports[-1] < 100
    assert list(tmp_path.iterdir()) == []


def test_cancelled_decompress_leaves_no_file(run, grd_container, tmp_path):
    from qgis.core import QgsProcessingException

    feedback = cancelling_feedback()  # at the first progress report, after the first block
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run("decompress", {"INPUT": str(grd_container[0]), "OUTPUT": str(tmp_path / "cancelled.tif")},
            feedback=feedback)
    assert feedback.reports == [25.0]
    assert list(tmp_path.iterdir()) == []


def test_cancelled_compare_writes_no_report(run, sample_grd, tmp_path):
    from qgis.core import QgsProcessingException

    folder = tmp_path / "report"
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run("compare", {"INPUT": str(sample_grd), "MODELS": ["mbt2018-mean"], "QUALITIES": "1", "CROP": 128,
                        "OUTPUT": str(folder)}, feedback=cancelling_feedback())
    assert not folder.exists() or list(folder.iterdir()) == []


# --- real Sentinel-1 data ----------------------------------------------------------------------------


def test_real_dual_pol_chip_round_trip(run, real_chip, tmp_path):
    out = tmp_path / "chip.sarc"
    result = run("compress", {"INPUT": str(real_chip), "QUALITY": 2, "OUTPUT": str(out)})
    assert result["BPP"] < 32  # far below the float32 source
    decoded = run("decompress", {"INPUT": str(out), "OUTPUT": str(tmp_path / "chip.tif")})["OUTPUT"]
    source, layer = _layer(real_chip), _layer(decoded)
    assert _size(decoded) == _size(real_chip) == (512, 512, 2)
    assert layer.crs().authid() == source.crs().authid() == "EPSG:4326"
    assert layer.extent().toString(6) == source.extent().toString(6)
