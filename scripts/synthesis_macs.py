"""Multiply-adds per pixel of each architecture's synthesis transform (the decoder's pixel path) and of its
analysis transform (the encoder's).

Usage: python scripts/synthesis_macs.py [--tile 64]
Each architecture in the configuration of its installed weights (N, M, and L for the light ones; models.json).
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
from sar_codec.registry import model_table


def transform_macs(architecture: str, transform: str = "g_s", tile: int = 64, **config) -> float:
    """Multiply-adds per pixel of ``transform`` (``g_s``, the synthesis, or ``g_a``, the analysis) of
    ``architecture`` built with ``config`` (default N = 64, M = 192)."""
    config = {"N": 64, "M": 192, **config, "in_channels": 1, "n_qualities": 9}
    model = build_model(architecture, **config).eval()
    M = config["M"]
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
    installed = {e.architecture: e.config for e in model_table()}
    for arch in ARCHITECTURE_CLASSES:
        cfg = installed.get(arch, {})
        shape = ", ".join(f"{k} {v}" for k, v in cfg.items() if k in ("N", "M", "L"))
        print(f"{arch:27s} synthesis {transform_macs(arch, 'g_s', args.tile, **cfg):6.0f}, analysis "
              f"{transform_macs(arch, 'g_a', args.tile, **cfg):6.0f} multiply-adds per pixel ({shape or 'defaults'})")


if __name__ == "__main__":
    main()
