"""Compress: a Sentinel-1 raster (one or two polarisations) into a .sarc container."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
)

from .algorithm import SarCodecAlgorithm


class CompressAlgorithm(SarCodecAlgorithm):
    """One call of ``sar_codec.codec.compress_scene``."""

    MODEL = "MODEL"
    QUALITY = "QUALITY"
    TARGET_BPP = "TARGET_BPP"
    MAX_ERROR_DB = "MAX_ERROR_DB"
    BLOCK_SIZE = "BLOCK_SIZE"
    REPRODUCIBLE = "REPRODUCIBLE"
    EFFORT = "EFFORT"
    QUALITY_IN_DB = "QUALITY_IN_DB"
    BPP = "BPP"
    BYTES = "BYTES"
    QUALITY_USED = "QUALITY_USED"

    def name(self) -> str:
        return "compress"

    def displayName(self) -> str:
        return self.tr("Compress scene")

    def shortHelpString(self) -> str:
        return self.tr(
            "Compresses a Sentinel-1 GRD scene into a .sarc container with a learned model.\n\n"
            "INPUT is a raster in amplitude, power or dB (units are detected), with one or two polarisations; "
            "SECOND_INPUT adds a second single-polarisation raster (VH beside VV) on the same grid. "
            "Nodata is kept exactly and the georeferencing, ground control points included, is stored.\n\n"
            "Give QUALITY (1 = smallest file; `sar-codec models` lists the levels) or TARGET_BPP "
            "(the highest quality whose rate on sample blocks is at most this many bits per pixel), not both. "
            "MAX_ERROR_DB (optional) guarantees that no valid sample of the decoded scene is more than this many dB "
            "from the original (a residual layer over the learned one corrects what exceeds it). "
            "DEVICE auto uses a CUDA GPU when there is one. BLOCK_SIZE (advanced) is the unit that decoding "
            "an extent or window reads, a multiple of 64 pixels. REPRODUCIBLE (advanced) makes the encoder "
            "exact as well, so that the same scene gives the same container on every machine (slower); "
            "decoding is exact either way. EFFORT (advanced) refines each block's latent for this many steps: "
            "about 5 % fewer bits at 100, encoding tens of times slower (hyperprior models only, not with "
            "REPRODUCIBLE). QUALITY_IN_DB (advanced) reads QUALITY as the same trade-off in dB for every scene: a "
            "scene whose bands span many dB gets a higher level, a flat one a lower (fewer bits for the same error "
            "in dB over many scenes; not with TARGET_BPP).")

    def initAlgorithm(self, config=None):
        for param in self.input_parameters():
            self.addParameter(param)
        self.addParameter(self.model_parameter(self.MODEL, self.tr("Model")))
        lowest, top = self.quality_range() or (1, None)
        self.addParameter(self.optional_integer(
            self.QUALITY, self.tr("Quality level (1 = smallest file; empty: the default level)"), lowest, top))
        self.addParameter(QgsProcessingParameterNumber(
            self.TARGET_BPP, self.tr("Target bits per pixel, instead of a quality level"),
            type=QgsProcessingParameterNumber.Double, optional=True, minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.MAX_ERROR_DB, self.tr("Maximum error in dB on every sample (empty: no bound)"),
            type=QgsProcessingParameterNumber.Double, optional=True, minValue=0.0))
        self.addParameter(self.device_parameter())
        self.addParameter(self.optional_integer(
            self.BLOCK_SIZE, self.tr("Block size: the unit of random access, in pixels (empty: the default)"), 64,
            advanced=True))
        self.addParameter(self.advanced(QgsProcessingParameterBoolean(
            self.REPRODUCIBLE, self.tr("Reproducible: the same container bytes on every machine (slower)"),
            defaultValue=False, optional=True)))
        self.addParameter(self.optional_integer(
            self.EFFORT, self.tr("Effort: steps of latent refinement per block (empty: none; 100: about 5 % fewer "
                                 "bits, far slower)"), 0, advanced=True))
        self.addParameter(self.advanced(QgsProcessingParameterBoolean(
            self.QUALITY_IN_DB, self.tr("Quality in dB: the same trade-off in dB for every scene"),
            defaultValue=False, optional=True)))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT, self.tr("Compressed container"), fileFilter=self.tr("SAR codec container (*.sarc)")))
        self.addOutput(QgsProcessingOutputNumber(self.BPP, self.tr("Bits per pixel and polarisation")))
        self.addOutput(QgsProcessingOutputNumber(self.BYTES, self.tr("Container size in bytes")))
        self.addOutput(QgsProcessingOutputNumber(self.QUALITY_USED, self.tr("Quality level used")))

    def processAlgorithm(self, parameters, context, feedback):
        codec = self.library()
        inputs = self.input_paths(parameters, context)
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        options = {}
        block_size = self.optional_number(parameters, self.BLOCK_SIZE, context, integer=True)
        if block_size is not None:
            options["block_size"] = block_size
        effort = self.optional_number(parameters, self.EFFORT, context, integer=True)
        if effort is not None:
            options["effort"] = effort
        if self.parameterAsBoolean(parameters, self.QUALITY_IN_DB, context):
            options["allocation"] = "db"
        result = self.call_library(
            codec.compress_scene, inputs, output,
            architecture=self.parameterAsEnumString(parameters, self.MODEL, context),
            quality=self.optional_number(parameters, self.QUALITY, context, integer=True),
            target_bpp=self.optional_number(parameters, self.TARGET_BPP, context),
            max_error_db=self.optional_number(parameters, self.MAX_ERROR_DB, context),
            device=self.parameterAsEnumString(parameters, self.DEVICE, context),
            reproducible=self.parameterAsBoolean(parameters, self.REPRODUCIBLE, context),
            overwrite=True,  # QGIS asked before choosing an existing file; the library never overwrites an input
            feedback=feedback, **options)
        feedback.pushInfo(f"{result.output}: {result.bytes} bytes, {result.bpp:.3f} bpp "
                          f"({result.architecture} quality {result.quality}) in {result.seconds:.1f} s")
        if result.note:
            feedback.pushWarning(result.note)
        return {self.OUTPUT: str(result.output), self.BPP: result.bpp, self.BYTES: result.bytes,
                self.QUALITY_USED: result.quality}
