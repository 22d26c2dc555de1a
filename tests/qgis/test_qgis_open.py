"""Open container as layer: a .sarc on the map through its VRT, rendered headless, with extent, CRS and values."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = pytest.mark.qgis


def _compress(source, folder, point):
    from sar_codec.codec import compress_scene

    return compress_scene(source, folder / (source.stem + ".sarc"), architecture=point[0], quality=point[1],
                          block_size=128, device="cpu").output


def _render(layer, size=(300, 300)):
    """Render ``layer`` alone, fitted to its extent in its CRS, with QgsMapRendererParallelJob."""
    from qgis.core import QgsMapRendererParallelJob, QgsMapSettings
    from qgis.PyQt.QtCore import QCoreApplication, QSize
    from qgis.PyQt.QtGui import QColor

    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(layer.extent())
    settings.setOutputSize(QSize(*size))
    settings.setBackgroundColor(QColor(255, 0, 255))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    deadline = time.monotonic() + 600
    while job.isActive() and time.monotonic() < deadline:  # sleeping lets the render threads take the GIL
        QCoreApplication.processEvents()
        time.sleep(0.05)
    assert not job.isActive(), "rendering did not finish"
    assert not [e.message for e in job.errors()]
    return settings, job.renderedImage()


def _drawn_fraction(image) -> float:
    """The share of pixels that are not the magenta background."""
    ptr = image.constBits()
    ptr.setsize(image.sizeInBytes())
    argb = np.frombuffer(ptr, dtype=np.uint32).reshape(image.height(), -1)[:, : image.width()]
    return float(np.mean(argb & 0xFFFFFF != 0xFF00FF))


@pytest.fixture(scope="module")
def utm_scene(tmp_path_factory, point):
    from sar_codec.sample import write_sample

    folder = tmp_path_factory.mktemp("open")
    source = write_sample(folder / "utm.tif", "db", 256)
    return source, _compress(source, folder, point)


def test_open_adds_a_layer_with_band_names_and_renders_it(run, utm_scene, tmp_path):
    from qgis.core import QgsProcessingContext, QgsProject, QgsRasterLayer

    source, sarc = utm_scene
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    import processing

    result = processing.run("sarcodec:open", {"INPUT": str(sarc), "OUTPUT": str(tmp_path / "utm.vrt")},
                            context=context)
    assert result["OUTPUT"] == str(tmp_path / "utm.vrt") and result["LAYER"] == result["OUTPUT"]
    assert list(context.layersToLoadOnCompletion()) == [result["OUTPUT"]]
    assert context.layersToLoadOnCompletion()[result["OUTPUT"]].name == "utm"
    layer = QgsRasterLayer(result["OUTPUT"], "utm", "gdal")
    reference = QgsRasterLayer(str(source), "source", "gdal")
    assert layer.isValid() and layer.bandCount() == 2
    assert "VV" in layer.bandName(1) and "VH" in layer.bandName(2)
    assert layer.crs().authid() == reference.crs().authid() == "EPSG:32631"
    assert layer.extent() == reference.extent()
    settings, image = _render(layer)
    assert settings.destinationCrs().authid() == "EPSG:32631"
    assert settings.visibleExtent().contains(layer.extent())
    assert _drawn_fraction(image) > 0.5


def test_identify_shows_decoded_values(run, utm_scene, tmp_path):
    from qgis.core import QgsPointXY, QgsRaster, QgsRasterLayer

    import sar_codec

    _, sarc = utm_scene
    path = run("open", {"INPUT": str(sarc), "OUTPUT": str(tmp_path / "id.vrt")})["OUTPUT"]
    layer = QgsRasterLayer(path, "id", "gdal")
    with sar_codec.open(sarc) as ds:
        row, col = 100, 200
        x, y = ds.transform * (col + 0.5, row + 0.5)
        expected = ds.read(window=((row, row + 1), (col, col + 1)))[:, 0, 0]
    values = layer.dataProvider().identify(QgsPointXY(x, y), QgsRaster.IdentifyFormatValue).results()
    assert [values[1], values[2]] == pytest.approx([float(v) for v in expected], rel=1e-6)


def test_a_gcp_scene_is_shown_as_qgis_shows_gcp_geotiffs(run, sample_grd, point, tmp_path):
    from qgis.core import QgsRasterLayer

    sarc = _compress(sample_grd, tmp_path, point)
    layer = QgsRasterLayer(run("open", {"INPUT": str(sarc)})["OUTPUT"], "grd", "gdal")
    assert run("open", {"INPUT": str(sarc)})["OUTPUT"] == str(sarc.with_suffix(".vrt"))  # the default, beside it
    reference = QgsRasterLayer(str(sample_grd), "source", "gdal")
    assert layer.isValid() and layer.crs().authid() == reference.crs().authid() == "EPSG:4326"
    assert layer.extent().toString(8) == reference.extent().toString(8)
    _, image = _render(layer)
    assert _drawn_fraction(image) > 0.3


def test_a_bad_container_is_one_sentence(run, tmp_path):
    from qgis.core import QgsProcessingException

    bad = tmp_path / "bad.sarc"
    bad.write_bytes(b"not a container")
    with pytest.raises(QgsProcessingException, match="not a sar-codec container"):
        run("open", {"INPUT": str(bad)})
    assert not (tmp_path / "bad.vrt").exists()


def test_real_chip_opens_and_renders(run, real_chip, point, tmp_path):
    from qgis.core import QgsRasterLayer

    sarc = _compress(real_chip, tmp_path, point)
    layer = QgsRasterLayer(run("open", {"INPUT": str(sarc)})["OUTPUT"], "chip", "gdal")
    reference = QgsRasterLayer(str(real_chip), "source", "gdal")
    assert layer.crs().authid() == reference.crs().authid() and layer.extent() == reference.extent()
    _, image = _render(layer)
    assert _drawn_fraction(image) > 0.5


def test_browser_item_and_drop_open_a_container(plugin, utm_scene):
    from qgis.core import QgsLayerItem, QgsProject, QgsRasterLayer

    from sar_codec_qgis.browser import SarcDataItemProvider, SarcDropHandler

    _, sarc = utm_scene
    provider = SarcDataItemProvider()
    item = provider.createDataItem(str(sarc), None)
    assert isinstance(item, QgsLayerItem) and item.providerKey() == "gdal" and item.name() == sarc.name
    assert not item.uri().startswith(str(sarc.parent))  # browsing writes nothing beside the user's files
    layer = QgsRasterLayer(item.uri(), "browsed", "gdal")
    assert layer.isValid() and layer.bandCount() == 2 and layer.crs().authid() == "EPSG:32631"
    assert provider.createDataItem(str(sarc.with_suffix(".tif")), None) is None

    handler = SarcDropHandler()
    assert not handler.handleFileDrop("/tmp/scene.tif")
    assert handler.handleFileDrop(str(sarc))
    dropped = QgsProject.instance().mapLayersByName(sarc.stem)
    assert dropped and dropped[-1].isValid() and dropped[-1].source() == item.uri()
    QgsProject.instance().removeMapLayer(dropped[-1])
