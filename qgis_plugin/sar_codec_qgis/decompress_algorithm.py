"""Decompress: a .sarc container (or a part of it) to a GeoTIFF or COG, loaded as a raster layer."""

from __future__ import annotations

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from .algorithm import SarCodecAlgorithm


class DecompressAlgorithm(SarCodecAlgorithm):
    """One call of ``sar_codec.codec.decompress_scene``."""

    EXTENT = "EXTENT"
    WINDOW = "WINDOW"
    COG = "COG"
    EXACT = "EXACT"

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
            self.INPUT, self.tr("Compressed container"), extension="sarc"))
        self.addParameter(QgsProcessingParameterExtent(
            self.EXTENT, self.tr("Decode only this extent"), optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.WINDOW, self.tr("Decode only this pixel window: column row width height"), optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            self.COG, self.tr("Write a Cloud Optimized GeoTIFF"), defaultValue=False))
        self.addParameter(QgsProcessingParameterBoolean(
            self.EXACT, self.tr("Exact: the same output bytes on every machine (slower)"), defaultValue=False))
        self.addParameter(self.device_parameter())
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Decoded scene")))

    def processAlgorithm(self, parameters, context, feedback):
        codec = self.library()
        container = self.parameterAsFile(parameters, self.INPUT, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        result = self.call_library(
            codec.decompress_scene, container, output,
            window=self.whole_numbers(parameters, self.WINDOW, context, "four whole numbers",
                                      "column row width height, e.g. 0 0 512 512", count=4),
            bbox=self.bbox(codec, container, parameters, context),
            cog=self.parameterAsBoolean(parameters, self.COG, context),
            exact=self.parameterAsBoolean(parameters, self.EXACT, context),
            device=self.parameterAsEnumString(parameters, self.DEVICE, context),
            overwrite=True,  # QGIS asked before choosing an existing file; the library never overwrites an input
            feedback=feedback)
        feedback.pushInfo(f"Decoded {container} to {result}")
        return {self.OUTPUT: str(result)}

    def bbox(self, codec, container: str, parameters, context) -> list[float] | None:
        """EXTENT as (minx, miny, maxx, maxy) in the scene's CRS (the GCPs' CRS for a GCP scene)."""
        if parameters.get(self.EXTENT) is None:
            return None
        crs = QgsCoordinateReferenceSystem()
        try:
            georef = codec.container_info(container)["scene"]["georef"]
            wkt = georef.get("crs") or georef.get("gcp_crs")
        except (OSError, KeyError, TypeError, ValueError):
            wkt = None  # decompress_scene reports the unreadable container
        if wkt:
            crs = QgsCoordinateReferenceSystem.fromWkt(wkt)
        rect = self.parameterAsExtent(parameters, self.EXTENT, context, crs)
        if rect.isNull() or rect.isEmpty():
            return None
        return [rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()]
