"""Image-quality metrics for decoded SAR: fidelity in the codec's [0, 1] domain, in dB, and SAR-specific.

Every function takes arrays (no file I/O). The normalised domain is the one the radiometric mapping of
:mod:`sar_codec.radiometry` defines, so PSNR and SSIM are comparable with the founding study's numbers.
``docs/metrics.md`` gives each formula, how homogeneous areas are chosen and how BD-rate is computed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .radiometry import Mapping, from_db

SSIM_WINDOW = 11  # pytorch-msssim's default Gaussian window (sigma 1.5), as in Wang et al. 2004
MS_SSIM_MIN_SIDE = (SSIM_WINDOW - 1) * 2**4 + 1  # 161: five scales, four 2x downsamplings
ENL_WINDOW = 16  # side of the square windows searched for homogeneous areas
ENL_FRACTION = 0.1  # share of the fully valid windows, lowest coefficient of variation first, kept as homogeneous
BRIGHT_PERCENTILE = 99.9  # bright scatterers: the top 0.1 % of the original's dB values
DARK_PERCENTILE = 1.0  # dark areas: the bottom 1 %
DB_WINDOW = 35.0  # dB: the peak of PSNR in dB, the fixed display window SAR users read (per polarisation)


# --- fidelity in the normalised domain -----------------------------------------------------------


def mse(ref: np.ndarray, test: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean squared error over the valid samples."""
    d = np.asarray(test, np.float64) - np.asarray(ref, np.float64)
    return float(np.mean(d[valid] ** 2 if valid is not None else d**2))


def psnr_from_mse(value: float, data_range: float = 1.0) -> float:
    """10 log10(range^2 / MSE); ``inf`` for a zero error."""
    return math.inf if value <= 0 else 10.0 * math.log10(data_range**2 / value)


def psnr(ref: np.ndarray, test: np.ndarray, valid: np.ndarray | None = None, data_range: float = 1.0) -> float:
    """PSNR in dB of ``test`` against ``ref`` over the valid samples (``inf`` when identical)."""
    return psnr_from_mse(mse(ref, test, valid), data_range)


def _with_holes_filled(ref: np.ndarray, test: np.ndarray, valid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Copies where invalid samples hold the mean of the valid reference in both images (no error there)."""
    ref = np.array(ref, dtype=np.float64)
    test = np.array(test, dtype=np.float64)
    if valid is not None and not valid.all():
        fill = float(ref[valid].mean()) if valid.any() else 0.0
        ref[~valid] = fill
        test[~valid] = fill
    return ref, test


def _as_batch(a: np.ndarray):
    import torch

    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
    while t.dim() < 4:
        t = t[None]
    return t


def ssim_batch(ref: np.ndarray, test: np.ndarray) -> np.ndarray:
    """SSIM of each image of a batch (N, 1, H, W) in [0, 1] (pytorch-msssim, 11x11 Gaussian window)."""
    from pytorch_msssim import ssim as _ssim

    return _ssim(_as_batch(ref), _as_batch(test), data_range=1.0, size_average=False,
                 win_size=SSIM_WINDOW).numpy().astype(np.float64)


def ssim(ref: np.ndarray, test: np.ndarray, valid: np.ndarray | None = None) -> float | None:
    """SSIM of two [0, 1] images (None when a side is under 11 pixels); invalid samples count as exact."""
    if min(np.shape(ref)[-2:]) < SSIM_WINDOW:
        return None
    ref, test = _with_holes_filled(ref, test, valid)
    return float(ssim_batch(ref, test).mean())


def ms_ssim(ref: np.ndarray, test: np.ndarray, valid: np.ndarray | None = None) -> float | None:
    """MS-SSIM of two [0, 1] images (pytorch-msssim, 5 scales); None when a side is under 161 pixels."""
    if min(np.shape(ref)[-2:]) < MS_SSIM_MIN_SIDE:
        return None
    from pytorch_msssim import ms_ssim as _ms_ssim

    ref, test = _with_holes_filled(ref, test, valid)
    return float(_ms_ssim(_as_batch(ref), _as_batch(test), data_range=1.0, win_size=SSIM_WINDOW))


# --- errors in dB --------------------------------------------------------------------------------


def extreme_masks(ref_db: np.ndarray, valid: np.ndarray, bright: float = BRIGHT_PERCENTILE,
                  dark: float = DARK_PERCENTILE) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the bright scatterers (>= ``bright`` percentile of dB) and dark areas (<= ``dark`` percentile)."""
    if not valid.any():
        return np.zeros_like(valid), np.zeros_like(valid)
    hi, lo = np.percentile(ref_db[valid], [bright, dark])
    return valid & (ref_db >= hi), valid & (ref_db <= lo)


# --- SAR-specific --------------------------------------------------------------------------------


def homogeneous_windows(power: np.ndarray, valid: np.ndarray, size: int = ENL_WINDOW,
                        fraction: float = ENL_FRACTION) -> list[tuple[int, int]]:
    """Top-left corners of the most homogeneous non-overlapping ``size`` windows of a linear-intensity image.

    Homogeneity is the coefficient of variation (std / mean) measured on the even checkerboard samples
    ((row + col) even) of each fully valid window; the ``fraction`` with the lowest values are kept (at
    least one). :func:`enl` then uses the odd samples only, so the choice does not bias the estimate
    upwards the way choosing and estimating on the same samples would.
    """
    power = np.asarray(power, np.float64)
    h, w = power.shape
    even = (np.add.outer(np.arange(size), np.arange(size)) % 2) == 0
    corners, cvs = [], []
    for r in range(0, h - size + 1, size):
        for c in range(0, w - size + 1, size):
            if not valid[r : r + size, c : c + size].all():
                continue
            v = power[r : r + size, c : c + size][even]
            m = v.mean()
            if m <= 0:
                continue
            corners.append((r, c))
            cvs.append(v.std() / m)
    if not corners:
        return []
    keep = max(1, round(fraction * len(corners)))
    order = np.argsort(np.asarray(cvs), kind="stable")[:keep]
    return [corners[i] for i in sorted(order)]


def enl(power: np.ndarray, windows: Sequence[tuple[int, int]], size: int = ENL_WINDOW) -> float | None:
    """Equivalent number of looks, mean^2 / variance of linear intensity, over ``windows``.

    Each window's mean^2 / variance uses its odd checkerboard samples (see :func:`homogeneous_windows`); the
    windows are combined as 1 / mean(variance / mean^2) (the harmonic mean), so a window a codec flattened to
    a constant (infinite ENL) raises the result without making it infinite; only all-flat windows give inf.
    """
    if not windows:
        return None
    power = np.asarray(power, np.float64)
    odd = (np.add.outer(np.arange(size), np.arange(size)) % 2) == 1
    cv2 = []
    for r, c in windows:
        v = power[r : r + size, c : c + size][odd]
        cv2.append(v.var() / v.mean() ** 2)
    mean_cv2 = float(np.mean(cv2))
    return math.inf if mean_cv2 == 0 else 1.0 / mean_cv2


# --- one band, a whole scene ---------------------------------------------------------------------


def _power(db: np.ndarray) -> np.ndarray:
    return from_db(db, "power", np.float64)


def _band_parts(ref_db: np.ndarray, test_db: np.ndarray, valid: np.ndarray, mapping: Mapping) -> dict:
    """Sums and per-band values from which :func:`band_metrics` and :func:`scene_metrics` are built."""
    ref_n, test_n = mapping.forward(ref_db), mapping.forward(test_db)
    ref_p, test_p = _power(ref_db), _power(test_db)
    bright, dark = extreme_masks(ref_db, valid)
    windows = homogeneous_windows(ref_p, valid)
    d = (test_db - ref_db)
    ratio = np.where(valid, ref_p / test_p, 0.0)
    return {
        "n": int(valid.sum()),
        "sq_norm": float(np.sum((test_n - ref_n)[valid] ** 2)),
        "sq_db": float(np.sum(d[valid] ** 2)),
        "sum_db": float(np.sum(d[valid])),
        "ratio_sum": float(ratio[valid].sum()),
        "ratio_sq": float((ratio[valid] ** 2).sum()),
        "bright": (int(bright.sum()), float(np.sum(d[bright] ** 2)), float(np.sum(d[bright]))),
        "dark": (int(dark.sum()), float(np.sum(d[dark] ** 2)), float(np.sum(d[dark]))),
        "ssim": ssim(ref_n, test_n, valid),
        "ms_ssim": ms_ssim(ref_n, test_n, valid),
        "enl": [(enl(ref_p, [w]), enl(test_p, [w])) for w in windows],
    }


def _harmonic(values: Sequence[float]) -> float | None:
    """Harmonic mean of per-window ENLs (as :func:`enl` combines windows); inf only when all are inf."""
    if not values:
        return None
    mean_inv = float(np.mean([1.0 / v for v in values]))
    return math.inf if mean_inv == 0 else 1.0 / mean_inv


def _finish(parts: list[dict]) -> dict:
    """Metrics from the parts of one band, or pooled over several bands."""
    n = sum(p["n"] for p in parts)
    if n == 0:
        return {"valid_samples": 0}

    def pooled(key: str) -> dict:
        k = sum(p[key][0] for p in parts)
        if k == 0:
            return {"samples": 0, "rmse_db": None, "bias_db": None}
        return {"samples": k, "rmse_db": math.sqrt(sum(p[key][1] for p in parts) / k),
                "bias_db": sum(p[key][2] for p in parts) / k}

    def weighted(key: str) -> float | None:
        vals = [(p[key], p["n"]) for p in parts if p[key] is not None]
        return sum(v * k for v, k in vals) / sum(k for _, k in vals) if vals else None

    pairs = [e for p in parts for e in p["enl"]]
    enl_ref, enl_test = (_harmonic([e[k] for e in pairs]) for k in (0, 1))
    ratio_mean = sum(p["ratio_sum"] for p in parts) / n
    return {
        "valid_samples": n,
        "psnr": psnr_from_mse(sum(p["sq_norm"] for p in parts) / n),
        "ssim": weighted("ssim"),
        "ms_ssim": weighted("ms_ssim"),
        "rmse_db": math.sqrt(sum(p["sq_db"] for p in parts) / n),
        "psnr_db": psnr_from_mse(sum(p["sq_db"] for p in parts) / n, DB_WINDOW),
        "bias_db": sum(p["sum_db"] for p in parts) / n,
        "enl_windows": len(pairs),
        "enl_original": enl_ref,
        "enl_decoded": enl_test,
        "enl_ratio": enl_test / enl_ref if pairs and math.isfinite(enl_ref) else None,
        "ratio_mean": ratio_mean,
        "ratio_var": max(0.0, sum(p["ratio_sq"] for p in parts) / n - ratio_mean**2),
        "bright": pooled("bright"),
        "dark": pooled("dark"),
    }


def band_metrics(ref_db: np.ndarray, test_db: np.ndarray, valid: np.ndarray, mapping: Mapping) -> dict:
    """Every metric for one band: ``ref_db``/``test_db`` in dB, ``mapping`` the band's dB -> [0, 1] map."""
    return _finish([_band_parts(ref_db, test_db, valid, mapping)])


def scene_metrics(ref_db: np.ndarray, test_db: np.ndarray, valid: np.ndarray, mappings: Sequence[Mapping],
                  band_names: Sequence[str]) -> dict:
    """Metrics per band and over all bands (pooled samples; SSIM weighted by valid samples), keyed by name."""
    parts = [_band_parts(ref_db[b], test_db[b], valid[b], mappings[b]) for b in range(len(mappings))]
    out = {name: _finish([p]) for name, p in zip(band_names, parts)}
    out["all"] = _finish(parts)
    return out


# --- patch sets ----------------------------------------------------------------------------------


def patch_psnr(ref: np.ndarray, test: np.ndarray) -> np.ndarray:
    """PSNR of each patch of a batch (N, ...) in [0, 1]."""
    d = (np.asarray(test, np.float64) - np.asarray(ref, np.float64)).reshape(len(ref), -1)
    m = np.mean(d**2, axis=1)
    with np.errstate(divide="ignore"):
        return np.where(m > 0, 10.0 * np.log10(1.0 / np.maximum(m, 1e-300)), np.inf)


# --- Bjontegaard delta rate ----------------------------------------------------------------------


def _frontier(rates: Sequence[float], quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Points not beaten by another (lower or equal rate and higher quality), by increasing rate."""
    pts = sorted(zip(rates, quality))
    keep: list[tuple[float, float]] = []
    for r, q in pts:
        if r > 0 and math.isfinite(q) and (not keep or q > keep[-1][1]):
            keep.append((r, q))
    return np.array([r for r, _ in keep]), np.array([q for _, q in keep])


def _integral(log_r: np.ndarray, q: np.ndarray, lo: float, hi: float, method: str) -> float:
    if method == "cubic":
        poly = np.polyint(np.polyfit(q, log_r, min(3, len(q) - 1)))
        return float(np.polyval(poly, hi) - np.polyval(poly, lo))
    from scipy.interpolate import PchipInterpolator

    return float(PchipInterpolator(q, log_r).integrate(lo, hi))


def bd_rate(anchor_rates: Sequence[float], anchor_quality: Sequence[float], test_rates: Sequence[float],
            test_quality: Sequence[float], method: str = "pchip") -> float | None:
    """Bjontegaard delta rate (VCEG-M33) of ``test`` against ``anchor``, in percent (negative = fewer bits).

    log(rate) is interpolated as a function of quality (PSNR) for each curve, ``pchip`` (piecewise cubic
    Hermite, as in current JVET/AOM practice) or ``cubic`` (the original third-order polynomial fit), and
    integrated over the overlapping quality interval; BD-rate = exp(mean difference) - 1. Only points on
    each curve's rate-quality frontier are used. None when a curve has under 2 points or the curves'
    quality ranges do not overlap.
    """
    if method not in ("pchip", "cubic"):
        raise ValueError(f"unknown BD-rate method {method!r}")
    ra, qa = _frontier(anchor_rates, anchor_quality)
    rt, qt = _frontier(test_rates, test_quality)
    if len(ra) < 2 or len(rt) < 2:
        return None
    lo, hi = max(qa.min(), qt.min()), min(qa.max(), qt.max())
    if hi <= lo:
        return None
    ia = _integral(np.log(ra), qa, lo, hi, method)
    it = _integral(np.log(rt), qt, lo, hi, method)
    return float((math.exp((it - ia) / (hi - lo)) - 1.0) * 100.0)
