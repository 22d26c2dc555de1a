"""Full-size SAFE round trip: fill the shared full-size product's measurement with real GRD texture, then time
compress -> decompress --safe with the CLI and JPEG 2000 (GDAL JP2OpenJPEG) at the same rate on the measurement.

Usage (from a clone, after `make setup`; needs ../shared/data and about 3 GB free in WORK):
    .venv/bin/python benchmarks/bench_safe.py WORK [LINES]
LINES keeps only the first LINES lines of the measurement (full width), for a shorter run. Prints one JSON line per
step (seconds, peak RSS from /usr/bin/time -v, sizes). The whole product takes tens of minutes on 2 idle cores.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
NAME = "S1B_IW_GRDH_1SDV_20210401T052623_20210401T052648_026269_032297_ECC8.SAFE"


def fill_product(work: Path, lines: int | None = None) -> Path:
    """The shared product (manifest, annotations) with its VV measurement rewritten in the same layout (25788 x
    16685 uint16, ZSTD strips of one line) from the real texture of grd-uint16-gcps, tiled with mirroring; only
    its first ``lines`` lines if given."""
    src = SHARED / "safe-grd-full-size" / NAME
    dst = work / NAME
    if dst.exists():
        return dst
    tmp = work / (NAME + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("*.tiff"))
    with rasterio.open(next((SHARED / "grd-uint16-gcps").glob("*_iw-vv.tiff"))) as t:
        tex = t.read(1)
    tex = np.block([[tex, tex[:, ::-1]], [tex[::-1], tex[::-1, ::-1]]])  # mirrored: no seams
    meas = next((src / "measurement").glob("*.tiff"))
    with rasterio.open(meas) as m:
        profile = m.profile
    profile["height"] = min(lines or profile["height"], profile["height"])
    with rasterio.open(tmp / "measurement" / meas.name, "w", **profile) as out:
        for row in range(0, profile["height"], 512):
            h = min(512, profile["height"] - row)
            rows = np.arange(row, row + h) % tex.shape[0]
            cols = np.arange(profile["width"]) % tex.shape[1]
            out.write(tex[np.ix_(rows, cols)], 1, window=Window(0, row, profile["width"], h))
    tmp.rename(dst)
    return dst


def timed(step: str, cmd: list[str], **extra) -> dict:
    """Run ``cmd`` under /usr/bin/time -v; its wall time and peak RSS."""
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{step} failed: {proc.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time .*: (\S+)", proc.stderr).group(1)
    parts = [float(p) for p in wall.split(":")]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    row = {"step": step, "seconds": round(seconds, 1), "peak_rss_mb": round(rss / 1024), **extra}
    print(json.dumps(row), flush=True)
    return row


def main(work: Path, lines: int | None = None) -> None:
    work.mkdir(parents=True, exist_ok=True)
    product = fill_product(work, lines)
    meas = next((product / "measurement").glob("*.tiff"))
    py = [sys.executable, "-m", "sar_codec_cli.main"]
    sarc, restored = work / "product.sarc", work / "restored" / NAME
    shutil.rmtree(restored.parent, ignore_errors=True)
    restored.parent.mkdir()
    sarc.unlink(missing_ok=True)
    safe_bytes = sum(f.stat().st_size for f in product.rglob("*") if f.is_file())
    timed("sar-codec compress SAFE", [*py, "compress", str(product), "-o", str(sarc), "--device", "cpu", "-q"],
          safe_bytes=safe_bytes)
    size = sarc.stat().st_size
    with rasterio.open(meas) as m:
        pixels = m.width * m.height
    bpp = size * 8 / pixels
    print(json.dumps({"container_bytes": size, "bpp": round(bpp, 4), "container_to_safe": size / safe_bytes}))
    timed("sar-codec verify", [*py, "verify", str(sarc)])
    timed("sar-codec decompress --safe", [*py, "decompress", str(sarc), "--safe", str(restored), "--device",
                                         "cpu", "-q"])
    print(json.dumps(compare_products(product, restored)))
    jp2 = work / "measurement.jp2"
    jp2.unlink(missing_ok=True)
    quality = 100 * bpp / 16  # JP2OpenJPEG QUALITY: percent of the uncompressed size
    timed("gdal_translate JP2OpenJPEG encode", ["gdal_translate", "-q", "-of", "JP2OpenJPEG", "-co",
                                                f"QUALITY={quality:.4f}", str(meas), str(jp2)], quality=quality)
    print(json.dumps({"jp2_bytes": jp2.stat().st_size}))
    back = work / "measurement_from_jp2.tif"
    back.unlink(missing_ok=True)
    timed("gdal_translate JP2OpenJPEG decode", ["gdal_translate", "-q", str(jp2), str(back)])


def compare_products(original: Path, rebuilt: Path) -> dict:
    """Every non-measurement file byte-identical (SHA-256), and each measurement's size, dtype, block layout,
    compression, CRS, transform and GCP count as in the original."""
    import hashlib

    def digest(root: Path) -> dict:
        return {f.relative_to(root).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
                for f in root.rglob("*") if f.is_file() and f.parent.name != "measurement"}

    def layout(path: Path) -> tuple:
        with rasterio.open(path) as d:
            return (d.width, d.height, d.dtypes, d.block_shapes, d.compression, d.crs, d.transform, len(d.gcps[0]))

    files_equal = digest(original) == digest(rebuilt)
    measurements = sorted((original / "measurement").glob("*.tif*"))
    layouts_equal = all(layout(m) == layout(rebuilt / "measurement" / m.name) for m in measurements)
    return {"stored_files_identical": files_equal, "files": len(digest(original)),
            "measurement_layouts_equal": layouts_equal, "measurements": len(measurements)}


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else None)
