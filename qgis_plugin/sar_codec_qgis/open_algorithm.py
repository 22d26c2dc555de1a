"""Open container as layer: a .sarc shown on the map without a full decode, through a GDAL VRT."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsRasterLayer,
)

from .algorithm import SarCodecAlgorithm
from .dependencies import MissingLibraryError, library_module


def enable_gdal_reading():
    """Let QGIS's GDAL run sar_codec's VRT pixel function in this process; returns ``sar_codec.vrt``.

    The module is trusted both in the process environment (read by GDAL when nothing overrides it) and as a
    GDAL config option, which wins over the environment.
    """
    from osgeo import gdal

    vrt = library_module("vrt")
    vrt.enable_in_process()
    gdal.SetConfigOption("GDAL_VRT_ENABLE_PYTHON", os.environ["GDAL_VRT_ENABLE_PYTHON"]
                         if "GDAL_VRT_ENABLE_PYTHON" in os.environ else "TRUSTED_MODULES")
    gdal.SetConfigOption("GDAL_VRT_PYTHON_TRUSTED_MODULES", os.environ["GDAL_VRT_PYTHON_TRUSTED_MODULES"])
    return vrt


class OpenAlgorithm(SarCodecAlgorithm):
    """One call of ``sar_codec.vrt.write_vrt``, and the VRT added to the project as a raster layer."""

    def name(self) -> str:
        return "open"

    def displayName(self) -> str:
        return self.tr("Open container as layer")

    def shortHelpString(self) -> str:
        return self.tr(
            "Adds a .sarc container to the map as a raster layer without decoding it first: a small GDAL VRT "
            "(written beside the container unless OUTPUT says where) computes each tile QGIS draws from the "
            "container, at the overview level that fits the zoom. Bands are named by polarisation (VV, VH); "
            "values, data type, nodata and georeferencing (ground control points included) are the scene's, so "
            "Identify shows decoded values in the scene's units.\n\n"
            "The VRT names the container by its absolute path; run this again after moving the container.")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterFile(
            "INPUT", self.tr("Compressed container"), extension="sarc"))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT", self.tr("VRT that reads the container (default: beside it)"), self.tr("GDAL VRT (*.vrt)"),
            optional=True, createByDefault=False))
        self.addOutput(QgsProcessingOutputRasterLayer("LAYER", self.tr("Container layer")))

    def processAlgorithm(self, parameters, context, feedback):
        try:
            vrt = enable_gdal_reading()
        except MissingLibraryError as exc:
            raise QgsProcessingException(str(exc)) from exc
        errors = library_module("errors")
        container = Path(self.parameterAsFile(parameters, "INPUT", context))
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context) or str(default_vrt_path(container))
        try:
            path = vrt.write_vrt(container, output, overwrite=True)  # QGIS asked before choosing an existing file
        except errors.SarCodecError as exc:
            raise QgsProcessingException(str(exc)) from exc
        name = container.stem
        layer_or_error(path, name)
        context.addLayerToLoadOnCompletion(str(path), QgsProcessingContext.LayerDetails(name, context.project(),
                                                                                        "LAYER"))
        feedback.pushInfo(f"{container} opens through {path}")
        return {"OUTPUT": str(path), "LAYER": str(path)}


def layer_or_error(vrt_path: str | Path, name: str) -> QgsRasterLayer:
    """The GDAL raster layer of a container's VRT; a QgsProcessingException when QGIS cannot open it."""
    layer = QgsRasterLayer(str(vrt_path), name, "gdal")
    if not layer.isValid():
        raise QgsProcessingException(f"QGIS could not open {vrt_path}: {layer.error().summary()}")
    return layer


def default_vrt_path(container: Path) -> Path:
    """``container`` with ``.vrt`` when its folder is writable, else the same name in the temporary folder."""
    if os.access(container.resolve().parent, os.W_OK):
        return container.with_suffix(".vrt")
    return Path(tempfile.gettempdir()) / f"{container.stem}.vrt"
