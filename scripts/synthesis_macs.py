"""Multiply-adds per pixel of each architecture's synthesis transform (the decoder's pixel path) and of its
analysis transform (the encoder's).

Usage: python scripts/synthesis_macs.py [--tile 64]
Counts, for one tile, every convolution's and transposed convolution's multiply-adds (C_in x C_out x k x k per
input position for a transposed convolution, per output position for a convolution) and each GDN's C x C
(its 1x1 mix of squared activations), divided by the tile's pixels. The hyper-transforms, at 1/16 and 1/64 of the
resolution, are left out: they cost under 1 % of these.
"""

import argparse

import torch
from torch import nn

from sar_codec.models.architectures import ARCHITECTURE_CLASSES, build_model
from sar_codec.models.compressai_parts import GDN


def transform_macs(architecture: str, transform: str = "g_s", tile: int = 64, M: int = 192, N: int = 64) -> float:
    """Multiply-adds per pixel of ``transform`` (``g_s``, the synthesis, or ``g_a``, the analysis)."""
    model = build_model(architecture, N=N, M=M, n_qualities=9).eval()
    total = 0

    def count(module, inputs, output):
        nonlocal total
        x = inputs[0]
        if isinstance(module, nn.ConvTranspose2d):
            total += x.shape[2] * x.shape[3] * module.in_channels * module.out_channels * module.kernel_size[0] ** 2
        elif isinstance(module, nn.Conv2d):
            total += (output.shape[2] * output.shape[3] * module.in_channels * module.out_channels
                      * module.kernel_size[0] * module.kernel_size[1])
        elif isinstance(module, GDN):
            total += x.shape[1] ** 2 * x.shape[2] * x.shape[3]

    seq = getattr(model, transform)
    layers = [m for m in seq.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | GDN)]
    hooks = [m.register_forward_hook(count) for m in layers]
    with torch.no_grad():
        seq(torch.zeros(1, M, tile // 16, tile // 16) if transform == "g_s" else torch.zeros(1, 1, tile, tile))
    for h in hooks:
        h.remove()
    return total / tile**2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tile", type=int, default=64)
    args = ap.parse_args()
    for arch in ARCHITECTURE_CLASSES:
        print(f"{arch:27s} synthesis {transform_macs(arch, 'g_s', args.tile):6.0f}, analysis "
              f"{transform_macs(arch, 'g_a', args.tile):6.0f} multiply-adds per pixel")


if __name__ == "__main__":
    main()
