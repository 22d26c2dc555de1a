"""The learned models: architectures (float, for training) and their exact fixed-point form (for coding)."""

# The version of the fixed-point arithmetic (how weights and activations are quantised; sar_codec.models.exact).
# A stream decodes only with the arithmetic that coded it, so containers record it. Kept here, free of torch,
# so that reading a container header does not import torch. 1: per-layer weight scales (up to 2**15);
# 2: per-output-channel scales that bound each output's absolute weight sum (exact in float32 digit passes).
ARITHMETIC_VERSION = 2

# The architectures, in the order that choices and the model table list them, each with its class in
# sar_codec.models.architectures. The one list: the registry's names (and so the CLI's choices), the classes
# (architectures.ARCHITECTURE_CLASSES) and the entries of weights/models.json all derive from it or are checked
# against it. Free of torch, like the version above: the CLI reads it for --help.
ARCHITECTURE_CLASS_NAMES = {
    "bmshj2018-factorized": "Factorized",
    "bmshj2018-hyperprior": "ScaleHyperprior",
    "mbt2018-mean": "MeanScaleHyperprior",
    "mbt2018": "JointAutoregressive",
    "mbt2018-mean-light": "LightMeanScaleHyperprior",
    "bmshj2018-hyperprior-light": "LightScaleHyperprior",
    "bmshj2018-hyperprior-fast": "FastScaleHyperprior",
}
