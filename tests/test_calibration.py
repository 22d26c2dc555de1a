"""Calibrated backscatter from decoded DNs with the product's own LUTs (value = DN^2 / A^2, A bilinear)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from sar_codec import codec
from sar_codec.calibration import CalibrationLut, calibrate, calibration_record, decompress_calibrated
from sar_codec.errors import ContainerError, InputError

TINY = b"""<?xml version="1.0"?><calibration><calibrationVectorList count="3">
<calibrationVector><line>-10</line><pixel count="3">0 10 30</pixel>
  <sigmaNought count="3">100 200 400</sigmaNought><betaNought count="3">5 5 5</betaNought>
  <gamma count="3">1 2 3</gamma><dn count="3">1 1 1</dn></calibrationVector>
<calibrationVector><line>20</line><pixel count="4">0 5 20 30</pixel>
  <sigmaNought count="4">300 300 500 600</sigmaNought><betaNought count="4">5 5 5 5</betaNought>
  <gamma count="4">1 2 3 4</gamma><dn count="4">1 1 1 1</dn></calibrationVector>
<calibrationVector><line>50</line><pixel count="2">0 30</pixel>
  <sigmaNought count="2">700 100</sigmaNought><betaNought count="2">5 5</betaNought>
  <gamma count="2">1 1</gamma><dn count="2">1 1</dn></calibrationVector>
</calibrationVectorList></calibration>"""


def _lin(x, xs, ys):
    """Piecewise-linear interpolation written out, clamped at the ends (the reference, not np.interp)."""
    if x <= xs[0]:
        return ys[0]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[-1]


def _reference_gain(xml: bytes, tag: str, line: float, pixel: float) -> float:
    """A at one (line, pixel): interpolate the two bracketing vectors along pixel, then along line."""
    vectors = re.findall(rb"<line>(-?\d+)</line>\s*<pixel[^>]*>([^<]*)</pixel>.*?<" + tag.encode()
                         + rb"[^>]*>([^<]*)</", xml, re.S)
    vectors = sorted((float(a), [float(v) for v in p.split()], [float(v) for v in s.split()])
                     for a, p, s in vectors)
    lines = [v[0] for v in vectors]
    along = [_lin(pixel, v[1], v[2]) for v in vectors]
    return _lin(line, lines, along)


@pytest.mark.parametrize("kind,tag", [("sigma0", "sigmaNought"), ("beta0", "betaNought"), ("gamma0", "gamma")])
def test_lut_is_bilinear_in_line_and_pixel(kind, tag):
    lut = CalibrationLut.from_xml(TINY, kind, "tiny.xml")
    gains = lut.gains(-15, -2, 75, 40)  # covers lines before, between and after the vectors
    for r in range(0, 75, 7):
        for c in range(0, 40, 3):
            expected = _reference_gain(TINY, tag, r - 15, c - 2)
            assert gains[r, c] == pytest.approx(expected, rel=1e-12), (r, c)
    assert np.allclose(lut.gains(5, 3, 10, 20), gains[20:30, 5:25])  # windows agree with the whole


def test_calibrate_is_dn_squared_over_a_squared_with_nan_nodata():
    dn = np.array([[0, 10], [200, 65535]], dtype="uint16")
    gains = np.array([[500.0, 500.0], [250.0, 1000.0]])
    out = calibrate(dn, gains)
    assert out.dtype == np.float32 and math.isnan(out[0, 0])
    assert out[0, 1] == pytest.approx(100 / 250000) and out[1, 0] == pytest.approx(40000 / 62500)
    assert out[1, 1] == pytest.approx(65535.0**2 / 1e6, rel=1e-6)


def test_bad_luts_and_kinds_are_one_sentence():
    with pytest.raises(InputError, match="Unknown calibration"):
        CalibrationLut.from_xml(TINY, "sigma1", "tiny.xml")
    with pytest.raises(ContainerError, match="bad.xml"):
        CalibrationLut.from_xml(b"<calibration><oops", "sigma0", "bad.xml")
    with pytest.raises(ContainerError, match="no usable"):
        CalibrationLut.from_xml(b"<calibration/>", "sigma0", "empty.xml")
    files = [{"path": "X.SAFE/annotation/calibration/calibration-s1b-iw-grd-vv-1.xml"}]
    assert calibration_record(files, "VV", "c.sarc") is files[0]
    with pytest.raises(InputError, match="no calibration annotation for VH"):
        calibration_record(files, "VH", "c.sarc")


def test_calibrated_decode_uses_the_products_own_luts(test_safe, safe_container, tmp_path):
    dn_path = codec.decompress_scene(safe_container, tmp_path / "dn.tif", device="cpu")
    out = decompress_calibrated(safe_container, tmp_path / "sigma0.tif", "sigma0", device="cpu")
    with rasterio.open(dn_path) as d, rasterio.open(out) as s:
        dn, sigma0 = d.read(), s.read()
        assert s.dtypes == ("float32", "float32") and math.isnan(s.nodata)
        assert [(g.row, g.col, g.x, g.y) for g in s.gcps[0]] == [(g.row, g.col, g.x, g.y) for g in d.gcps[0]]
        assert s.tags(1)["CALIBRATION"] == "sigma0" and s.descriptions == ("VV sigma0", "VH sigma0")
        names = list(d.descriptions) if all(d.descriptions) else ["VV", "VH"]
    for b, pol in enumerate(names):
        xml = next((test_safe / "annotation" / "calibration").glob(f"calibration-*-{pol.lower()}-*.xml"))
        for r, c in [(0, 0), (17, 301), (160, 5), (319, 447), (222, 123)]:
            a = _reference_gain(xml.read_bytes(), "sigmaNought", r, c)
            if dn[b, r, c] == 0:
                assert math.isnan(sigma0[b, r, c])
            else:
                assert sigma0[b, r, c] == pytest.approx(float(dn[b, r, c]) ** 2 / a**2, rel=1e-5)
    assert 0.001 < float(np.nanmedian(sigma0)) < 1.0  # plausible linear sigma0 of land
    window = decompress_calibrated(safe_container, tmp_path / "w.tif", "sigma0", window=(100, 50, 64, 80),
                                   device="cpu")
    with rasterio.open(window) as w:
        assert np.array_equal(w.read(), sigma0[:, 50:130, 100:164], equal_nan=True)


def test_cli_calibrate_and_plain_containers(safe_container, speckled_grd_scene, tmp_path):
    from sar_codec_cli.main import cli

    runner = CliRunner()
    out = tmp_path / "g0.tif"
    result = runner.invoke(cli, ["decompress", str(safe_container), "-o", str(out), "--calibrate", "gamma0",
                                 "--device", "cpu", "-q"])
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as g:
        assert g.tags(2)["CALIBRATION"] == "gamma0"
    plain = codec.compress_scene(speckled_grd_scene, tmp_path / "p.sarc", quality=1, device="cpu").output
    result = runner.invoke(cli, ["decompress", str(plain), "-o", str(tmp_path / "x.tif"), "--calibrate", "sigma0"])
    assert result.exit_code == 1 and "not made from a SAFE product" in result.output
    assert not (tmp_path / "x.tif").exists()
