"""Transposed convolutions rewritten as ordinary convolutions followed by a pixel shuffle (their polyphase form).

A stride-``s`` transposed convolution computes each of the ``s x s`` output phases as an ordinary convolution of
its input with a sub-kernel; stacking the phases as ``s * s * C_out`` channels of one convolution and
interleaving them with ``pixel_shuffle`` gives the same output (up to float rounding). On the CPU, oneDNN's
transposed convolution is slow when it has few output channels, as the last layer of every synthesis has (one
per polarisation): the light synthesis's 48 -> 1 kernel-8 stride-4 layer ran 7x faster in this form, and
mbt2018-mean's 64 -> 1 kernel-5 stride-2 layer too (measured in ``docs/benchmarks.md``). Only the floating-point
synthesis uses it; the exact synthesis keeps its fixed-point transposed convolutions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# A transposed convolution with at most this many output channels runs in polyphase form (the pixel layers).
MAX_OUTPUT_CHANNELS = 4


class PolyphaseConvTranspose2d(nn.Module):
    """The polyphase form of a square, stride-``s`` ``nn.ConvTranspose2d`` (no dilation or groups) whose output
    is ``s`` times its input in each direction."""

    def __init__(self, deconv: nn.ConvTranspose2d):
        super().__init__()
        (k, kw), (s, sw), (p, pw) = deconv.kernel_size, deconv.stride, deconv.padding
        if k != kw or s != sw or p != pw or deconv.groups != 1 or deconv.dilation != (1, 1):
            raise ValueError("only square, ungrouped, undilated transposed convolutions have a polyphase form here")
        w = deconv.weight.detach()  # (C_in, C_out, k, k)
        c_out = w.shape[1]
        # output o = s * j + t - p for input j and tap t; phase r of output i = s * i + r uses t = s * d + r + p,
        # with j = i - d
        ds = [(t - r - p) // s for r in range(s) for t in range(k) if (t - r - p) % s == 0]
        d_min, d_max = min(ds), max(ds)
        size = d_max - d_min + 1
        weight = torch.zeros(s, s, c_out, w.shape[0], size, size, dtype=w.dtype)
        for ry in range(s):
            for rx in range(s):
                for a in range(size):
                    for b in range(size):
                        ty, tx = s * (d_max - a) + ry + p, s * (d_max - b) + rx + p
                        if 0 <= ty < k and 0 <= tx < k:
                            weight[ry, rx, :, :, a, b] = w[:, :, ty, tx].T
        self.weight = nn.Parameter(weight.permute(2, 0, 1, 3, 4, 5).reshape(c_out * s * s, w.shape[0], size, size)
                                   .contiguous(), requires_grad=False)
        bias = deconv.bias.detach() if deconv.bias is not None else torch.zeros(c_out, dtype=w.dtype)
        self.bias = nn.Parameter(bias.repeat_interleave(s * s).contiguous(), requires_grad=False)
        self.stride, self.pad = s, (d_max, size - 1 - d_max, d_max, size - 1 - d_max)

    def forward(self, x: Tensor) -> Tensor:
        return F.pixel_shuffle(F.conv2d(F.pad(x, self.pad), self.weight, self.bias), self.stride)


def _equivalent(deconv: nn.ConvTranspose2d, poly: PolyphaseConvTranspose2d) -> bool:
    probe = torch.randn(2, deconv.in_channels, 5, 6, generator=torch.Generator().manual_seed(0),
                        dtype=deconv.weight.dtype)
    with torch.no_grad():
        ref, out = deconv(probe), poly(probe)
    return ref.shape == out.shape and torch.allclose(ref, out, rtol=1e-4, atol=1e-4)


def with_polyphase_outputs(seq: nn.Sequential) -> nn.Sequential:
    """``seq`` (changed in place and returned) with each transposed convolution of at most
    :data:`MAX_OUTPUT_CHANNELS` outputs replaced by its polyphase form, where a probe confirms they agree."""
    for name, m in list(seq.named_children()):
        if isinstance(m, nn.ConvTranspose2d) and m.out_channels <= MAX_OUTPUT_CHANNELS:
            try:
                poly = PolyphaseConvTranspose2d(m.cpu())
            except ValueError:
                continue
            if _equivalent(m, poly):
                setattr(seq, name, poly)
    return seq
