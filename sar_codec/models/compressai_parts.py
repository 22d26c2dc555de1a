"""The parts of CompressAI the codec uses, imported without CompressAI's package ``__init__``
(:mod:`sar_codec.models.compressai_ans` registers the package and imports the rANS coder; the layers and
entropy models here need torch)."""

from __future__ import annotations

import warnings

from .compressai_ans import RansDecoder, RansEncoder

with warnings.catch_warnings():  # compressai's modules use the deprecated torch.jit.script
    warnings.simplefilter("ignore", FutureWarning)
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional
    from compressai.layers import GDN, MaskedConv2d

__all__ = ["EntropyBottleneck", "GDN", "GaussianConditional", "MaskedConv2d", "RansDecoder", "RansEncoder"]
