"""The founding study's four architectures and two light-decoder variants, for 1 or 2 SAR channels, with variable
rate by gain vectors; their names are declared once, in :data:`sar_codec.models.ARCHITECTURE_CLASS_NAMES`.

Each is built from CompressAI's blocks (GDN, EntropyBottleneck, GaussianConditional, MaskedConv2d) and follows
its model contract for training: ``forward(x, quality) -> {"x_hat", "likelihoods"}``. Inference never runs
these float modules directly: :mod:`sar_codec.models.exact` compiles them to a fixed-point form whose results
are bit-identical on every device, batch size and thread count, and each names the latent coder that entropy codes
its latent (``latent_coder_kind``, :mod:`sar_codec.models.latent_coders`).

Changes from the papers, all for SAR and for exact decoding:

* ``in_channels`` is a parameter (1 or 2 polarisations), and the output is not clamped here;
* the hyper-synthesis and context networks use ReLU instead of LeakyReLU (exact in fixed point);
* one model serves all qualities: a learned gain vector per quality scales the latent before quantisation and
  an inverse gain rescales it before synthesis (Cui et al., "Asymmetric Gained Deep Image Compression with
  Continuous Rate Adaptation", CVPR 2021), so one training run yields every quality level;
* the factorized model has one learned density per quality: a single density shared by all gains cannot fit
  both the wide latents of high qualities and the nearly-all-zero latents of low ones (with one, the lowest
  rate it reached was 0.75 bpp).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from . import ARCHITECTURE_CLASS_NAMES
from .compressai_parts import GDN, EntropyBottleneck, GaussianConditional, MaskedConv2d


def conv(in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 2) -> nn.Conv2d:
    """CompressAI's ``models.utils.conv`` (its module imports every CompressAI model)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding=kernel_size // 2)


def deconv(in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """CompressAI's ``models.utils.deconv``."""
    return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride,
                              output_padding=stride - 1, padding=kernel_size // 2)

SCALES_MIN, SCALES_MAX, SCALES_LEVELS = 0.11, 256.0, 64


def scale_table() -> Tensor:
    """CompressAI's log-spaced table of Gaussian scales, one CDF per entry."""
    return torch.exp(torch.linspace(math.log(SCALES_MIN), math.log(SCALES_MAX), SCALES_LEVELS))


class GainedModel(nn.Module):
    """Shared parts: analysis/synthesis transforms and per-quality gain vectors.

    Parameters
    ----------
    in_channels: number of polarisations coded together (1 or 2).
    N, M: channel counts of the transforms and of the latent.
    n_qualities: number of quality levels (gain vectors).
    """

    # how the latent is entropy coded: a kind of sar_codec.models.latent_coders.LATENT_CODERS
    latent_coder_kind: ClassVar[str]
    # training an encoder behind a frozen decoder: the synthesis gets the rounded latent (straight-through), the
    # rate the noisy one (Minnen and Singh, ICIP 2020); set by sar_codec.train
    round_for_synthesis: bool = False

    def __init__(self, in_channels: int = 1, N: int = 64, M: int = 96, n_qualities: int = 7):
        super().__init__()
        self.in_channels, self.N, self.M, self.n_qualities = in_channels, N, M, n_qualities
        self.g_a = nn.Sequential(
            conv(in_channels, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M)
        )
        self.g_s = nn.Sequential(
            deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
            deconv(N, N), GDN(N, inverse=True), deconv(N, in_channels),
        )
        steps = torch.arange(n_qualities, dtype=torch.float32) - (n_qualities - 1) / 2
        self.log_gain = nn.Parameter(0.5 * steps[:, None].repeat(1, M))
        self.log_inv_gain = nn.Parameter(-0.5 * steps[:, None].repeat(1, M))

    def bottlenecks(self) -> list[EntropyBottleneck]:
        """The factorized densities: one per quality (of y), or one shared by all qualities (of z)."""
        raise NotImplementedError

    def gains(self, quality: Tensor) -> tuple[Tensor, Tensor]:
        """Gain and inverse gain for each sample's quality index, shaped (B, M, 1, 1)."""
        g = torch.exp(self.log_gain[quality])[:, :, None, None]
        ig = torch.exp(self.log_inv_gain[quality])[:, :, None, None]
        return g, ig

    def aux_loss(self) -> Tensor:
        return sum(eb.loss() for eb in self.bottlenecks())

    def update(self, force: bool = True) -> None:
        """Compute the CDF tables used for entropy coding (CompressAI's ``update``)."""
        for eb in self.bottlenecks():
            eb.update(force=force)


class Factorized(GainedModel):
    """bmshj2018-factorized: Ballé, Laparra, Simoncelli, "End-to-end Optimized Image Compression", ICLR 2017."""

    latent_coder_kind = "factorized"

    def __init__(self, in_channels: int = 1, N: int = 64, M: int = 96, n_qualities: int = 7):
        super().__init__(in_channels, N, M, n_qualities)
        self.entropy_bottlenecks = nn.ModuleList(EntropyBottleneck(M) for _ in range(n_qualities))

    def bottlenecks(self) -> list[EntropyBottleneck]:
        return list(self.entropy_bottlenecks)

    def forward(self, x: Tensor, quality: Tensor) -> dict:
        g, ig = self.gains(quality)
        y = self.g_a(x) * g
        y_hat, y_lik = torch.empty_like(y), torch.empty_like(y)
        for q in quality.unique().tolist():  # each sample through its quality's density
            sel = quality == q
            y_hat[sel], y_lik[sel] = self.entropy_bottlenecks[q](y[sel])
        return {"x_hat": self.g_s(y_hat * ig), "likelihoods": {"y": y_lik}}


class ScaleHyperprior(GainedModel):
    """bmshj2018-hyperprior: Ballé et al., "Variational Image Compression with a Scale Hyperprior", ICLR 2018."""

    latent_coder_kind = "scale-hyperprior"

    def __init__(self, in_channels: int = 1, N: int = 64, M: int = 96, n_qualities: int = 7):
        super().__init__(in_channels, N, M, n_qualities)
        self.h_a = nn.Sequential(conv(M, N, 3, 1), nn.ReLU(), conv(N, N), nn.ReLU(), conv(N, N))
        self.h_s = self._make_h_s()
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)

    def bottlenecks(self) -> list[EntropyBottleneck]:
        return [self.entropy_bottleneck]

    def update(self, force: bool = True) -> None:
        super().update(force)
        self.gaussian_conditional.update_scale_table(scale_table(), force=force)

    def _make_h_s(self) -> nn.Sequential:
        N, M = self.N, self.M
        return nn.Sequential(deconv(N, N), nn.ReLU(), deconv(N, N), nn.ReLU(), conv(N, M, 3, 1), nn.ReLU())

    def hyper_input(self, y: Tensor) -> Tensor:
        return torch.abs(y)

    def entropy_parameters_from(self, params: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
        """The Gaussians' scales and means (None: zero) of ``y`` from the hyper-synthesis's output."""
        return params, None

    def forward(self, x: Tensor, quality: Tensor) -> dict:
        g, ig = self.gains(quality)
        y = self.g_a(x) * g
        z = self.h_a(self.hyper_input(y))
        z_hat, z_lik = self.entropy_bottleneck(z)
        scales, means = self.entropy_parameters_from(self.h_s(z_hat), y)
        y_hat, y_lik = self.gaussian_conditional(y, scales, means=means)
        if self.training and self.round_for_synthesis:  # the synthesis sees rounded latents, gradients pass
            centre = 0.0 if means is None else means
            y_hat = y + (torch.round(y - centre) + centre - y).detach()
        return {"x_hat": self.g_s(y_hat * ig), "likelihoods": {"y": y_lik, "z": z_lik}}


class MeanScaleHyperprior(ScaleHyperprior):
    """mbt2018-mean: Minnen, Ballé, Toderici, "Joint Autoregressive and Hierarchical Priors for Learned Image
    Compression", NeurIPS 2018, without the context model (mean and scale hyperprior)."""

    latent_coder_kind = "mean-scale-hyperprior"

    def _make_h_s(self) -> nn.Sequential:
        N, M = self.N, self.M
        return nn.Sequential(deconv(N, M), nn.ReLU(), deconv(M, M * 3 // 2), nn.ReLU(), conv(M * 3 // 2, M * 2, 3, 1))

    def hyper_input(self, y: Tensor) -> Tensor:
        return y

    def entropy_parameters_from(self, params: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
        scales, means = params.chunk(2, 1)
        return scales, means


class JointAutoregressive(MeanScaleHyperprior):
    """mbt2018: Minnen, Ballé, Toderici, "Joint Autoregressive and Hierarchical Priors for Learned Image
    Compression", NeurIPS 2018 (mean-scale hyperprior plus a masked 5x5 context model)."""

    latent_coder_kind = "context"

    def __init__(self, in_channels: int = 1, N: int = 64, M: int = 96, n_qualities: int = 7):
        super().__init__(in_channels, N, M, n_qualities)
        self.context_prediction = MaskedConv2d(M, 2 * M, kernel_size=5, padding=2, stride=1)
        self.entropy_parameters = nn.Sequential(
            nn.Conv2d(M * 12 // 3, M * 10 // 3, 1), nn.ReLU(),
            nn.Conv2d(M * 10 // 3, M * 8 // 3, 1), nn.ReLU(),
            nn.Conv2d(M * 8 // 3, M * 6 // 3, 1),
        )

    def entropy_parameters_from(self, params: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
        # the context of each position: the quantised latent (noisy in training) at the positions before it
        y_hat = self.gaussian_conditional.quantize(y, "noise" if self.training else "dequantize")
        ctx = self.context_prediction(y_hat)
        scales, means = self.entropy_parameters(torch.cat((params, ctx), dim=1)).chunk(2, 1)
        return scales, means


LIGHT_CHANNELS = 48


def light_synthesis(M: int, in_channels: int, channels: int = LIGHT_CHANNELS) -> nn.Sequential:
    """The shallow synthesis (after Yang and Mandt, "Computationally-Efficient Neural Image Compression with
    Shallow Decoders", ICCV 2023): its channels spent at low resolution, ending in one wide transposed
    convolution (kernel 8, stride 4) straight to the pixels; about 2.2k multiply-adds per pixel against the
    founding study's 10.9k (M = 192, ``channels`` = 48; 3.8k at 256 and 64, the default model since stage 10)."""
    L = channels
    return nn.Sequential(
        deconv(M, L), GDN(L, inverse=True), deconv(L, L), GDN(L, inverse=True),
        nn.ConvTranspose2d(L, in_channels, kernel_size=8, stride=4, padding=2),
    )


class LightMeanScaleHyperprior(MeanScaleHyperprior):
    """mbt2018-mean-light: mbt2018-mean's analysis, hyperprior and entropy model with the shallow synthesis
    (:func:`light_synthesis`). It is trained with the encoder and the entropy model frozen (the stream is
    mbt2018-mean's), so only the decoder changes (``sar_codec.train``, ``TrainConfig.train_only``)."""

    def __init__(self, in_channels: int = 1, N: int = 64, M: int = 96, n_qualities: int = 7,
                 L: int = LIGHT_CHANNELS):
        super().__init__(in_channels, N, M, n_qualities)
        self.g_s = light_synthesis(M, in_channels, L)


class LightScaleHyperprior(ScaleHyperprior):
    """bmshj2018-hyperprior-light: bmshj2018-hyperprior's analysis, hyperprior and entropy model with the shallow
    synthesis (:func:`light_synthesis`), trained as mbt2018-mean-light is. Its hyper-synthesis, which every
    decode runs in fixed point, costs about a tenth of mbt2018-mean's (N = 64 channels up to the latent where
    mbt2018-mean widens to 288 and 384)."""

    def __init__(self, in_channels: int = 1, N: int = 64, M: int = 96, n_qualities: int = 7,
                 L: int = LIGHT_CHANNELS):
        super().__init__(in_channels, N, M, n_qualities)
        self.g_s = light_synthesis(M, in_channels, L)


def light_analysis(in_channels: int, N: int, M: int) -> nn.Sequential:
    """The light synthesis's mirror: one wide strided convolution (kernel 8, stride 4) from the pixels, then two
    5x5 stride-2 convolutions with GDNs between; about 3.4k multiply-adds per pixel against the founding study's
    10.9k, with no activation at half resolution (where the full analysis spends most of its memory traffic)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, N, kernel_size=8, stride=4, padding=2), GDN(N),
        conv(N, N), GDN(N), conv(N, M),
    )


class FastScaleHyperprior(LightScaleHyperprior):
    """bmshj2018-hyperprior-fast: bmshj2018-hyperprior-light with the light analysis (:func:`light_analysis`),
    trained behind that model's frozen entropy model and synthesis, so that its streams decode with the same
    decoder."""

    def __init__(self, in_channels: int = 1, N: int = 64, M: int = 96, n_qualities: int = 7,
                 L: int = LIGHT_CHANNELS):
        super().__init__(in_channels, N, M, n_qualities, L)
        self.g_a = light_analysis(in_channels, N, M)


# Each declared architecture's class, by the name the declaration gives (sar_codec.models.ARCHITECTURE_CLASS_NAMES)
ARCHITECTURE_CLASSES: dict[str, type[GainedModel]] = {
    name: globals()[class_name] for name, class_name in ARCHITECTURE_CLASS_NAMES.items()}


def config_keys(architecture: str) -> frozenset[str]:
    """The configuration an architecture takes (its constructor's arguments: in_channels, N, M, n_qualities and,
    for the light architectures, L)."""
    import inspect

    return frozenset(inspect.signature(ARCHITECTURE_CLASSES[architecture]).parameters)


def build_model(architecture: str, **config) -> GainedModel:
    """Instantiate an architecture by name with its configuration (in_channels, N, M, n_qualities)."""
    return ARCHITECTURE_CLASSES[architecture](**config)


# Buffers a weights file does not need: the context model's causal mask (rebuilt by the architecture) ...
DERIVED_BUFFERS = (".mask",)
# ... and the entropy models' CDF tables, which update() computes and sizes from the parameters.
CDF_BUFFERS = ("_quantized_cdf", "_cdf_length", "_offset")


def model_from_state(architecture: str, config: dict, state: dict) -> GainedModel:
    """An architecture with a stored state loaded: float16 parameters back to float32, CDF tables resized to the
    stored ones, derived buffers taken from the architecture where the file has none."""
    model = build_model(architecture, **config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    for name, buf in model.named_buffers():
        if name.endswith(DERIVED_BUFFERS):
            state.setdefault(name, buf)
        elif name in state and buf.shape != state[name].shape:
            buf.resize_(state[name].shape)
    model.load_state_dict(state)
    return model
