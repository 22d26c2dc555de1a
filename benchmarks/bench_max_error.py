"""Bits of sar-codec's guaranteed-error mode against LERC at the same bound, on real scenes.

    python benchmarks/bench_max_error.py FILE [FILE ...] [--errors 0.1 0.5 1 2] [--qualities 3 6] [--crop 512]

For each file (its centred crop of at most ``--crop`` pixels a side), each bound E (dB) and each quality:
the whole ``.sarc`` written by ``compress_scene(max_error_db=E)`` (every byte), decoded back and its worst
error in dB measured on every valid sample; and LERC 4 + zstd (as GDAL's ``COMPRESS=LERC_ZSTD`` with
``MAX_Z_ERROR=E``) of the dB values (float32, one band at a time, LERC's own mask for nodata), with its worst
error. Rates are bits per pixel per polarisation. Prints one JSON object per measurement.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from sar_codec import baselines, codec
from sar_codec.compare import crop_window
from sar_codec.radiometry import to_db
from sar_codec.scene import open_scene


def _crop(path: Path, crop: int, tmp: Path) -> tuple[Path, np.ndarray, np.ndarray, str]:
    from sar_codec.compare import _write

    with open_scene(path) as scene:
        win = crop_window(scene.info, crop)
        raw = scene.read(win.row_off, win.col_off, win.height, win.width)
        valid = scene.valid_mask(raw)
        info = scene.info.for_window(win.row_off, win.col_off, win.height, win.width)
    out = tmp / f"{path.stem}.tif"
    _write(out, info, raw)
    return out, raw, valid, info.units


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--errors", nargs="+", type=float, default=[0.1, 0.5, 1.0, 2.0])
    ap.add_argument("--qualities", nargs="+", type=int, default=[6])
    ap.add_argument("--model", default="bmshj2018-hyperprior")
    ap.add_argument("--crop", type=int, default=512)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for f in args.files:
            src, raw, valid, units = _crop(f, args.crop, tmp)
            db = to_db(raw, units)
            pixels = raw.size
            for e in args.errors:
                lerc_bytes, lerc_worst = 0, 0.0
                for b in range(raw.shape[0]):
                    n, dec = baselines.lerc_code(np.where(valid[b], db[b], 0).astype(np.float32), e, valid[b])
                    lerc_bytes += n
                    lerc_worst = max(lerc_worst, float(np.abs(dec[valid[b]] - db[b][valid[b]]).max()))
                print(json.dumps({"file": f.name, "units": units, "shape": list(raw.shape), "max_error_db": e,
                                  "codec": "lerc", "bytes": lerc_bytes, "bpp": lerc_bytes * 8 / pixels,
                                  "worst_db": lerc_worst}), flush=True)
                for q in args.qualities:
                    t = time.monotonic()
                    r = codec.compress_scene(src, tmp / "m.sarc", architecture=args.model, quality=q, device="cpu",
                                             max_error_db=e, overwrite=True)
                    out = codec.decompress_scene(tmp / "m.sarc", tmp / "m.tif", device="cpu", overwrite=True)
                    with open_scene(out, units=units) as s:
                        back = s.read(0, 0, raw.shape[1], raw.shape[2])
                    worst = float(np.abs(to_db(back, units)[valid] - db[valid]).max())
                    print(json.dumps({"file": f.name, "units": units, "shape": list(raw.shape), "max_error_db": e,
                                      "codec": f"{args.model} q{q}", "bytes": r.bytes, "bpp": r.bpp,
                                      "worst_db": worst, "seconds": round(time.monotonic() - t, 1)}), flush=True)


if __name__ == "__main__":
    main()
