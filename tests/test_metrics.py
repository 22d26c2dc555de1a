"""Each metric on cases with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sar_codec import metrics
from sar_codec.radiometry import fit_mapping, to_db


def speckle(shape, looks: float, seed: int = 0, mean: float = 1.0) -> np.ndarray:
    """Linear intensity of a homogeneous area with ``looks``-look speckle (Gamma(L, mean/L))."""
    return np.random.default_rng(seed).gamma(looks, mean / looks, size=shape)


def box2(power: np.ndarray) -> np.ndarray:
    """A 2x2 moving average: averages 4 independent samples, so it multiplies the ENL of speckle by 4."""
    p = np.pad(power, ((0, 1), (0, 1)), mode="edge")
    return (p[:-1, :-1] + p[1:, :-1] + p[:-1, 1:] + p[1:, 1:]) / 4


# --- PSNR, SSIM, MS-SSIM -------------------------------------------------------------------------


def test_identical_images_are_perfect():
    x = np.random.default_rng(0).random((192, 192))
    assert metrics.psnr(x, x) == math.inf
    assert metrics.ssim(x, x) == pytest.approx(1.0, abs=1e-9)
    assert metrics.ms_ssim(x, x) == pytest.approx(1.0, abs=1e-6)


def test_psnr_of_a_known_error():
    x = np.random.default_rng(0).random((32, 32)) * 0.9
    assert metrics.psnr(x, x + 0.01) == pytest.approx(40.0, abs=1e-9)  # MSE 1e-4
    assert metrics.psnr(x, x + 0.1) == pytest.approx(20.0, abs=1e-9)


def test_invalid_samples_do_not_count():
    x = np.random.default_rng(0).random((64, 64))
    y = x.copy()
    valid = np.ones_like(x, dtype=bool)
    valid[:10] = False
    y[:10] = 1.0 - y[:10]  # garbage only where invalid
    assert metrics.psnr(x, y, valid) == math.inf
    assert metrics.ssim(x, y, valid) == pytest.approx(1.0, abs=1e-9)
    assert metrics.ssim(x, y) < 0.9


def test_ssim_falls_with_noise_and_ms_ssim_needs_161_pixels():
    rng = np.random.default_rng(1)
    x = rng.random((64, 64))
    small, large = x + rng.normal(0, 0.02, x.shape), x + rng.normal(0, 0.2, x.shape)
    assert 1.0 > metrics.ssim(x, small) > metrics.ssim(x, large)
    assert metrics.ms_ssim(x, small) is None  # 64 < MS_SSIM_MIN_SIDE
    assert metrics.MS_SSIM_MIN_SIDE == 161
    big = rng.random((161, 170))
    assert metrics.ms_ssim(big, big + rng.normal(0, 0.05, big.shape)) < 1.0
    assert metrics.ssim(x[:8, :8], x[:8, :8]) is None


def test_ssim_batch_and_patch_psnr_per_image():
    rng = np.random.default_rng(2)
    x = rng.random((3, 1, 64, 64))
    y = x.copy()
    y[1] += 0.01
    y[2] += 0.1
    p = metrics.patch_psnr(x, y)
    assert p[0] == math.inf and p[1:] == pytest.approx([40.0, 20.0])
    s = metrics.ssim_batch(x, y)
    assert s.shape == (3,) and s[0] == pytest.approx(1.0) and s[1] > s[2]


# --- dB errors, ratio image, bright and dark areas -----------------------------------------------


def test_constant_db_offset_gives_that_bias():
    db = to_db(speckle((64, 64), 4.0), "power")
    m = metrics.band_metrics(db, db + 0.7, np.ones(db.shape, bool), fit_mapping(db))
    assert m["rmse_db"] == pytest.approx(0.7) and m["bias_db"] == pytest.approx(0.7)
    # original / decoded in linear power is 10^(-0.07) everywhere: that mean, no variance
    assert m["ratio_mean"] == pytest.approx(10**-0.07) and m["ratio_var"] == pytest.approx(0.0, abs=1e-12)


def test_bright_and_dark_errors_are_measured_apart():
    rng = np.random.default_rng(3)
    db = rng.normal(-12, 4, (200, 200))
    valid = np.ones(db.shape, bool)
    bright, dark = metrics.extreme_masks(db, valid)
    assert bright.sum() == pytest.approx(db.size * 0.001, abs=2)
    assert dark.sum() == pytest.approx(db.size * 0.01, abs=2)
    decoded = db + np.where(bright, -3.0, 0.0)  # a codec that dims bright scatterers by 3 dB
    m = metrics.band_metrics(db, decoded, valid, fit_mapping(db))
    assert m["bright"]["rmse_db"] == pytest.approx(3.0) and m["bright"]["bias_db"] == pytest.approx(-3.0)
    assert m["dark"]["rmse_db"] == 0.0
    assert m["bias_db"] == pytest.approx(-3.0 * bright.sum() / db.size)


# --- ENL ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("looks", [1.0, 4.4, 10.0])
def test_enl_of_simulated_speckle_is_its_number_of_looks(looks):
    p = speckle((256, 256), looks, seed=int(looks * 10))
    windows = metrics.homogeneous_windows(p, np.ones(p.shape, bool))
    assert len(windows) == round(0.1 * 16 * 16)
    assert metrics.enl(p, windows) == pytest.approx(looks, rel=0.12)


def test_homogeneous_windows_avoid_texture():
    rng = np.random.default_rng(4)
    texture = rng.gamma(0.7, 1 / 0.7, (256, 128)) * 10  # K-distributed clutter on the left half
    p = np.concatenate([texture, np.full((256, 128), 3.0)], axis=1) * rng.gamma(4.0, 0.25, (256, 256))
    windows = metrics.homogeneous_windows(p, np.ones(p.shape, bool))
    assert all(c >= 128 for _, c in windows)
    assert metrics.enl(p, windows) == pytest.approx(4.0, rel=0.15)


def test_windows_skip_nodata_and_none_when_too_small():
    p = speckle((64, 64), 4.0)
    valid = np.ones(p.shape, bool)
    valid[:16, :16] = False
    assert (0, 0) not in metrics.homogeneous_windows(p, valid, fraction=1.0)
    assert metrics.homogeneous_windows(p[:8, :8], valid[:8, :8]) == []
    assert metrics.enl(p, []) is None


def test_a_flattened_window_raises_the_enl_without_making_it_infinite():
    p = speckle((128, 128), 4.0, seed=8)
    windows = metrics.homogeneous_windows(p, np.ones(p.shape, bool))
    r, c = windows[0]
    flat = p.copy()
    flat[r : r + 16, c : c + 16] = 1.0  # a window a coarse JPEG decodes to one value
    assert metrics.enl(flat, windows[:1]) == math.inf
    assert metrics.enl(p, windows) < metrics.enl(flat, windows) < math.inf


def test_smoothing_raises_the_enl_ratio_and_identity_keeps_it():
    looks = 2.0
    p = speckle((256, 256), looks, seed=5)
    db = to_db(p, "power")
    valid = np.ones(db.shape, bool)
    same = metrics.band_metrics(db, db, valid, fit_mapping(db))
    assert same["enl_ratio"] == pytest.approx(1.0) and same["ratio_mean"] == pytest.approx(1.0)
    assert same["psnr"] == math.inf and same["rmse_db"] == 0.0 and same["ratio_var"] == pytest.approx(0.0, abs=1e-12)
    smooth = metrics.band_metrics(db, to_db(box2(p), "power"), valid, fit_mapping(db))
    assert smooth["enl_original"] == pytest.approx(looks, rel=0.12)
    assert smooth["enl_ratio"] == pytest.approx(4.0, rel=0.2)  # four independent looks averaged
    assert smooth["ratio_var"] > 0.1


def test_scene_metrics_pool_bands():
    rng = np.random.default_rng(6)
    db = rng.normal(-10, 3, (2, 64, 64))
    valid = np.ones(db.shape, bool)
    dec = db.copy()
    dec[1] += 1.0
    maps = [fit_mapping(db[0]), fit_mapping(db[1])]
    m = metrics.scene_metrics(db, dec, valid, maps, ["VV", "VH"])
    assert set(m) == {"VV", "VH", "all"}
    assert m["VV"]["bias_db"] == 0.0 and m["VH"]["bias_db"] == pytest.approx(1.0)
    assert m["all"]["bias_db"] == pytest.approx(0.5) and m["all"]["rmse_db"] == pytest.approx(math.sqrt(0.5))
    assert m["all"]["psnr"] == pytest.approx(m["VH"]["psnr"] + 10 * math.log10(2))


# --- BD-rate -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["pchip", "cubic"])
@pytest.mark.parametrize("factor", [0.8, 1.0, 1.5])
def test_bd_rate_of_a_curve_shifted_by_a_rate_factor(method, factor):
    rates = np.array([0.1, 0.25, 0.5, 1.0, 2.0])
    psnr = 20 + 4 * np.log2(rates / 0.1) + 0.3 * np.sqrt(rates)
    bd = metrics.bd_rate(rates, psnr, rates * factor, psnr, method=method)
    assert bd == pytest.approx((factor - 1) * 100, abs=1e-6)


def test_bd_rate_of_overlapping_curves_with_different_points():
    # anchor: PSNR = 10 log2(R) + 30; test needs half the rate everywhere, sampled at other PSNRs
    ra = np.array([0.2, 0.4, 0.8, 1.6, 3.2])
    rt = np.array([0.15, 0.3, 0.6, 1.2])
    bd = metrics.bd_rate(ra, 10 * np.log2(ra) + 30, rt, 10 * np.log2(rt * 2) + 30)
    assert bd == pytest.approx(-50.0, abs=1e-6)


def test_bd_rate_none_without_overlap_or_points():
    r = [0.1, 0.2, 0.4]
    assert metrics.bd_rate(r, [20, 22, 24], r, [30, 32, 34]) is None
    assert metrics.bd_rate(r, [20, 22, 24], [0.1], [21]) is None
    with pytest.raises(ValueError):
        metrics.bd_rate(r, [20, 22, 24], r, [20, 22, 24], method="linear")
