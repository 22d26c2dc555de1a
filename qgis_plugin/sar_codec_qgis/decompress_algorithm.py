"""Decompress: a .sarc container (or a part of it) to a GeoTIFF or COG, loaded as a raster layer."""

from __future__ import annotations

import re

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from .algorithm import SarCodecAlgorithm


class DecompressAlgorithm(SarCodecAlgorithm):
    """One call of ``sar_codec.codec.decompress_scene``."""

    def name(self) -> str:
        return "decompress"

    def displayName(self) -> str:
        return self.tr("Decompress container")

    def shortHelpString(self) -> str:
        return self.tr(
            "Decodes a .sarc container to a GeoTIFF, in the units, data type, nodata and georeferencing "
            "(ground control points included) of the scene that was compressed.\n\n"
            "To decode only part of the scene, give EXTENT (in any CRS; it is reprojected to the scene's) or "
            "WINDOW as four pixel numbers, column row width height (e.g. 0 0 512 512), not both: only the "
            "blocks that cover it are decoded. COG writes a Cloud Optimized GeoTIFF. EXACT computes the last "
            "transform in fixed point too, for the same output bytes on every machine (slower; by default it "
            "runs in floating point, a fraction of a dB from the exact values).")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterFile(
            "INPUT", self.tr("Compressed container"), extension="sarc"))
        self.addParameter(QgsProcessingParameterExtent(
            "EXTENT", self.tr("Decode only this extent"), optional=True))
        self.addParameter(QgsProcessingParameterString(
            "WINDOW", self.tr("Decode only this pixel window: column row width height"), optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            "COG", self.tr("Write a Cloud Optimized GeoTIFF"), defaultValue=False))
        self.addParameter(QgsProcessingParameterBoolean(
            "EXACT", self.tr("Exact: the same output bytes on every machine (slower)"), defaultValue=False))
        self.addParameter(self.device_parameter())
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Decoded scene")))

    def processAlgorithm(self, parameters, context, feedback):
        codec = self.library()
        container = self.parameterAsFile(parameters, "INPUT", context)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        result = self.call_library(
            codec.decompress_scene, container, output,
            window=self.window(parameters, context),
            bbox=self.bbox(codec, container, parameters, context),
            cog=self.parameterAsBoolean(parameters, "COG", context),
            exact=self.parameterAsBoolean(parameters, "EXACT", context),
            device=self.parameterAsEnumString(parameters, "DEVICE", context),
            overwrite=True,  # QGIS asked before choosing an existing file; the library never overwrites an input
            feedback=feedback)
        feedback.pushInfo(f"Decoded {container} to {result}")
        return {"OUTPUT": str(result)}

    def window(self, parameters, context) -> list[int] | None:
        text = self.parameterAsString(parameters, "WINDOW", context).strip()
        if not text:
            return None
        numbers = re.split(r"[\s,;]+", text)
        if len(numbers) != 4 or not all(re.fullmatch(r"\d+", n) for n in numbers):
            raise QgsProcessingException(f"WINDOW {text!r} is not four whole numbers; give column row width "
                                         "height, e.g. 0 0 512 512.")
        return [int(n) for n in numbers]

    def bbox(self, codec, container: str, parameters, context) -> list[float] | None:
        """EXTENT as (minx, miny, maxx, maxy) in the scene's CRS (the GCPs' CRS for a GCP scene)."""
        if parameters.get("EXTENT") is None:
            return None
        crs = QgsCoordinateReferenceSystem()
        try:
            georef = codec.container_info(container)["scene"]["georef"]
            wkt = georef.get("crs") or georef.get("gcp_crs")
        except (OSError, KeyError, TypeError, ValueError):
            wkt = None  # decompress_scene reports the unreadable container
        if wkt:
            crs = QgsCoordinateReferenceSystem.fromWkt(wkt)
        rect = self.parameterAsExtent(parameters, "EXTENT", context, crs)
        if rect.isNull() or rect.isEmpty():
            return None
        return [rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()]
