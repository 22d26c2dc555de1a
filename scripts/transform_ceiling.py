"""What limits a model at high rates: its transform, or its quantisation?

Scales the latent of the top quality by growing factors (gain x k before quantisation, inverse gain / k after), so
quantisation becomes ever finer, and reports the float model's estimated bpp and PSNR on dev patches. If PSNR
stops rising while the rate keeps growing, the analysis/synthesis transforms (not the entropy model or lambda)
set the ceiling.

    python scripts/transform_ceiling.py mbt2018-mean [../shared/data/sen1floods11-dualpol-db] [--weights FILE]

``pca`` instead of an architecture prints the linear bound: the PSNR left when only the k strongest principal
components of each 16x16 block are kept (k = 96 or 192 of 256: what a 96- or 192-channel latent at stride 16
keeps), without any quantisation.

    python scripts/transform_ceiling.py pca ../shared/data/volkov-vh-png --units amplitude --patches 960
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

from sar_codec.evaluate import load_patches
from sar_codec.models.architectures import build_model
from sar_codec.registry import load_model, lookup
from sar_codec.train import rd_terms


def pca_bound(data: str, units: str | None, n: int, block: int = 16) -> int:
    patches, _ = load_patches(data, "dev", units, limit=n)
    side = patches.shape[-1] // block
    blocks = patches[:, 0].reshape(len(patches), side, block, side, block).transpose(0, 1, 3, 2, 4)
    x = blocks.reshape(-1, block * block)
    x = x - x.mean(0)
    eig = np.sort(np.linalg.eigvalsh(x.T @ x / len(x)))[::-1]
    for k in (96, 192):
        mse = eig[k:].sum() / (block * block)
        print(f"{k} of {block * block} components per {block}x{block} block: {10 * math.log10(1 / mse):.2f} dB")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("architecture")
    ap.add_argument("data", nargs="?", default="../shared/data/sen1floods11-dualpol-db")
    ap.add_argument("--weights", type=Path, default=None, help="a training checkpoint instead of the shipped model")
    ap.add_argument("--M", type=int, default=192, help="latent channels of --weights")
    ap.add_argument("--patches", type=int, default=256)
    ap.add_argument("--units", default=None, help="units of the images (needed for PNG)")
    args = ap.parse_args()
    if args.architecture == "pca":
        return pca_bound(args.data, args.units, args.patches)
    if args.weights is None:
        model = load_model(lookup(args.architecture, 1)).float()
    else:
        model = build_model(args.architecture, M=args.M)
        model.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True)["model"])
    model.eval()
    patches, _ = load_patches(args.data, "dev", args.units, limit=args.patches)
    x = torch.from_numpy(patches).float()
    top = model.n_qualities - 1
    g, ig = model.log_gain.data[top].clone(), model.log_inv_gain.data[top].clone()
    with torch.no_grad():
        for k in (1.0, 2.0, 4.0, 20.0):
            model.log_gain.data[top] = g + math.log(k)
            model.log_inv_gain.data[top] = ig - math.log(k)
            bpp, mse, _ = rd_terms(model, x, torch.full((len(x),), top))
            print(f"top quality, latent x{k:g}: {bpp.mean():.3f} bpp, {10 * math.log10(1 / mse.mean()):.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
