"""Baselines (JPEG, JPEG 2000 whole and tiled, JPEG XL, LERC): exact byte counts, rate matching within 10 %,
LERC's error bound, the lossless reference."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from sar_codec import baselines, metrics
from sar_codec.radiometry import fit_mapping, to_db


@pytest.fixture(scope="module")
def speckled() -> list[np.ndarray]:
    """Two 192x192 bands of speckled intensity over a smooth field, mapped to [0, 1] as the codec maps them."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:192, 0:192]
    field = 10 ** (np.sin(xx / 30.0) + np.cos(yy / 17.0))
    out = []
    for looks in (4.4, 1.0):
        db = to_db(field * rng.gamma(looks, 1 / looks, field.shape), "power")
        out.append(fit_mapping(db).forward(db))
    return out


def test_quantise_is_round_to_nearest():
    q = baselines.quantise(np.array([0.0, 0.5, 1.0, 1.2, -0.1]), 12)
    assert q.dtype == np.uint16 and q.tolist() == [0, 2048, 4095, 4095, 0]
    assert baselines.quantise(np.array([0.5]), 8).dtype == np.uint8


@pytest.mark.parametrize("codec", baselines.CODECS)
@pytest.mark.parametrize("target", [0.5, 1.0, 2.0])
def test_rate_is_matched_within_ten_percent(speckled, codec, target):
    c = baselines.match_rate(codec, speckled, target)
    assert c.note is None
    assert abs(c.bpp / target - 1) <= 0.10
    assert c.pixels == 2 * 192 * 192 and len(c.decoded) == 2
    slack = c.param if codec == "lerc" else 0.0  # LERC may overshoot [0, 1] by at most its maximum error
    assert all(d.shape == (192, 192) and -slack <= d.min() and d.max() <= 1 + slack for d in c.decoded)


def test_lerc_holds_its_maximum_error(speckled):
    """Up to the float32 rounding of its decoded values (one float32 step at 1: 1.2e-7)."""
    for max_error in (1e-4, 1e-3, 0.02):
        c = baselines.lerc(speckled, max_error)
        err = max(np.abs(d - s.astype(np.float32)).max() for d, s in zip(c.decoded, speckled))
        assert max_error / 2 < err <= max_error + np.spacing(np.float32(1))


def test_lerc_on_db_values_with_a_mask():
    rng = np.random.default_rng(2)
    db = rng.normal(-12, 5, (96, 80)).astype(np.float32)
    valid = rng.random(db.shape) > 0.1
    n, dec = baselines.lerc_code(np.where(valid, db, 0).astype(np.float32), 0.5, valid)
    assert np.isnan(dec[~valid]).all() and np.abs(dec[valid] - db[valid]).max() <= 0.5
    assert n < db.nbytes / 3


def test_jpegxl_codes_16_bits(speckled):
    import imagecodecs

    c = baselines.jpegxl(speckled[:1], 0.05)
    q = baselines.quantise(speckled[0], 16)
    data = imagecodecs.jpegxl_encode(q, distance=0.05, effort=7, usecontainer=False, numthreads=1)
    assert c.nbytes == len(data) and q.dtype == np.uint16
    eight_bits = baselines.quantise(speckled[0], 8) / 255.0
    assert metrics.psnr(speckled[0], c.decoded[0]) > metrics.psnr(speckled[0], eight_bits)  # finer than 8 bits
    assert len(np.unique(imagecodecs.jpegxl_decode(data))) > 256


def test_tiled_jpeg2000_is_whole_image_when_the_image_fits_in_a_tile(speckled):
    whole, tiled = baselines.jpeg2000(speckled, 5.0), baselines.jpeg2000(speckled, 5.0, baselines.ARCHIVE_TILE)
    assert whole.nbytes == tiled.nbytes and tiled.codec == "jpeg2000-tiled"
    small_tiles = baselines.jpeg2000(speckled, 5.0, tile=64)
    assert small_tiles.nbytes != whole.nbytes


def test_tiled_jpeg2000_is_matched_too(speckled):
    c = baselines.match_rate("jpeg2000", speckled, 1.0, tile=64)
    assert c.note is None and abs(c.bpp - 1.0) <= 0.10


def test_quality_rises_with_rate(speckled):
    for codec in baselines.CODECS:
        low, high = (baselines.match_rate(codec, speckled, t) for t in (0.5, 2.0))
        assert metrics.psnr(speckled[0], high.decoded[0]) > metrics.psnr(speckled[0], low.decoded[0]) + 1.5


def test_unreachable_rate_gets_the_closest_and_a_note(speckled):
    c = baselines.match_rate("jpeg", speckled, 0.001)
    lowest = baselines.jpeg(speckled, baselines.JPEG_MIN_QUALITY)
    assert c.bpp == lowest.bpp and "cannot reach" in c.note  # the lowest JPEG rate
    c = baselines.match_rate("jpeg2000", speckled, 40.0)
    assert c.bpp < 40.0 * 0.9 and "cannot reach" in c.note


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_byte_counts_are_whole_files(speckled, tmp_path):
    """The counted bytes are exactly the size of the file GDAL writes to disk with the same options."""
    c = baselines.jpeg(speckled[:1], 40)
    path = tmp_path / "a.jpg"
    with rasterio.open(path, "w", driver="JPEG", width=192, height=192, count=1, dtype="uint8", quality=40) as dst:
        dst.write(baselines.quantise(speckled[0], 8), 1)
    assert c.nbytes == path.stat().st_size
    with rasterio.open(path) as src:
        assert np.array_equal(src.read(1) / 255.0, c.decoded[0])


def test_bad_input_is_refused(speckled):
    with pytest.raises(ValueError):
        baselines.jpeg([np.full((8, 8), np.nan)], 50)
    with pytest.raises(ValueError, match="positive"):
        baselines.match_rate("jpeg", speckled, 0.0)
    with pytest.raises(ValueError, match="Unknown baseline"):
        baselines.match_rate("webp", speckled, 1.0)


def test_lossless_reference_size():
    rng = np.random.default_rng(1)
    flat = np.full((2, 256, 256), 7, dtype=np.uint16)
    noisy = rng.integers(0, 2**16, (2, 256, 256)).astype(np.uint16)
    assert baselines.lossless_cog_bytes(flat, 0) < flat.nbytes / 50
    assert baselines.lossless_cog_bytes(noisy, 0) > noisy.nbytes * 0.95  # incompressible stays ~raw
