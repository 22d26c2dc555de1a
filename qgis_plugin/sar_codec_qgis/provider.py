"""The "SAR codec" Processing provider: one algorithm per module."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithm import ICON
from .compare_algorithm import CompareAlgorithm
from .compress_algorithm import CompressAlgorithm
from .decompress_algorithm import DecompressAlgorithm
from .open_algorithm import OpenAlgorithm, enable_gdal_reading


class SarCodecProvider(QgsProcessingProvider):
    """Compress Sentinel-1 scenes to .sarc containers, decode them, and compare quality levels."""

    def id(self) -> str:
        return "sarcodec"

    def name(self) -> str:
        return "SAR codec"

    def longName(self) -> str:
        return "SAR codec: learned compression of Sentinel-1 GRD scenes"

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def svgIconPath(self) -> str:
        return str(ICON)

    def loadAlgorithms(self) -> None:
        try:
            enable_gdal_reading()  # VRTs of containers opened earlier (saved projects) read too
        except ImportError:
            pass  # sar_codec is not installed: the algorithms say how to install it when run
        for algorithm in (CompressAlgorithm(), DecompressAlgorithm(), CompareAlgorithm(), OpenAlgorithm()):
            self.addAlgorithm(algorithm)

    def supportedOutputRasterLayerExtensions(self) -> list[str]:
        return ["tif"]  # the core writes GeoTIFF (or COG) only
