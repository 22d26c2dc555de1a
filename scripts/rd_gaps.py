"""PSNR of each codec minus JPEG 2000's at fixed rates, from an `sar-codec evaluate` rd.csv.

Both curves are interpolated linearly in log(bpp); a rate outside a curve's measured range gives '-'.

    python scripts/rd_gaps.py docs/eval/sen1floods11-dev/rd.csv [--rates 0.25 0.5 0.75 1 1.25 1.5]
    python scripts/rd_gaps.py docs/eval/sen1floods11-dev/rd.csv --below jpeg   # points under JPEG's curve
"""

import argparse
import csv
import math
import sys

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--rates", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0, 1.25, 1.5])
    ap.add_argument("--anchor", default="jpeg2000")
    ap.add_argument("--below", default=None, help="list every learned point whose PSNR is under this codec's curve")
    args = ap.parse_args()
    curves: dict[str, list[tuple[float, float]]] = {}
    with open(args.csv, newline="") as f:
        for row in csv.DictReader(f):
            curves.setdefault(row["codec"], []).append((float(row["bpp"]), float(row["psnr"])))

    def at(name: str, rate: float) -> float | None:
        pts = sorted(curves[name])
        bpp = np.log([p[0] for p in pts])
        if not bpp[0] <= math.log(rate) <= bpp[-1]:
            return None
        return float(np.interp(math.log(rate), bpp, [p[1] for p in pts]))

    if args.below:
        for name, pts in curves.items():
            if name in ("jpeg", "jpeg2000", args.below):
                continue
            for bpp, psnr in sorted(pts):
                ref = at(args.below, bpp)
                if ref is not None and psnr < ref:
                    print(f"{name}: {bpp:.3f} bpp, {psnr:.2f} dB < {args.below} {ref:.2f} dB")
        return 0
    print("| codec | " + " | ".join(f"{r:g} bpp" for r in args.rates) + " |")
    print("|---|" + "---:|" * len(args.rates))
    anchor = {r: at(args.anchor, r) for r in args.rates}
    print(f"| {args.anchor} (PSNR dB) | " + " | ".join(f"{anchor[r]:.2f}" if anchor[r] is not None else "-"
                                                     for r in args.rates) + " |")
    for name in curves:
        if name == args.anchor:
            continue
        cells = []
        for r in args.rates:
            v = at(name, r)
            cells.append("-" if v is None or anchor[r] is None else f"{v - anchor[r]:+.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
