"""Whole-process speed of sar-codec against JPEG 2000 on one large real scene, as a user times them.

    python benchmarks/bench_scene.py WORKDIR [--mpix 100] [--rounds 3] [--model ARCH] [--quality Q]

Builds, once, a dual-polarisation GRD-like scene of at least ``--mpix`` million samples (both bands counted) in
WORKDIR: the real Sentinel-1 VV+VH chips of ``../shared/data/sen1floods11-dualpol-db`` (sigma0 dB) laid side by
side, flipped and rotated, as uint16 amplitude DN (``DN = 600 * sqrt(10 ** (dB / 10))``, 0 = nodata where a chip
has none), tiled and uncompressed like a GRD measurement file, in EPSG:4326 at about 10 m.

Then, ``--rounds`` times, alternating, each as its own process (start-up, model load, reading and writing
included) on the same machine in the same run:

- ``sar-codec compress`` (the default model and quality unless given) and ``sar-codec decompress`` to a
  GeoTIFF (the CLI's output: tiled, DEFLATE);
- ``gdal_translate -of JP2OpenJPEG`` at the container's size (GDAL's defaults otherwise: 1024-pixel tiles,
  irreversible), and its decode read back to a GeoTIFF as a user does, both plain (``gdal_translate m.jp2
  out.tif``) and tiled DEFLATE (what sar-codec writes).

Prints one JSON object per process (seconds, peak resident MiB) and a summary: medians and ranges, the ratios of
sar-codec's speed to JPEG 2000's, bytes, and the PSNR in a fixed 35 dB window of both decodes on a central crop.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHIPS = ROOT.parent / "shared" / "data" / "sen1floods11-dualpol-db"
CHIP = 512
DN_SCALE = 600.0
DB_WINDOW = 35.0  # the fixed window of the dB-domain PSNR (docs/metrics.md)


def _emit(**row) -> None:
    print(json.dumps(row), flush=True)


def build_mosaic(path: Path, mpix: float) -> tuple[int, int]:
    """The mosaic GeoTIFF at ``path`` (kept between runs); returns (side, count of chips used)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    side = CHIP * math.ceil(math.sqrt(mpix * 1e6 / 2) / CHIP)
    if path.exists():
        return side, 0
    chips = []
    for f in sorted(CHIPS.glob("*.tif")):
        with rasterio.open(f) as ds:
            db = ds.read(out_dtype="float64")[:2, :CHIP, :CHIP]
        dn = np.where(np.isfinite(db), np.clip(np.rint(DN_SCALE * np.sqrt(10 ** (db / 10))), 1, 65535), 0)
        chips.append(dn.astype("uint16"))
    if not chips:
        raise SystemExit(f"No chips in {CHIPS}: this benchmark needs ../shared/data.")
    rng = np.random.default_rng(0)
    profile = {"driver": "GTiff", "width": side, "height": side, "count": 2, "dtype": "uint16", "nodata": 0,
               "tiled": True, "blockxsize": 512, "blockysize": 512, "BIGTIFF": "IF_SAFER",
               "crs": "EPSG:4326", "transform": from_origin(80.0, 20.0, 1e-4, 1e-4)}
    tmp = path.with_suffix(".part.tif")
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.descriptions = ("VV", "VH")
        for r in range(0, side, CHIP):
            for c in range(0, side, CHIP):
                chip = np.rot90(chips[rng.integers(len(chips))], k=int(rng.integers(4)), axes=(1, 2))
                if rng.random() < 0.5:
                    chip = chip[:, :, ::-1]
                dst.write(np.ascontiguousarray(chip), window=Window(c, r, CHIP, CHIP))
    tmp.replace(path)
    return side, len(chips)


def _run(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak resident MiB) of one whole process, from GNU time."""
    out = subprocess.run(["/usr/bin/time", "-f", "%e %M", *argv], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{' '.join(argv)} failed: {out.stderr.strip()[-2000:]}")
    wall, kib = out.stderr.strip().splitlines()[-1].split()
    return float(wall), int(kib) / 1024


def _psnr_db(src: Path, decoded: Path, crop: int = 2048) -> float:
    """PSNR in a fixed 35 dB window over both bands of a central crop, valid samples only."""
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(src) as a, rasterio.open(decoded) as b:
        off = (a.width - crop) // 2
        w = Window(off, off, crop, crop)
        x, y = a.read(window=w).astype("float64"), b.read(window=w).astype("float64")
    ok = (x > 0) & (y > 0)
    err = 20 * np.log10(y[ok]) - 20 * np.log10(x[ok])
    return float(10 * np.log10(DB_WINDOW**2 / np.mean(err**2)))


def _summary(rows: list[tuple[float, float]]) -> dict:
    walls = [w for w, _ in rows]
    return {"median_s": float(np.median(walls)), "min_s": min(walls), "max_s": max(walls),
            "peak_rss_mib": max(m for _, m in rows)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--mpix", type=float, default=100.0, help="samples of the scene, both bands (millions)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", default=None, help="architecture (default: the CLI's)")
    ap.add_argument("--quality", type=int, default=None)
    args = ap.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"mosaic-{args.mpix:g}.tif"
    side, _ = build_mosaic(src, args.mpix)
    mpix = side * side * 2 / 1e6
    sar = [str(Path(sys.executable).with_name("sar-codec"))]
    if not Path(sar[0]).exists():
        sar = [shutil.which("sar-codec") or "sar-codec"]
    model = (["--model", args.model] if args.model else []) + (["--quality", str(args.quality)] if args.quality else [])
    sarc, back, jp2 = work / "m.sarc", work / "back.tif", work / "m.jp2"
    jp2_plain, jp2_deflate = work / "back_jp2.tif", work / "back_jp2_deflate.tif"
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in
                                                   ("sarc_encode", "sarc_decode", "jp2_encode", "jp2_decode",
                                                    "jp2_decode_deflate")}
    quality = None
    for n in range(args.rounds):
        times["sarc_encode"].append(_run([*sar, "compress", str(src), "-o", str(sarc), "--device", "cpu", "-q",
                                          "--overwrite", *model]))
        if quality is None:  # JPEG 2000 at the container's size: QUALITY is its percentage of the raw size
            quality = 100.0 * sarc.stat().st_size / (mpix * 1e6 * 2)
        times["jp2_encode"].append(_run(["gdal_translate", "-q", "-of", "JP2OpenJPEG", "-co", f"QUALITY={quality:.4f}",
                                         "-co", "REVERSIBLE=NO", str(src), str(jp2)]))
        if n == 0 and abs(jp2.stat().st_size / sarc.stat().st_size - 1) > 0.03:  # match the size once more
            quality *= sarc.stat().st_size / jp2.stat().st_size
            times["jp2_encode"][-1] = _run(["gdal_translate", "-q", "-of", "JP2OpenJPEG", "-co",
                                            f"QUALITY={quality:.4f}", "-co", "REVERSIBLE=NO", str(src), str(jp2)])
        times["sarc_decode"].append(_run([*sar, "decompress", str(sarc), "-o", str(back), "--device", "cpu", "-q",
                                          "--overwrite"]))
        for p in (jp2_plain, jp2_deflate):
            p.unlink(missing_ok=True)
        times["jp2_decode"].append(_run(["gdal_translate", "-q", str(jp2), str(jp2_plain)]))
        times["jp2_decode_deflate"].append(_run(["gdal_translate", "-q", "-co", "TILED=YES", "-co", "COMPRESS=DEFLATE",
                                                 "-co", "PREDICTOR=2", str(jp2), str(jp2_deflate)]))
        for k, v in times.items():
            _emit(bench="scene", round=n + 1, process=k, seconds=v[-1][0], peak_rss_mib=v[-1][1])
    s = {k: _summary(v) for k, v in times.items()}
    _emit(bench="scene-summary", mpix=mpix, side=side, rounds=args.rounds, model=args.model or "default",
          sarc_bytes=sarc.stat().st_size, jp2_bytes=jp2.stat().st_size,
          sarc_bpp=sarc.stat().st_size * 8 / (mpix * 1e6), jp2_bpp=jp2.stat().st_size * 8 / (mpix * 1e6),
          psnr_db_window_sarc=_psnr_db(src, back), psnr_db_window_jp2=_psnr_db(src, jp2_plain),
          **{f"{k}_{m}": v for k, d in s.items() for m, v in d.items()},
          encode_ratio=s["jp2_encode"]["median_s"] / s["sarc_encode"]["median_s"],
          decode_ratio=s["jp2_decode"]["median_s"] / s["sarc_decode"]["median_s"],
          decode_ratio_vs_deflate_readback=s["jp2_decode_deflate"]["median_s"] / s["sarc_decode"]["median_s"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
