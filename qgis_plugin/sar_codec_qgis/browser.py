"""Open a .sarc from the Browser panel or by dropping it on the map: the same VRT as "Open container as layer".

Browsing must not write beside the user's files, so these VRTs go to a cache folder of the QGIS profile, one per
container path (rewritten when the container is newer than its VRT).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from qgis.core import QgsApplication, QgsDataItemProvider, QgsDataProvider, QgsLayerItem, QgsProject
from qgis.gui import QgsCustomDropHandler

from .open_algorithm import enable_gdal_reading, layer_or_error

SUFFIX = ".sarc"


def cached_vrt(container: str | Path) -> Path:
    """The VRT of ``container`` in the profile's cache folder, written (again) when missing or older."""
    container = Path(container).resolve()
    folder = Path(QgsApplication.qgisSettingsDirPath()) / "cache" / "sar_codec"
    folder.mkdir(parents=True, exist_ok=True)
    vrt_path = folder / f"{container.stem}-{hashlib.sha1(str(container).encode()).hexdigest()[:12]}.vrt"
    if not vrt_path.exists() or vrt_path.stat().st_mtime < container.stat().st_mtime:
        vrt = enable_gdal_reading()
        vrt.write_vrt(container, vrt_path, overwrite=True)
    return vrt_path


class SarcDataItemProvider(QgsDataItemProvider):
    """Shows .sarc files in the Browser as raster layers (double-click or drag them onto the map)."""

    def name(self) -> str:
        return "sar-codec containers"

    def dataProviderKey(self) -> str:
        return "gdal"

    def capabilities(self) -> int:
        return int(QgsDataProvider.File)

    def createDataItem(self, path: str, parentItem):
        if not path.lower().endswith(SUFFIX) or not os.path.isfile(path):
            return None
        try:
            uri = str(cached_vrt(path))
        except (ImportError, OSError, ValueError, LookupError):  # sar_codec missing, or a damaged container
            return None
        item = QgsLayerItem(parentItem, Path(path).name, path, uri, QgsLayerItem.Raster, "gdal")
        item.setToolTip(f"sar-codec container, read through {uri}")
        return item


class SarcDropHandler(QgsCustomDropHandler):
    """A .sarc dropped on the map canvas (from a file manager) opens as a layer."""

    def customUriProviderKey(self) -> str:
        return "sar_codec"

    def handleFileDrop(self, file: str) -> bool:
        if not file.lower().endswith(SUFFIX):
            return False
        add_container_layer(file)
        return True


def add_container_layer(container: str | Path):
    """Add ``container`` to the current project through its cached VRT; returns the layer."""
    layer = layer_or_error(cached_vrt(container), Path(container).stem)
    QgsProject.instance().addMapLayer(layer)
    return layer
