"""Compare quality: learned models against JPEG, JPEG 2000, JPEG XL, LERC and lossless on the user's scene."""

from __future__ import annotations

import re

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputString,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from .algorithm import SarCodecAlgorithm
from .dependencies import library_module


class CompareAlgorithm(SarCodecAlgorithm):
    """One call of ``sar_codec.compare.compare_scene``."""

    def name(self) -> str:
        return "compare"

    def displayName(self) -> str:
        return self.tr("Compare quality")

    def shortHelpString(self) -> str:
        return self.tr(
            "Compresses the scene (a centred crop of at most CROP pixels a side) with each chosen model and "
            "quality level through the real .sarc path, codes the same area with JPEG, JPEG 2000, JPEG XL and LERC "
            "at matched rates, and measures rate, PSNR, SSIM and dB errors against the original.\n\n"
            "MODELS and QUALITIES (e.g. 1,4,7) default to every installed one. OUTPUT is a folder that receives "
            "report.json, report.csv, rd.png (rate-distortion curves), quicklooks and error_db.tif, the dB error "
            "(decoded minus original) of the best learned point, which is loaded as a layer; earlier reports in "
            "that folder are replaced.")

    def initAlgorithm(self, config=None):
        for param in self.input_parameters():
            self.addParameter(param)
        self.addParameter(self.model_parameter("MODELS", self.tr("Models (empty: every installed one)"),
                                               multiple=True))
        self.addParameter(QgsProcessingParameterString(
            "QUALITIES", self.tr("Quality levels, e.g. 1,4,7 (empty: all)"), optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "CROP", self.tr("Largest side of the centred area compared, in pixels (empty: the default)"),
            type=QgsProcessingParameterNumber.Integer, optional=True, minValue=64))
        self.addParameter(self.device_parameter())
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT", self.tr("Report folder")))
        self.addOutput(QgsProcessingOutputRasterLayer("ERROR_MAP", self.tr("Error map (dB, best learned point)")))
        self.addOutput(QgsProcessingOutputFile("REPORT", self.tr("Report (JSON)")))
        self.addOutput(QgsProcessingOutputFile("RD_PLOT", self.tr("Rate-distortion plot")))
        self.addOutput(QgsProcessingOutputString("BEST", self.tr("Best learned point")))

    def processAlgorithm(self, parameters, context, feedback):
        self.library()
        compare = library_module("compare")  # after load_library, which checked torch
        inputs = self.input_paths(parameters, context)
        out_dir = self.parameterAsString(parameters, "OUTPUT", context)
        options = {}
        crop = self.optional_number(parameters, "CROP", context, integer=True)
        if crop is not None:
            options["crop"] = crop
        report = self.call_library(
            compare.compare_scene, inputs, out_dir,
            models=self.parameterAsEnumStrings(parameters, "MODELS", context) or None,
            qualities=self.qualities(parameters, context),
            device=self.parameterAsEnumString(parameters, "DEVICE", context),
            overwrite=True, feedback=feedback, **options)
        outputs = report["outputs"]
        for point in report["points"]:
            psnr = point["metrics"]["all"].get("psnr")
            feedback.pushInfo(f"{point['label']}: {point['bpp']:.3f} bpp, PSNR "
                              f"{'-' if psnr is None else format(psnr, '.2f')} dB")
        error_map = outputs.get("error_map")
        if error_map:
            context.addLayerToLoadOnCompletion(error_map, QgsProcessingContext.LayerDetails(
                self.tr("Error map (dB)"), context.project(), "ERROR_MAP"))
        return {"OUTPUT": out_dir, "ERROR_MAP": error_map, "REPORT": outputs["json"],
                "RD_PLOT": outputs["rd_plot"], "BEST": report.get("best_learned")}

    def qualities(self, parameters, context) -> list[int] | None:
        text = self.parameterAsString(parameters, "QUALITIES", context).strip()
        if not text:
            return None
        levels = [t for t in re.split(r"[\s,;]+", text) if t]
        if not all(re.fullmatch(r"\d+", t) for t in levels):
            raise QgsProcessingException(f"QUALITIES {text!r} is not a list of whole numbers; give e.g. 1,4,7.")
        return [int(t) for t in levels]
