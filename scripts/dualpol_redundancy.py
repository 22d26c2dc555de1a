"""How much a joint VV+VH model could save over coding each polarisation alone, measured on dual-pol chips.

Each band is mapped to [0, 1] as the codec maps it; the VV/VH correlation is measured on the structure (8x8 box
low-pass) and on the detail (image minus low-pass, mostly speckle), with the Gaussian high-rate bound on what
knowing one band saves on the other, -0.5 * log2(1 - rho**2) bits per sample (low-pass samples counted once per
8x8 pixels).

    python scripts/dualpol_redundancy.py ../shared/data/sen1floods11-dualpol-db
"""

import math
import sys
from pathlib import Path

import numpy as np
import rasterio
from scipy.ndimage import uniform_filter

from sar_codec.radiometry import fit_mapping

BOX = 8


def _bound(rho: float) -> float:
    return -0.5 * math.log2(1.0 - rho**2)


def main(folder: str) -> int:
    rows = []
    print("| chip | rho full | rho low-pass | rho detail | bound detail [bit/px] | bound low-pass [bit/px] |")
    print("|---|---:|---:|---:|---:|---:|")
    for path in sorted(Path(folder).glob("*.tif")):
        with rasterio.open(path) as ds:
            if ds.count != 2:
                continue
            a = ds.read().astype(np.float64)
        ok = np.isfinite(a).all(0)
        if ok.mean() < 0.5:
            continue
        bands = []
        for b in range(2):
            v = np.where(ok, a[b], np.nan)
            x = fit_mapping(v).forward(v)
            x[~ok] = np.nanmean(x)
            bands.append(x)
        low = [uniform_filter(x, BOX) for x in bands]
        detail = [x - lp for x, lp in zip(bands, low)]
        r = [np.corrcoef(p[0][ok], p[1][ok])[0, 1] for p in (bands, low, detail)]
        row = (*r, _bound(r[2]), _bound(r[1]) / BOX**2)
        rows.append(row)
        print(f"| {path.stem} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    mean = np.mean(rows, axis=0)
    print("| mean | " + " | ".join(f"{v:.3f}" for v in mean) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/sen1floods11-dualpol-db"))
