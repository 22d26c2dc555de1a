"""The guaranteed-error mode: |decoded - original| <= E dB on every valid sample, bright targets and water included."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

from sar_codec import codec, residual
from sar_codec.byte_reader import ByteReader
from sar_codec.container import read_header
from sar_codec.errors import ContainerError, InputError
from sar_codec.radiometry import to_db

Q = 1  # the lowest quality: the residual layer does the most work


def _scene(units: str, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Speckle over a smooth field with bright outliers, water (very low values) and nodata."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:96, 0:136]
    power = 10 ** (np.sin(xx / 20.0) - 1.5) * rng.gamma(1.0, 1.0, (2, 96, 136))
    power[:, 20:40, 30:60] *= 1e-4  # water
    power[:, 60:63, 100:104] *= 1e5  # bright targets
    power[0, 5, 7] = 1e3
    if units == "amplitude":
        a = np.clip(np.rint(np.sqrt(power) * 300), 1, 65535).astype("uint16")
        a[:, 20:25, 30:40] = 1  # the lowest DN, whose neighbours are 6 dB apart
        a[:, :2, :] = 0
        return a, {"nodata": 0}
    a = (10 * np.log10(power) if units == "db" else power).astype("float32")
    a[:, -3:, :] = np.nan
    return a, {"nodata": float("nan")}


def _max_error(src, out, units: str) -> tuple[float, np.ndarray, np.ndarray]:
    with rasterio.open(src) as s, rasterio.open(out) as d:
        a, b = s.read(), d.read()
    valid = (a != 0) if a.dtype.kind == "u" else ~np.isnan(a)
    err = np.abs(to_db(b[valid], units) - to_db(a[valid], units))
    return float(err.max()), a[~valid], b[~valid]


@pytest.mark.parametrize("units", ["db", "amplitude", "power"])
def test_the_bound_holds_on_every_valid_sample(units, tmp_path, make_raster):
    a, profile = _scene(units)
    src = make_raster(tmp_path / "s.tif", a, crs="EPSG:4326", transform=Affine(1e-4, 0, 10, 0, -1e-4, 50),
                      **profile)
    sizes = []
    for e in (0.1, 1.0):
        sarc = tmp_path / f"s{e}.sarc"
        r = codec.compress_scene(src, sarc, quality=Q, device="cpu", units=units, max_error_db=e, block_size=64)
        assert read_header(sarc)["max_error_db"] == e
        out = codec.decompress_scene(sarc, tmp_path / f"s{e}.tif", device="cpu")
        worst, before, after = _max_error(src, out, units)
        assert worst <= e
        assert np.array_equal(before.view(np.uint8), after.view(np.uint8))  # nodata kept bit for bit
        sizes.append(r.bytes)
    assert sizes[0] > sizes[1]  # a tighter bound costs bits


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_windows_decode_the_same_bounded_values(tmp_path, make_raster):
    a, profile = _scene("db", seed=1)
    src = make_raster(tmp_path / "s.tif", a, **profile)
    sarc = codec.compress_scene(src, tmp_path / "s.sarc", quality=Q, device="cpu", max_error_db=0.5,
                                block_size=64).output
    full = codec.decompress_scene(sarc, tmp_path / "full.tif", device="cpu")
    part = codec.decompress_scene(sarc, tmp_path / "part.tif", window=(50, 30, 70, 40), device="cpu")
    with rasterio.open(full) as f, rasterio.open(part) as p:
        assert np.array_equal(f.read()[:, 30:70, 50:120], p.read(), equal_nan=True)


def test_reconstruction_fixes_what_rounding_breaks():
    """uint16 DN 1..3 are 3.5-6 dB apart: no residual step reaches them, so they are kept exactly."""
    raw = np.array([[[1, 2, 3, 1000, 40000]]], dtype=np.uint16)
    base = np.array([[[5, 5, 5, 990, 41000]]], dtype=np.uint16)
    valid = np.ones_like(raw, dtype=bool)
    section = residual.encode(raw, valid, base, "amplitude", 0, 0.05)
    out = residual.apply(section, base, valid, "amplitude", 0, 0.05, "test")
    assert np.abs(to_db(out, "amplitude") - to_db(raw, "amplitude")).max() <= 0.05
    assert out[0, 0, :3].tolist() == [1, 2, 3]


@pytest.mark.parametrize("scale", [0.3, 3.0, 30.0])
def test_residuals_are_coded_near_their_entropy(scale):
    q = np.rint(np.random.default_rng(4).laplace(0, scale, 100_000)).astype(np.int64)
    packed = residual._pack_q(q)
    assert np.array_equal(residual._unpack_q(ByteReader(packed, "test"), q.size), q)
    _, counts = np.unique(q, return_counts=True)
    p = counts / q.size
    entropy_bytes = -(p * np.log2(p)).sum() * q.size / 8
    assert packed[1] == residual.RANS and len(packed) < 1.01 * entropy_bytes + 200
    wide = np.arange(-5000, 5000)  # too many symbols for the rANS table: zlib or LZMA
    assert residual._pack_q(wide)[1] in (residual.ZLIB, residual.LZMA)
    assert np.array_equal(residual._unpack_q(ByteReader(residual._pack_q(wide), "t"), wide.size), wide)


def test_bad_bounds_and_corrupt_sections_are_clear_errors(tmp_path, make_raster):
    for bad in (0, -1, math.nan, math.inf, "x"):
        with pytest.raises(InputError, match="positive number of dB"):
            residual.check_bound(bad)
    a, profile = _scene("db")
    src = make_raster(tmp_path / "s.tif", a, **profile)
    with pytest.raises(InputError, match="positive number of dB"):
        codec.compress_scene(src, tmp_path / "x.sarc", quality=Q, device="cpu", max_error_db=-0.5)
    assert not (tmp_path / "x.sarc").exists()
    raw = a[:, :8, :8].astype(np.float32)
    valid = ~np.isnan(raw)
    section = residual.encode(raw, valid, raw + np.float32(0.3), "db", None, 0.1)
    for broken in (section[:-1], section + b"\0", section[:2] + b"\xff" + section[3:]):
        with pytest.raises(ContainerError, match="residual section"):
            residual.apply(broken, raw, valid, "db", None, 0.1, "block 0")


def test_cli_compress_with_a_bound(tmp_path, make_raster):
    from sar_codec_cli.main import cli

    a, profile = _scene("amplitude")
    src = make_raster(tmp_path / "s.tif", a, **profile)
    res = CliRunner().invoke(cli, ["compress", str(src), "-o", str(tmp_path / "s.sarc"), "--quality", str(Q),
                                   "--device", "cpu", "--max-error-db", "0.5", "-q"])
    assert res.exit_code == 0, res.output
    assert read_header(tmp_path / "s.sarc")["max_error_db"] == 0.5
    res = CliRunner().invoke(cli, ["compress", str(src), "-o", str(tmp_path / "t.sarc"), "--max-error-db", "0"])
    assert res.exit_code != 0 and "positive number of dB" in res.output and "Traceback" not in res.output


@pytest.mark.data
@pytest.mark.parametrize("folder, units", [("sen1floods11-dualpol-db", "db"), ("grd-uint16-gcps", "amplitude")])
def test_the_bound_holds_on_real_chips(shared_data, tmp_path, folder, units):
    src = sorted((shared_data / folder).glob("*.tif*"))[0]
    for e in (0.1, 1.0):
        sarc = codec.compress_scene(src, tmp_path / "r.sarc", quality=6, device="cpu", max_error_db=e,
                                    overwrite=True).output
        out = codec.decompress_scene(sarc, tmp_path / "r.tif", device="cpu", overwrite=True)
        worst, before, after = _max_error(src, out, units)
        assert worst <= e
        assert np.array_equal(before.view(np.uint8), after.view(np.uint8))
