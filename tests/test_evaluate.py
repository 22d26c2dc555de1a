"""evaluate_dir on a generated EuroSAT-SAR-like folder (class folders of 64x64 2-band VV/VH GeoTIFFs)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sar_codec.errors import InputError
from sar_codec.evaluate import _mosaics, _unmosaic, code_patches, evaluate_dir, load_patches
from sar_codec.radiometry import fit_mapping

TARGETS = (0.5, 1.0, 2.0)


@pytest.fixture(scope="module")
def eurosat_like(tmp_path_factory, make_raster) -> Path:
    """Two class folders of four 64x64 2-band float32 dB patches each (8 files: 2 of them are dev)."""
    from affine import Affine
    from rasterio.crs import CRS

    root = tmp_path_factory.mktemp("eurosat")
    rng = np.random.default_rng(3)
    for cls in ("Forest", "River"):
        (root / cls).mkdir()
        for i in range(4):
            level = rng.uniform(-15, -5)
            power = 10 ** (np.array([level, level - 6])[:, None, None] / 10) * rng.gamma(4.4, 1 / 4.4, (2, 64, 64))
            make_raster(root / cls / f"{cls}_{i + 1}.tif", (10 * np.log10(power)).astype("float32"),
                         crs=CRS.from_epsg(32631), transform=Affine(10, 0, 5e5 + 640 * i, 0, -10, 4.6e6),
                         descriptions=["VV", "VH"])
    return root


@pytest.fixture(scope="module")
def evaluated(eurosat_like, point, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("evaluate")
    return evaluate_dir(eurosat_like, out, models=[point[0]], qualities=[point[1]], device="cpu",
                        targets=TARGETS), out


def test_dev_split_is_the_files_training_held_out(eurosat_like):
    patches, source = load_patches(eurosat_like, "dev")
    assert (source["files"], source["units"], patches.shape) == (2, "db", (4, 1, 64, 64))
    # every 4th file of the sorted list: Forest_1 and River_1, each band through its own fitted mapping
    import rasterio

    with rasterio.open(eurosat_like / "River" / "River_1.tif") as src:
        vh = src.read(2).astype(np.float64)
    assert np.allclose(patches[3, 0], fit_mapping(vh).forward(vh), atol=1e-6)
    everything, source = load_patches(eurosat_like, "all", limit=10)
    assert source["patches_available"] == 16 and len(everything) == 10
    maps: list = []
    patches, _ = load_patches(eurosat_like, "dev", mappings=maps)
    assert len(maps) == len(patches)
    assert np.allclose(maps[3].inverse(patches[3, 0]), vh, atol=1e-3)  # each patch's own mapping back to dB


def test_report_curves_and_table(evaluated, point):
    report, out = evaluated
    assert sorted(p.name for p in out.iterdir()) == ["rd.csv", "rd.png", "report.json", "table.md"]
    learned = [p for p in report["points"] if p["codec"] == point[0]]
    assert len(learned) == 1 and learned[0]["quality"] == point[1]
    assert learned[0]["bpp"] == learned[0]["bytes"] * 8 / (4 * 64 * 64)
    assert report["baselines"] == ["jpeg", "jpeg2000", "jpegxl", "lerc"]  # 1024-tiled = whole for a mosaic
    for codec in report["baselines"]:
        rows = [p for p in report["points"] if p["codec"] == codec]
        assert 1 <= len(rows) <= len(TARGETS)
        assert all(math.isfinite(r["psnr"]) and 0 < r["ssim"] <= 1 for r in rows)
        assert all(r["rmse_db"] > 0 and r["psnr_db"] == pytest.approx(20 * math.log10(35 / r["rmse_db"]))
                   for r in rows)
        matched = [r for r in rows if r["rate_note"] is None]
        assert all(abs(r["bpp"] / r["target_bpp"] - 1) <= 0.10 for r in matched)
    table = (out / "table.md").read_text()
    assert table == report["table_markdown"] and sum(line.startswith("| ") for line in table.splitlines()) == 2 + 5 + 1
    dbrow = next(line for line in table.splitlines() if line.startswith(f"| {point[0]} |"))  # the dB-domain BD-rates
    db = report["bd_rate_percent_db"][point[0]]
    assert dbrow == f"| {point[0]} | " + " | ".join("-" if db[c] is None else f"{db[c]:+.1f} %"
                                                     for c in report["baselines"]) + " |"
    with open(out / "rd.csv") as f:
        assert len(list(csv.DictReader(f))) == len(report["points"])
    json.loads((out / "report.json").read_text(), parse_constant=pytest.fail)
    assert set(report["bd_rate_percent"]) == {point[0]}  # learned models, against every baseline
    assert set(report["bd_rate_percent"][point[0]]) == set(report["baselines"])
    assert set(report["bd_rate_percent_db"][point[0]]) == set(report["baselines"])


def test_effort_refines_the_latents_and_names_the_curve(eurosat_like, tmp_path):
    """``effort`` runs compress's latent refinement on every patch: a curve of its own name, other bytes than
    without it; a model that cannot be refined is one clear error before anything is read."""
    plain, refined = (evaluate_dir(eurosat_like, tmp_path / str(n), models=["bmshj2018-hyperprior-fast"],
                                   qualities=[3], device="cpu", targets=(1.0,), effort=n) for n in (0, 10))
    rows = {p["codec"]: p for r in (plain, refined) for p in r["points"] if p["quality"] is not None}
    assert set(rows) == {"bmshj2018-hyperprior-fast", "bmshj2018-hyperprior-fast --effort 10"}
    a, b = rows["bmshj2018-hyperprior-fast"], rows["bmshj2018-hyperprior-fast --effort 10"]
    assert (a["bytes"], a["psnr"]) != (b["bytes"], b["psnr"])
    with pytest.raises(InputError, match="refine"):
        evaluate_dir(tmp_path / "missing", tmp_path / "x", models=["mbt2018"], qualities=[3], effort=10)


def test_allocation_in_db_adds_a_curve_coding_each_image_at_the_quality_compress_gives_it(eurosat_like, tmp_path,
                                                                                          monkeypatch):
    """With a reference of almost no dB per unit every image reads as spanning many dB: compress would code each at
    the top quality, so the allocated curve's points are the plain top quality's, bytes and scores."""
    from sar_codec import rate_control

    monkeypatch.setattr(rate_control, "DB_REFERENCE", 1e-3)
    report = evaluate_dir(eurosat_like, tmp_path, models=["bmshj2018-hyperprior-fast"], qualities=[1, 9],
                          device="cpu", targets=(1.0,), allocation="db")
    rows = {(p["codec"], p["quality"]): p for p in report["points"] if p["quality"] is not None}
    name = "bmshj2018-hyperprior-fast"
    assert set(rows) == {(f"{name}{a}", q) for a in ("", " --allocation db") for q in (1, 9)}
    assert f"{name} --allocation db" in report["bd_rate_percent_db"]
    top = {k: rows[(name, 9)][k] for k in ("bytes", "psnr", "psnr_db")}
    for q in (1, 9):
        assert {k: rows[(f"{name} --allocation db", q)][k] for k in top} == top
    assert rows[(name, 1)]["bytes"] < top["bytes"]
    with pytest.raises(InputError, match="Unknown allocation"):
        evaluate_dir(eurosat_like, tmp_path / "x", models=[name], qualities=[1], allocation="dB")


def test_mosaics_round_trip():
    patches = np.random.default_rng(0).random((70, 1, 64, 64))
    mosaics = _mosaics(patches)
    assert [m.shape for m in mosaics] == [(512, 512), (64, 384)]
    assert np.array_equal(_unmosaic(mosaics, 70), patches)
    crops = np.random.default_rng(1).random((6, 1, 256, 256))
    mosaics = _mosaics(crops)
    assert [m.shape for m in mosaics] == [(512, 512), (256, 512)]
    assert np.array_equal(_unmosaic(mosaics, 6, 256), crops)


@pytest.fixture(scope="module")
def scenes_256(tmp_path_factory, make_raster) -> Path:
    """Four 1-band float32 dB scenes of 256 x 512, a level of its own in each 64-pixel square under speckle (the
    first is the dev file)."""
    root = tmp_path_factory.mktemp("scenes256")
    rng = np.random.default_rng(5)
    for i in range(4):
        levels = np.kron(rng.uniform(-22, -4, (4, 8)), np.ones((64, 64)))
        power = 10 ** (levels / 10) * rng.gamma(20, 1 / 20, levels.shape)
        make_raster(root / f"scene_{i}.tif", (10 * np.log10(power)).astype("float32")[None])
    return root


def test_larger_patches_are_coded_in_the_models_tile_size(scenes_256, point, tmp_path):
    """``patch_size`` 256: 256-pixel crops, each model in its own tile size (at most the crop), the baselines on
    512 x 512 mosaics of them; the rate counts every byte over the crops' pixels."""
    from sar_codec.registry import lookup

    report = evaluate_dir(scenes_256, tmp_path, models=[point[0]], qualities=[point[1]], device="cpu",
                          targets=(1.0,), patch_size=256)
    assert (report["source"]["patches"], report["source"]["patch_size"]) == (2, 256)
    row = next(p for p in report["points"] if p["codec"] == point[0])
    assert row["tile"] == min(lookup(*point).tile_size, 256)
    assert row["bpp"] == row["bytes"] * 8 / (2 * 256 * 256) and row["psnr_db"] > 20
    assert {p["codec"] for p in report["points"]} == {point[0], "jpeg", "jpeg2000", "jpegxl", "lerc"}
    with pytest.raises(InputError, match="Patch size 96"):
        load_patches(scenes_256, patch_size=96)


def test_code_patches_puts_every_tile_back_in_place(scenes_256, point):
    """Cut into 64-pixel tiles and coded, each crop comes back where it was: far closer to its own pixels than to
    the same crop with its tiles moved."""
    from sar_codec.registry import load_codec, lookup

    x, _ = load_patches(scenes_256, patch_size=256)
    codec = load_codec(lookup(point[0], 9), "cpu")
    for tile in (64, 256):
        nbytes, dec = code_patches(codec, 9, x, tile)
        moved = np.roll(x, 64, axis=-1)
        assert nbytes > 0 and np.mean((dec - x) ** 2) * 10 < np.mean((dec - moved) ** 2)


def test_bad_inputs(tmp_path, eurosat_like, point):
    with pytest.raises(InputError, match="does not exist"):
        load_patches(tmp_path / "missing")
    with pytest.raises(InputError, match="no .tif or .png"):
        load_patches(tmp_path)
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(InputError, match="units"):
        load_patches(tmp_path)
    with pytest.raises(InputError, match="split"):
        load_patches(eurosat_like, "train")


def test_cli_evaluate(eurosat_like, point, tmp_path):
    from sar_codec_cli.main import cli

    res = CliRunner().invoke(cli, ["evaluate", str(eurosat_like), "-o", str(tmp_path), "--models", point[0],
                                   "--qualities", str(point[1]), "--device", "cpu", "--limit", "2"])
    assert res.exit_code == 0, res.output
    assert "2 patches of 64x64 from 2 files (dev split)" in res.output and "| jpeg2000" in res.output
    res = CliRunner().invoke(cli, ["evaluate", str(eurosat_like), "-o", str(tmp_path / "big"), "--models", point[0],
                                   "--patch-size", "256", "--device", "cpu"])
    assert res.exit_code == 1 and "No image of" in res.output and "256x256 area" in res.output


@pytest.mark.data
def test_real_dev_patches(shared_data):
    patches, source = load_patches(shared_data / "sen1floods11-dualpol-db", "dev", limit=32)
    assert source["units"] == "db" and source["files"] == 2 and patches.shape == (32, 1, 64, 64)
    assert 0 <= patches.min() and patches.max() <= 1


def test_atomic_outputs_leave_nothing_behind_on_failure(tmp_path) -> None:
    from sar_codec.files import atomic_path, write_text_atomic

    target = tmp_path / "table.md"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]
    write_text_atomic(target, "new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]
