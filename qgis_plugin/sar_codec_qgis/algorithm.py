"""What the three algorithms share: parameter names and builders, the library check, the feedback wiring and
the error translation (QuickOSM's shape: names are class constants, never repeated literals)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProviderRegistry,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from .dependencies import MissingLibraryError, library_module, load_library

DEVICES = ["auto", "cpu", "cuda"]
ICON = Path(__file__).resolve().parent / "icon.svg"


class SarCodecAlgorithm(QgsProcessingAlgorithm):
    """Base of the provider's algorithms: each makes one call into sar_codec."""

    # parameter and output names shared by several algorithms (each algorithm adds its own)
    INPUT = "INPUT"
    SECOND_INPUT = "SECOND_INPUT"
    DEVICE = "DEVICE"
    OUTPUT = "OUTPUT"

    def tr(self, text: str) -> str:
        return QCoreApplication.translate("SarCodec", text)

    def createInstance(self):
        return type(self)()

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def checkParameterValues(self, parameters, context):
        """Refuse to start, with install instructions, when sar_codec cannot be imported."""
        try:
            load_library()
        except MissingLibraryError as exc:
            return False, str(exc)
        return super().checkParameterValues(parameters, context)

    # --- parameters shared by several algorithms ------------------------------------------

    def device_parameter(self) -> QgsProcessingParameterEnum:
        param = QgsProcessingParameterEnum(self.DEVICE, self.tr("Device the model runs on"), options=DEVICES,
                                           defaultValue="auto")
        param.setUsesStaticStrings(True)
        return param

    @staticmethod
    def advanced(param: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
        """``param``, shown under Advanced parameters."""
        param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        return param

    @classmethod
    def optional_integer(cls, name: str, description: str, minimum: int, maximum: int | None = None,
                         advanced: bool = False) -> QgsProcessingParameterNumber:
        """An optional whole number (empty: the library's default), shown under Advanced when ``advanced``."""
        param = QgsProcessingParameterNumber(name, description, type=QgsProcessingParameterNumber.Integer,
                                             optional=True, minValue=minimum)
        if maximum is not None:
            param.setMaximum(maximum)
        return cls.advanced(param) if advanced else param

    @staticmethod
    def quality_range() -> tuple[int, int] | None:
        """The installed quality levels, lowest and highest (None when the library is missing or older)."""
        try:
            return library_module("registry").quality_range()
        except (ImportError, AttributeError):
            return None

    def model_parameter(self, name: str, description: str, multiple: bool = False) -> QgsProcessingParameterEnum:
        """Installed architectures, from sar_codec's model table (none when the library is missing).

        A single choice defaults to the library's default model; a multiple one is optional, empty meaning all.
        """
        try:
            registry = library_module("registry")
            options = sorted({e.architecture for e in registry.model_table()})
            default = registry.DEFAULT_ARCHITECTURE if registry.DEFAULT_ARCHITECTURE in options else None
        except ImportError:  # optional then, so that checkParameterValues can give the install message
            options, default = [], None
        param = QgsProcessingParameterEnum(name, description, options=options, allowMultiple=multiple,
                                           defaultValue=None if multiple else default,
                                           optional=multiple or not options)
        param.setUsesStaticStrings(True)
        return param

    def input_parameters(self) -> list:
        return [
            QgsProcessingParameterRasterLayer(
                self.INPUT, self.tr("Sentinel-1 scene (one or two polarisations)")),
            QgsProcessingParameterRasterLayer(
                self.SECOND_INPUT, self.tr("Second polarisation (e.g. VH), when the scene holds only one"),
                optional=True),
        ]

    # --- reading parameters ------------------------------------------------------------------

    def raster_path(self, parameters, name: str, context) -> str | None:
        """The file behind a raster layer parameter (None when an optional one is not set)."""
        if parameters.get(name) is None:
            return None
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(f"{name} is not a raster layer or file that QGIS can open.")
        return layer_path(layer, name)

    def input_paths(self, parameters, context) -> list[str]:
        paths = [self.raster_path(parameters, self.INPUT, context)]
        second = self.raster_path(parameters, self.SECOND_INPUT, context)
        return paths + [second] if second else paths

    def optional_number(self, parameters, name: str, context, integer: bool = False) -> float | int | None:
        if parameters.get(name) is None:
            return None
        if integer:
            return self.parameterAsInt(parameters, name, context)
        return self.parameterAsDouble(parameters, name, context)

    def whole_numbers(self, parameters, name: str, context, what: str, example: str, count: int | None = None
                      ) -> list[int] | None:
        """A text parameter of ``count`` (or any number of) whole numbers separated by spaces, commas or
        semicolons; None when empty, else a one-sentence error saying ``what`` it must be, with an ``example``."""
        text = self.parameterAsString(parameters, name, context).strip()
        if not text:
            return None
        numbers = [t for t in re.split(r"[\s,;]+", text) if t]
        if not all(re.fullmatch(r"\d+", n) for n in numbers) or (count is not None and len(numbers) != count):
            raise QgsProcessingException(f"{name} {text!r} is not {what}; give {example}.")
        return [int(n) for n in numbers]

    # --- calling the library -----------------------------------------------------------------

    def call_library(self, function: Callable[..., Any], *args, feedback: QgsProcessingFeedback | None,
                     **kwargs) -> Any:
        """Call a sar_codec function with progress and cancellation wired to ``feedback``.

        The library checks ``cancelled()`` once per block and then removes what it had started writing;
        any error it raises on purpose becomes a QgsProcessingException with its one-sentence message.
        """
        errors = library_module("errors")
        feedback = feedback if feedback is not None else QgsProcessingFeedback()

        def progress(fraction: float) -> None:
            feedback.setProgress(100.0 * fraction)

        try:
            return function(*args, progress=progress, cancelled=feedback.isCanceled, **kwargs)
        except errors.SarCodecError as exc:
            raise QgsProcessingException(str(exc)) from exc

    def library(self):
        """``sar_codec.codec``, or a QgsProcessingException saying how to install it."""
        try:
            return load_library()
        except MissingLibraryError as exc:
            raise QgsProcessingException(str(exc)) from exc


def layer_path(layer: QgsRasterLayer, name: str) -> str:
    """The file path of a GDAL raster layer; other providers are refused with a clear message."""
    if layer.providerType() != "gdal":
        raise QgsProcessingException(f"{name} ({layer.name()}) is a {layer.providerType()} layer; "
                                     "sar_codec reads raster files, so save it as a GeoTIFF first.")
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    return parts.get("path") or layer.source()
