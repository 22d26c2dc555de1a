"""Compare quality: learned models against JPEG, JPEG 2000, JPEG XL, LERC and lossless on the user's scene."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingOutputFile,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputString,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterString,
)

from .algorithm import SarCodecAlgorithm
from .dependencies import library_module


class CompareAlgorithm(SarCodecAlgorithm):
    """One call of ``sar_codec.compare.compare_scene``."""

    MODELS = "MODELS"
    QUALITIES = "QUALITIES"
    CROP = "CROP"
    ERROR_MAP = "ERROR_MAP"
    REPORT = "REPORT"
    RD_PLOT = "RD_PLOT"
    BEST = "BEST"

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
        self.addParameter(self.model_parameter(self.MODELS, self.tr("Models (empty: every installed one)"),
                                               multiple=True))
        self.addParameter(QgsProcessingParameterString(
            self.QUALITIES, self.tr("Quality levels, e.g. 1,4,7 (empty: all)"), optional=True))
        self.addParameter(self.optional_integer(
            self.CROP, self.tr("Largest side of the centred area compared, in pixels (empty: the default)"), 64))
        self.addParameter(self.device_parameter())
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT, self.tr("Report folder")))
        self.addOutput(QgsProcessingOutputRasterLayer(self.ERROR_MAP, self.tr("Error map (dB, best learned point)")))
        self.addOutput(QgsProcessingOutputFile(self.REPORT, self.tr("Report (JSON)")))
        self.addOutput(QgsProcessingOutputFile(self.RD_PLOT, self.tr("Rate-distortion plot")))
        self.addOutput(QgsProcessingOutputString(self.BEST, self.tr("Best learned point")))

    def processAlgorithm(self, parameters, context, feedback):
        self.library()
        compare = library_module("compare")  # after load_library, which checked torch
        inputs = self.input_paths(parameters, context)
        out_dir = self.parameterAsString(parameters, self.OUTPUT, context)
        options = {}
        crop = self.optional_number(parameters, self.CROP, context, integer=True)
        if crop is not None:
            options["crop"] = crop
        report = self.call_library(
            compare.compare_scene, inputs, out_dir,
            models=self.parameterAsEnumStrings(parameters, self.MODELS, context) or None,
            qualities=self.whole_numbers(parameters, self.QUALITIES, context, "a list of whole numbers", "e.g. 1,4,7"),
            device=self.parameterAsEnumString(parameters, self.DEVICE, context),
            overwrite=True, feedback=feedback, **options)
        outputs = report["outputs"]
        for point in report["points"]:
            psnr = point["metrics"]["all"].get("psnr")
            feedback.pushInfo(f"{point['label']}: {point['bpp']:.3f} bpp, PSNR "
                              f"{'-' if psnr is None else format(psnr, '.2f')} dB")
        error_map = outputs.get("error_map")
        if error_map:
            context.addLayerToLoadOnCompletion(error_map, QgsProcessingContext.LayerDetails(
                self.tr("Error map (dB)"), context.project(), self.ERROR_MAP))
        return {self.OUTPUT: out_dir, self.ERROR_MAP: error_map, self.REPORT: outputs["json"],
                self.RD_PLOT: outputs["rd_plot"], self.BEST: report.get("best_learned")}
