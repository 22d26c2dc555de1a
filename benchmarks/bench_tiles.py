"""Weights files by tile size against whole-image JPEG 2000, on 256 x 256 crops of the dev sets, every byte.

    python benchmarks/bench_tiles.py [--sets sen1floods11 volkov ombria] [--crops 48]
        [--codec WEIGHTS:TILE ...]

`sar-codec evaluate --patch-size 256` measures the installed models on such crops, each in its own tile size,
against every baseline. This compares weights files that are not installed (a training run's) and forces tile
sizes: every ``--codec`` (a weights file and a tile size: 64 cuts each crop into 16 tiles, 256 codes it whole)
codes the same 256 x 256 crops of each dev set (``sar_codec.evaluate.load_patches``: the dev split, crops
without nodata, at most ``--crops`` of them evenly spread) at each of its qualities, decoded exactly, its rate every
byte of its tile streams; JPEG 2000 (GDAL JP2OpenJPEG, 12-bit, one tile) codes 512 x 512 mosaics of four crops,
rate-matched to 0.125-3 bpp. Quality: PSNR in the dB domain over a fixed 35 dB window and the mean per-crop PSNR
in the normalised domain (``sar_codec.evaluate.scores``). Default codecs: the installed default model at 64
pixels and at its own tile size. Prints each curve and the BD-rates.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sar_codec import metrics
from sar_codec.evaluate import baseline_curve, code_patches, load_patches, scores
from sar_codec.registry import DEFAULT_ARCHITECTURE, lookup

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {"sen1floods11": ("sen1floods11-dualpol-db", "db"), "volkov": ("volkov-vh-png", "amplitude"),
        "ombria": ("ombria-vv-png", "db")}
CROP = 256
TARGETS = (0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


def learned(codec, tile: int, x, maps) -> list[dict]:
    rows = []
    for q in range(1, codec.n_qualities + 1):
        nbytes, dec = code_patches(codec, q, x, tile)
        rows.append({"bpp": nbytes * 8 / x[:, 0].size, **scores(x, dec, maps)})
    return rows


def load(spec: str):
    import torch

    from sar_codec.models.architectures import model_from_state
    from sar_codec.models.engine import TileCodec

    path, tile = spec.rsplit(":", 1)
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = model_from_state(blob["meta"]["architecture"], blob["meta"]["config"], blob["state_dict"]).eval()
    return TileCodec(model, "cpu"), int(tile)


def bd(anchor: list[dict], test: list[dict], key: str) -> float:
    return metrics.bd_rate([a["bpp"] for a in anchor], [a[key] for a in anchor],
                           [t["bpp"] for t in test], [t[key] for t in test])


def curve(rows: list[dict]) -> str:
    return " ".join(f"{r['bpp']:.3f}/{r['psnr_db']:.2f}/{r['psnr']:.2f}" for r in rows)


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
        folder, units = SETS[name]
        maps: list = []
        x, source = load_patches(DATA / folder, "dev", units, args.crops, maps, CROP)
        if len(x) < 4:
            print(f"{name}: {len(x)} crops of {CROP} pixels without nodata, too few")
            continue
        x, maps = x[: len(x) // 4 * 4], maps[: len(x) // 4 * 4]
        print(f"{name}: {len(x)} crops of {CROP} x {CROP}", flush=True)
        anchor = baseline_curve("jpeg2000", x, maps, TARGETS)
        print("  jpeg2000 (bpp/PSNR dB window/PSNR):", curve(anchor))
        curves = {}
        for spec, (codec, tile) in codecs.items():
            curves[spec] = rows = learned(codec, tile, x, maps)
            print(f"  {Path(spec).name}:", curve(rows))
            print(f"    vs JPEG 2000: {bd(anchor, rows, 'psnr_db'):+.1f} % (dB domain), "
                  f"{bd(anchor, rows, 'psnr'):+.1f} % (normalised)", flush=True)
        first = specs[0]
        for spec in specs[1:]:
            print(f"  {Path(spec).name} vs {Path(first).name}: {bd(curves[first], curves[spec], 'psnr_db'):+.1f} % "
                  f"(dB domain), {bd(curves[first], curves[spec], 'psnr'):+.1f} % (normalised)")


if __name__ == "__main__":
    main()
