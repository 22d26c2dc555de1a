"""Multiply-adds per output pixel of each architecture's synthesis transform (the decoder's pixel path).

Usage: python scripts/synthesis_macs.py [--tile 64]
Counts, for one tile, every convolution's and transposed convolution's multiply-adds (C_in x C_out x k x k per
input position for a transposed convolution, per output position for a convolution) and each GDN's C x C
(its 1x1 mix of squared activations), divided by the tile's pixels. The hyper-synthesis, at 1/16 and 1/64 of the
resolution, is left out: it costs under 1 % of these.
"""

import argparse

import torch
from torch import nn

from sar_codec.models.architectures import ARCHITECTURE_CLASSES, build_model
from sar_codec.models.compressai_parts import GDN


def synthesis_macs(architecture: str, tile: int = 64, M: int = 192, N: int = 64) -> float:
    model = build_model(architecture, N=N, M=M, n_qualities=9).eval()
    total = 0

    def count(module, inputs, output):
        nonlocal total
        x = inputs[0]
        if isinstance(module, nn.ConvTranspose2d):
            total += x.shape[2] * x.shape[3] * module.in_channels * module.out_channels * module.kernel_size[0] ** 2
        elif isinstance(module, nn.Conv2d):
            total += (output.shape[2] * output.shape[3] * module.in_channels * module.out_channels
                      * module.kernel_size[0] ** 2)
        elif isinstance(module, GDN):
            total += x.shape[1] ** 2 * x.shape[2] * x.shape[3]

    layers = [m for m in model.g_s.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | GDN)]
    hooks = [m.register_forward_hook(count) for m in layers]
    with torch.no_grad():
        model.g_s(torch.zeros(1, M, tile // 16, tile // 16))
    for h in hooks:
        h.remove()
    return total / tile**2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tile", type=int, default=64)
    args = ap.parse_args()
    for arch in ARCHITECTURE_CLASSES:
        print(f"{arch:22s} {synthesis_macs(arch, args.tile):8.0f} multiply-adds per pixel")


if __name__ == "__main__":
    main()
