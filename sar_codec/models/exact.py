"""Fixed-point inference: the trained float models compiled to integer arithmetic that is exact everywhere.

Why: entropy decoding needs the decoder to rebuild exactly the probability tables the encoder used, and
CompressAI's float path does not guarantee that across devices, batch sizes or thread counts (its issues
#279, #340). Here every tensor holds integers (activations with ``FRAC_BITS`` fractional bits, weights with a
per-layer power-of-two scale) stored in float64. Every product and partial sum is an integer below 2**53, so
float64 convolutions compute them exactly whatever the summation order, BLAS, thread count or device;
rescaling is a multiplication by a power of two and a floor, both exact. GDN's square root and division are
single IEEE-754 operations, correctly rounded on every conforming CPU and GPU. The result: the same symbols,
the same probability tables and the same decoded pixels everywhere.

Bounds that keep sums exact: activations are clamped to ``ACT_LIMIT`` (2**23, i.e. |x| <= 2048), weights to
2**15, so a product is below 2**38 and a sum of at most 2**14 products below 2**52.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .architectures import GDN

FRAC_BITS = 12
ONE = float(2**FRAC_BITS)
ACT_LIMIT = float(2**23)
WEIGHT_BITS = 15
GAMMA_BITS = 13
GAIN_BITS = 12
_MAX_TERMS = 2**14


def to_fixed(x: Tensor) -> Tensor:
    """Real values -> fixed point (round half up), float64."""
    return torch.floor(x.double() * ONE + 0.5)


def _rescale(acc: Tensor, shift: int) -> Tensor:
    """floor(acc / 2**shift), clamped to the activation range; exact. Works in place on ``acc``."""
    return acc.mul_(2.0**-shift).floor_().clamp_(-ACT_LIMIT, ACT_LIMIT)


def _weight_shift(w: Tensor, bits: int) -> int:
    m = float(w.abs().max())
    return bits if m == 0 else int(math.floor(bits - math.log2(m) - 1e-9))


class ExactConv(nn.Module):
    """A Conv2d or ConvTranspose2d in fixed point."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d, weight: Tensor | None = None, padding: int | None = None):
        super().__init__()
        w = (conv.weight if weight is None else weight).detach().double().cpu()
        fan_in = w[0].numel() if isinstance(conv, nn.Conv2d) else w.shape[0] * w[0, 0].numel()
        if fan_in > _MAX_TERMS:
            raise ValueError(f"layer too wide for exact fixed point ({fan_in} terms)")
        self.shift = _weight_shift(w, WEIGHT_BITS)
        self.register_buffer("w", torch.round(w * 2.0**self.shift))
        b = torch.zeros(w.shape[0 if isinstance(conv, nn.Conv2d) else 1], dtype=torch.float64)
        if conv.bias is not None:
            b = conv.bias.detach().double().cpu()
        self.register_buffer("b", torch.round(b * 2.0 ** (FRAC_BITS + self.shift))[None, :, None, None])
        self.transposed = isinstance(conv, nn.ConvTranspose2d)
        self.stride = conv.stride
        self.padding = conv.padding if padding is None else (padding, padding)
        self.output_padding = getattr(conv, "output_padding", (0, 0))

        self.pointwise = (not self.transposed and self.w.shape[2:] == (1, 1) and tuple(self.stride) == (1, 1)
                          and tuple(self.padding) == (0, 0))

    def forward(self, x: Tensor) -> Tensor:
        if self.pointwise:  # a 1x1 convolution is a matrix product over channels (one GEMM, no im2col)
            acc = torch.matmul(x.movedim(1, -1), self.w[:, :, 0, 0].T).movedim(-1, 1)
        elif self.transposed:
            acc = F.conv_transpose2d(x, self.w, None, self.stride, self.padding, self.output_padding)
        else:
            acc = F.conv2d(x, self.w, None, self.stride, self.padding)
        return _rescale(acc.add_(self.b), self.shift)


class ExactCausalContext(nn.Module):
    """The masked context convolution of mbt2018 at one latent position: only the causal taps of the 5x5 kernel
    (12 of 25) as one matrix product, on the (B, M, k, k) window around the position; returns (B, 2M)."""

    def __init__(self, conv: ExactConv, mask: Tensor):
        super().__init__()
        rows, cols = torch.nonzero(mask[0, 0].cpu() != 0, as_tuple=True)
        self.rows, self.cols = rows.tolist(), cols.tolist()
        w = conv.w[:, :, rows, cols]  # (2M, M, taps)
        self.register_buffer("w", w.reshape(w.shape[0], -1).T.contiguous())  # (M * taps, 2M)
        self.register_buffer("b", conv.b.reshape(1, -1))
        self.shift = conv.shift

    def forward(self, window: Tensor) -> Tensor:
        taps = window[:, :, self.rows, self.cols]  # (B, M, taps)
        acc = torch.matmul(taps.reshape(taps.shape[0], -1), self.w)
        return _rescale(acc.add_(self.b), self.shift)


class ExactGDN(nn.Module):
    """GDN / inverse GDN in fixed point: x / sqrt(beta + gamma . x**2) or x * sqrt(...)."""

    def __init__(self, gdn: GDN):
        super().__init__()
        with torch.no_grad():
            beta = gdn.beta_reparam(gdn.beta.detach().float().cpu()).double()
            gamma = gdn.gamma_reparam(gdn.gamma.detach().float().cpu()).double()
        C = beta.numel()
        if C > 128:
            raise ValueError("GDN too wide for exact fixed point")
        g = _weight_shift(gamma, GAMMA_BITS)
        g -= (g + FRAC_BITS) % 2  # the norm's scale 2**-(g+F) must have an integer square root
        self.half_shift = (g + FRAC_BITS) // 2
        self.register_buffer("gamma", torch.round(gamma * 2.0**g).reshape(C, C, 1, 1))
        self.register_buffer("beta", torch.clamp(torch.round(beta * 2.0 ** (g + FRAC_BITS)), min=1.0))
        self.inverse = gdn.inverse

    def forward(self, x: Tensor) -> Tensor:
        sq = torch.square(x).mul_(1.0 / ONE).floor_().clamp_(max=float(2**31))
        root = F.conv2d(sq, self.gamma).add_(self.beta[None, :, None, None]).sqrt_()
        del sq
        if self.inverse:
            y = root.mul_(x).mul_(2.0**-self.half_shift)  # (x * root) first, then the exact power of two
        else:
            y = torch.div(x, root, out=root).mul_(2.0**self.half_shift)
        return y.floor_().clamp_(-ACT_LIMIT, ACT_LIMIT)


class ExactReLU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.clamp(x, min=0.0)


def compile_sequential(seq: nn.Sequential) -> nn.Sequential:
    """Fixed-point copy of a Sequential of Conv2d / ConvTranspose2d / GDN / ReLU."""
    layers = []
    for m in seq:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            layers.append(ExactConv(m))
        elif isinstance(m, GDN):
            layers.append(ExactGDN(m))
        elif isinstance(m, nn.ReLU):
            layers.append(ExactReLU())
        else:
            raise TypeError(f"no exact form for {type(m).__name__}")
    return nn.Sequential(*layers)


class ExactGain(nn.Module):
    """Per-quality, per-channel gain vectors in fixed point."""

    def __init__(self, log_gain: Tensor):
        super().__init__()
        g = torch.exp(log_gain.detach().float().cpu()).double()
        self.register_buffer("g", torch.round(g * 2.0**GAIN_BITS))

    def forward(self, x: Tensor, quality: int) -> Tensor:
        return _rescale(x * self.g[quality][None, :, None, None], GAIN_BITS)
