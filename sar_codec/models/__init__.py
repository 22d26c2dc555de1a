"""The learned models: architectures (float, for training) and their exact fixed-point form (for coding)."""

# The version of the fixed-point arithmetic (how weights and activations are quantised; sar_codec.models.exact).
# A stream decodes only with the arithmetic that coded it, so containers record it. Kept here, free of torch,
# so that reading a container header does not import torch. 1: per-layer weight scales (up to 2**15);
# 2: per-output-channel scales that bound each output's absolute weight sum (exact in float32 digit passes).
ARITHMETIC_VERSION = 2
