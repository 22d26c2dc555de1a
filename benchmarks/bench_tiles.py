"""Learned codecs by tile size against whole-image JPEG 2000, on 256 x 256 crops of the dev sets, every byte.

    python benchmarks/bench_tiles.py [--sets sen1floods11 volkov ombria] [--crops 48]
        [--codec WEIGHTS:TILE ...]

`sar-codec evaluate` codes 64 x 64 patches, the unit of the models trained on 64-pixel crops; a model trained on
larger crops (its table entry's ``tile_size``) codes scenes in larger tiles, which such patches cannot show. Here
every codec sees the same 256 x 256 crops of each dev set (the dev split of ``sar_codec.training_data``, the
crops without nodata, at most ``--crops`` of them evenly spread): each ``--codec`` (a weights file and a tile
size: 64 cuts each crop into 16 tiles, 256 codes it whole) at its nine qualities, decoded exactly, its rate every
byte of its tile streams; JPEG 2000 (GDAL JP2OpenJPEG, 12-bit, one tile) on 512 x 512 mosaics of four crops,
rate-matched to 0.125-3 bpp. Quality: PSNR in the dB domain over a fixed 35 dB window (each crop back through
its image's mapping; docs/metrics.md) and the mean per-crop PSNR in the normalised domain. Default codecs: the
installed default model at 64 pixels and at its own tile size. Prints each curve and the BD-rates.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sar_codec import baselines, metrics
from sar_codec.models.exact import FRAC_BITS
from sar_codec.registry import DEFAULT_ARCHITECTURE, lookup
from sar_codec.training_data import Source, normalised_images

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {"sen1floods11": ("sen1floods11-dualpol-db", "db"), "volkov": ("volkov-vh-png", "amplitude"),
        "ombria": ("ombria-vv-png", "db")}
CROP = 256
TARGETS = (0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


def crops(name: str, limit: int) -> tuple[np.ndarray, list]:
    folder, units = SETS[name]
    maps: list = []
    images = normalised_images(Source(DATA / folder, units), "dev", np.random.default_rng(0), mappings=maps)
    found = []
    for im, m in zip(images, maps):
        for r in range(0, im.shape[0] - CROP + 1, CROP):
            for c in range(0, im.shape[1] - CROP + 1, CROP):
                if not np.isnan(im[r : r + CROP, c : c + CROP]).any():
                    found.append((im[r : r + CROP, c : c + CROP], m))
    keep = np.linspace(0, len(found) - 1, min(limit, len(found))).round().astype(int)
    return np.stack([found[i][0] for i in keep])[:, None].astype(np.float64), [found[i][1] for i in keep]


def scores(x: np.ndarray, dec: np.ndarray, maps: list) -> tuple[float, float]:
    sse = sum(float(((m.inverse(d[0]) - m.inverse(r[0])) ** 2).sum()) for r, d, m in zip(x, dec, maps))
    return metrics.psnr_from_mse(sse / x[:, 0].size, metrics.DB_WINDOW), float(np.mean(metrics.patch_psnr(x, dec)))


def learned(codec, tile: int, x: np.ndarray, maps: list) -> list[tuple[float, float, float]]:
    k = CROP // tile
    rows = []
    for q in range(9):
        nbytes, dec = 0, np.empty_like(x)
        for i in range(0, len(x), 4):
            part = x[i : i + 4]
            t = part.reshape(len(part), 1, k, tile, k, tile).transpose(0, 2, 4, 1, 3, 5).reshape(-1, 1, tile, tile)
            stream = codec.compress(t, q)
            nbytes += len(stream)
            d = codec.decompress(stream, len(t), q, tile, exact=True) / float(2**FRAC_BITS)
            dec[i : i + 4] = d.reshape(len(part), k, k, 1, tile, tile).transpose(0, 3, 1, 4, 2, 5).reshape(part.shape)
        rows.append((nbytes * 8 / x[:, 0].size, *scores(x, dec, maps)))
    return rows


def jpeg2000(x: np.ndarray, maps: list) -> list[tuple[float, float, float]]:
    n = len(x) // 4 * 4
    mosaics = [np.block([[x[i, 0], x[i + 1, 0]], [x[i + 2, 0], x[i + 3, 0]]]) for i in range(0, n, 4)]
    rows = []
    for t in TARGETS:
        c = baselines.match_rate("jpeg2000", mosaics, t)
        dec = np.stack([q for m in c.decoded for q in (m[:CROP, :CROP], m[:CROP, CROP:], m[CROP:, :CROP],
                                                       m[CROP:, CROP:])])[:, None]
        rows.append((c.nbytes * 8 / x[:n, 0].size, *scores(x[:n], dec, maps[:n])))
    return rows


def load(spec: str):
    import torch

    from sar_codec.models.architectures import model_from_state
    from sar_codec.models.engine import TileCodec

    path, tile = spec.rsplit(":", 1)
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = model_from_state(blob["meta"]["architecture"], blob["meta"]["config"], blob["state_dict"]).eval()
    return TileCodec(model, "cpu"), int(tile)


def bd(anchor: list, test: list, i: int) -> float:
    return metrics.bd_rate([a[0] for a in anchor], [a[i] for a in anchor], [t[0] for t in test], [t[i] for t in test])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    ap.add_argument("--crops", type=int, default=48)
    ap.add_argument("--codec", action="append", default=None, metavar="WEIGHTS:TILE")
    args = ap.parse_args()
    entry = lookup(DEFAULT_ARCHITECTURE, 1)
    specs = list(dict.fromkeys(args.codec or [f"{entry.path}:64", f"{entry.path}:{entry.tile_size}"]))
    codecs = {s: load(s) for s in specs}
    for name in args.sets:
        x, maps = crops(name, args.crops)
        if len(x) < 4:
            print(f"{name}: {len(x)} crops of {CROP} pixels without nodata, too few")
            continue
        x, maps = x[: len(x) // 4 * 4], maps[: len(x) // 4 * 4]
        print(f"{name}: {len(x)} crops of {CROP} x {CROP}", flush=True)
        anchor = jpeg2000(x, maps)
        print("  jpeg2000 (bpp/PSNR dB window/PSNR):", " ".join(f"{b:.3f}/{d:.2f}/{p:.2f}" for b, d, p in anchor))
        curves = {}
        for spec, (codec, tile) in codecs.items():
            curves[spec] = rows = learned(codec, tile, x, maps)
            print(f"  {Path(spec).name}:", " ".join(f"{b:.3f}/{d:.2f}/{p:.2f}" for b, d, p in rows))
            print(f"    vs JPEG 2000: {bd(anchor, rows, 1):+.1f} % (dB domain), {bd(anchor, rows, 2):+.1f} % "
                  "(normalised)", flush=True)
        first = specs[0]
        for spec in specs[1:]:
            print(f"  {Path(spec).name} vs {Path(first).name}: {bd(curves[first], curves[spec], 1):+.1f} % (dB "
                  f"domain), {bd(curves[first], curves[spec], 2):+.1f} % (normalised)")


if __name__ == "__main__":
    main()
