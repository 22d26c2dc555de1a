"""PSNR of each codec minus JPEG 2000's at fixed rates, from an `sar-codec evaluate` rd.csv.

Both curves are interpolated linearly in log(bpp); a rate outside a curve's measured range gives '-'.

    python scripts/rd_gaps.py docs/eval/sen1floods11-dev/rd.csv [--rates 0.25 0.5 0.75 1 1.25 1.5]
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
