"""compare_scene on small generated scenes (one learned point each) and on a real chip when present."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

from sar_codec.compare import compare_scene
from sar_codec.errors import CancelledError, InputError, OutputExistsError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def compared(speckled_db_scene: Path, point, tmp_path_factory) -> tuple[dict, Path]:
    """One comparison of the 128x192 dB scene, cropped to 128x128."""
    out = tmp_path_factory.mktemp("compare")
    fractions = []
    report = compare_scene(speckled_db_scene, out, models=[point[0]], qualities=[point[1]], device="cpu", crop=128,
                           progress=fractions.append)
    assert fractions[-1] == 1.0 and fractions == sorted(fractions) and len(fractions) > 4
    return report, out


def test_points_are_one_learned_and_four_matched_baselines(compared, point):
    report, _ = compared
    learned, *matched = report["points"]
    assert (learned["kind"], learned["codec"], learned["quality"]) == ("learned", *point)
    # the 1024-tiled JPEG 2000 is the whole-image one for a 128-pixel crop, so it is not run twice
    assert [b["codec"] for b in matched] == report["baselines"] == ["jpeg", "jpeg2000", "jpegxl", "lerc"]
    assert set(report["bd_rate_percent"][point[0]]) == set(report["baselines"])  # one point: BD-rate is None
    for b in matched:
        assert b["target_bpp"] == learned["bpp"]
        assert abs(b["bpp"] / learned["bpp"] - 1) <= 0.10 or b["rate_note"]
    for p in report["points"]:
        assert p["bpp"] == pytest.approx(p["bytes"] * 8 / (2 * 128 * 128))
        assert p["ratio_vs_lossless"] == pytest.approx(report["reference"]["lossless_bpp"] / p["bpp"])
        assert set(p["metrics"]) == {"VV", "VH", "all"}
        m = p["metrics"]["all"]
        assert math.isfinite(m["psnr"]) and -1 <= m["ssim"] <= 1 and m["ms_ssim"] is None  # 128 < 161 px
        assert m["valid_samples"] == 2 * 124 * 128  # the 4-row NaN strip is left out
        assert m["rmse_db"] > 0 and m["enl_windows"] > 0 and m["ratio_mean"] > 0
        assert m["psnr_db"] == pytest.approx(20 * math.log10(35.0 / m["rmse_db"]))


def test_crop_and_reference_sizes(compared, speckled_db_scene):
    report, _ = compared
    assert report["crop"] == {"row_off": 0, "col_off": 32, "height": 128, "width": 128, "whole_scene": False,
                              "max_side": 128}
    ref = report["reference"]
    assert ref["uncompressed_bpp"] == 32
    assert ref["original_file_bytes"] == speckled_db_scene.stat().st_size
    assert 0 < ref["lossless_bpp"] < 32


def test_outputs_are_written(compared, point):
    report, out = compared
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["report.json", "report.csv", "rd.png", "error_db.tif", f"quicklook_{point[0]}_q{point[1]}.png"])
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == PNG_MAGIC
    on_disk = json.loads((out / "report.json").read_text(), parse_constant=pytest.fail)  # strict JSON
    assert on_disk["points"][0]["bytes"] == report["points"][0]["bytes"]
    rows = (out / "report.csv").read_text().splitlines()
    assert len(rows) == 1 + 5 * 3  # header, then 5 points x (VV, VH, all)


def test_error_map_is_the_db_error_with_the_crop_georeferencing(compared, speckled_db_scene):
    report, out = compared
    with rasterio.open(speckled_db_scene) as src, rasterio.open(out / "error_db.tif") as err:
        assert err.crs == src.crs
        assert err.transform == src.transform * Affine.translation(32, 0)
        assert err.count == 2 and err.dtypes[0] == "float32" and err.descriptions == ("VV dB error", "VH dB error")
        e = err.read()
    assert np.isnan(e[:, :4]).all()  # nodata stays nodata
    learned = report["points"][0]["metrics"]
    for b, name in enumerate(("VV", "VH")):
        d = e[b][np.isfinite(e[b])]
        assert d.size == 124 * 128
        assert np.sqrt(np.mean(d.astype(np.float64) ** 2)) == pytest.approx(learned[name]["rmse_db"], rel=1e-5)


def test_cli_compare_with_gcps_and_json(speckled_grd_scene, point, tmp_path):
    from sar_codec_cli.main import cli

    res = CliRunner().invoke(cli, ["compare", str(speckled_grd_scene), "-o", str(tmp_path), "--models", point[0],
                                   "--qualities", str(point[1]), "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["scene"]["bands"] == ["VV"] and report["reference"]["uncompressed_bpp"] == 16
    with rasterio.open(speckled_grd_scene) as src, rasterio.open(tmp_path / "error_db.tif") as err:
        assert len(err.gcps[0]) == len(src.gcps[0]) == 20 and err.gcps[1] == src.gcps[1]
    res = CliRunner().invoke(cli, ["compare", str(speckled_grd_scene), "-o", str(tmp_path)])
    assert res.exit_code == 1 and "already holds" in res.output and "Traceback" not in res.output


def test_bad_requests_are_refused_early(speckled_db_scene, point, tmp_path):
    with pytest.raises(InputError, match="Unknown model"):
        compare_scene(speckled_db_scene, tmp_path, models=["no-such-model"])
    with pytest.raises(InputError, match="does not exist"):
        compare_scene(speckled_db_scene, tmp_path, models=[point[0]], qualities=[99])
    with pytest.raises(InputError, match="smaller than one"):
        compare_scene(speckled_db_scene, tmp_path, models=[point[0]], qualities=[point[1]], crop=32)
    (tmp_path / "report.json").write_text("{}")
    with pytest.raises(OutputExistsError):
        compare_scene(speckled_db_scene, tmp_path, models=[point[0]], qualities=[point[1]])


def test_cancel_stops_before_any_codec_runs(speckled_db_scene, point, tmp_path):
    with pytest.raises(CancelledError):
        compare_scene(speckled_db_scene, tmp_path, models=[point[0]], qualities=[point[1]], device="cpu",
                      cancelled=lambda: True)
    assert not (tmp_path / "report.json").exists()


@pytest.mark.data
def test_real_chip(shared_data, point, tmp_path):
    chip = min((shared_data / "sen1floods11-dualpol-db").glob("*.tif"))
    report = compare_scene(chip, tmp_path, models=[point[0]], qualities=[point[1]], device="cpu", crop=128)
    assert report["scene"]["bands"] == ["VV", "VH"] and report["scene"]["units"] == "db"
    for p in report["points"]:
        assert math.isfinite(p["metrics"]["all"]["psnr"]) and p["ratio_vs_original"] > 1
