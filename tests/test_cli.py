"""The sar-codec command line: each command end to end, and bad input as one line with a non-zero exit."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from sar_codec_cli.main import cli


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


@pytest.fixture(scope="module")
def sample_container(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    assert run("sample", d / "s.tif", "--size", 192).exit_code == 0
    r = run("compress", d / "s.tif", "-o", d / "s.sarc", "--quality", 2, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "bpp" in r.output
    return d


def test_sample_compress_info_verify_decompress(sample_container):
    d = sample_container
    info = json.loads(run("info", d / "s.sarc", "--json").output)
    assert info["model"]["quality"] == 2 and len(info["scene"]["georef"]["gcps"]) == 36
    assert "36 GCPs" in run("info", d / "s.sarc").output
    assert run("verify", d / "s.sarc", "--decode", "--device", "cpu").exit_code == 0
    r = run("decompress", d / "s.sarc", "-o", d / "back.tif", "--window", 0, 0, 100, 80, "--device", "cpu")
    assert r.exit_code == 0, r.output
    with rasterio.open(d / "back.tif") as ds:
        assert (ds.width, ds.height, ds.count) == (100, 80, 2) and len(ds.gcps[0]) == 36


def test_decompress_exact_gives_the_fixed_point_decode(sample_container):
    from sar_codec.codec import decompress_scene

    d = sample_container
    r = run("decompress", d / "s.sarc", "-o", d / "exact.tif", "--window", 0, 0, 64, 64, "--exact", "--device", "cpu")
    assert r.exit_code == 0, r.output
    api = decompress_scene(d / "s.sarc", d / "exact_api.tif", window=(0, 0, 64, 64), device="cpu", exact=True)
    fast = decompress_scene(d / "s.sarc", d / "fast_api.tif", window=(0, 0, 64, 64), device="cpu")
    with rasterio.open(d / "exact.tif") as a, rasterio.open(api) as b, rasterio.open(fast) as c:
        exact, default = a.read(), c.read()
        assert np.array_equal(exact, b.read())
    assert not np.array_equal(exact, default)  # the default is the float synthesis


def test_reproducible_compress_gives_the_same_bytes_again(sample_container):
    d = sample_container
    for name in ("r1.sarc", "r2.sarc"):
        r = run("compress", d / "s.tif", "-o", d / name, "--quality", 2, "--device", "cpu", "--reproducible", "-q")
        assert r.exit_code == 0, r.output
    assert (d / "r1.sarc").read_bytes() == (d / "r2.sarc").read_bytes()
    assert run("verify", d / "r1.sarc", "--decode", "--device", "cpu").exit_code == 0


def test_models_lists_the_table():
    out = run("models").output
    assert "mbt2018-mean" in out and "quality 1" in out


def test_compress_reads_the_quality_in_db_with_allocation_db(sample_container, monkeypatch):
    """--allocation db codes the scene at the row db_quality gives its bands (here, with the reference at half the
    scene's dB per unit, four times the asked lambda: a higher row), and the container decodes."""
    from sar_codec import rate_control
    from sar_codec.registry import DEFAULT_ARCHITECTURE, lookup
    from sar_codec.scene_container import open_container

    d = sample_container
    opened = open_container(d / "s.sarc")
    maps = opened.mappings
    opened.container.close()
    scale = math.exp(np.mean([math.log(m.db_per_unit()) for m in maps]))
    monkeypatch.setattr(rate_control, "DB_REFERENCE", scale / 2)
    expected = rate_control.db_quality(lookup(DEFAULT_ARCHITECTURE, 2), maps).quality
    assert expected > 2
    r = run("compress", d / "s.tif", "-o", d / "db.sarc", "--quality", 2, "--allocation", "db", "--device", "cpu")
    assert r.exit_code == 0 and f"quality {expected})" in r.output, r.output
    assert json.loads(run("info", d / "db.sarc", "--json").output)["model"]["quality"] == expected
    assert run("verify", d / "db.sarc", "--decode", "--device", "cpu").exit_code == 0
    (d / "db.sarc").unlink()  # the module's container folder as the other tests expect it


def test_train_takes_the_light_synthesis_width_and_the_crop_side(tmp_path, make_raster):
    """The recipe of the shipped default (a wider light synthesis, 256-pixel crops) runs from the CLI: the weights
    record both, and the crop side becomes the tiles they code scenes in."""
    import torch

    rng = np.random.default_rng(5)
    for i in range(4):  # file 0 is the dev split
        make_raster(tmp_path / f"chip{i}.tif", rng.normal(-15, 3, (1, 128, 128)).astype("float32"))
    out = tmp_path / "w.pt"
    r = run("train", "bmshj2018-hyperprior-fast", f"{tmp_path}:db", "-o", out, "--run-dir", tmp_path / "run",
            "--minutes", 0.02, "--batch-size", 2, "--N", 8, "--M", 8, "--L", 6, "--patch-size", 128, "--device", "cpu")
    assert r.exit_code == 0, r.output
    blob = torch.load(out, weights_only=True)
    assert blob["meta"]["config"]["L"] == 6 and blob["meta"]["patch_size"] == 128
    assert blob["state_dict"]["g_s.4.weight"].shape == (6, 1, 8, 8)


@pytest.mark.parametrize(
    "args",
    [
        ("compress", "{d}/missing.tif"),
        ("compress", "{d}/s.tif", "-o", "{d}/s.sarc"),  # exists
        ("compress", "{d}/s.tif", "-o", "{d}/s.tif", "--overwrite"),  # the input itself
        ("compress", "{d}/s.tif", "-o", "{d}/x.sarc", "--tile-size", "50"),
        ("compress", "{d}/s.tif", "-o", "{d}/x.sarc", "--target-bpp", "nan"),
        ("compress", "{d}/s.tif", "{d}/s.tif", "-o", "{d}/x.sarc"),  # one file as both polarisations
        ("compress", "{d}/s.tif", "-o", "{d}/x.sarc", "--quality", "2", "--target-bpp", "1"),
        ("compress", "{d}/s.tif", "-o", "{d}/x.sarc", "--allocation", "db", "--target-bpp", "1"),
        ("decompress", "{d}/s.tif", "-o", "{d}/x.tif"),  # not a container
        ("decompress", "{d}/s.sarc", "-o", "{d}/x.tif", "--window", "180", "0", "50", "50"),
        ("info", "{d}/nothing.sarc"),
        ("verify", "{d}/s.tif"),
        ("train", "mbt2018-mean", "{d}/no-such-folder", "-o", "{d}/w.pt"),
        ("train", "mbt2018", "{d}", "-o", "{d}/w.pt", "--run-dir", "{d}/run", "--channels", "2"),  # no dev/train pair
        ("train", "mbt2018-mean", "{d}", "-o", "{d}/w.pt", "--run-dir", "{d}/run", "--L", "32"),  # no light synthesis
        ("train", "bmshj2018-hyperprior-fast", "{d}", "-o", "{d}/w.pt", "--run-dir", "{d}/run", "--patch-size", "100"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(sample_container, args):
    before = {p.name: p.stat().st_mtime_ns for p in sample_container.iterdir()}
    r = run(*(a.format(d=sample_container) for a in args))
    assert r.exit_code == 1
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in r.output
    assert {p.name: p.stat().st_mtime_ns for p in sample_container.iterdir()} == before  # nothing touched


@pytest.mark.parametrize("args", [
    ("compress", "{d}/s.tif", "--device", "tpu"),
    ("compress", "{d}/s.tif", "-o", "{d}/x.sarc", "--quality", "42"),
    ("compress", "{d}/s.tif", "-o", "-"),
    ("decompress", "{d}/s.sarc", "-o", "-"),
])
def test_bad_option_is_a_usage_error(sample_container, args):
    r = run(*(a.format(d=sample_container) for a in args))
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert not (sample_container / "-").exists() and not (sample_container / "x.sarc").exists()


def test_quality_help_shows_the_installed_range():
    from sar_codec.registry import model_table

    qualities = [e.quality for e in model_table()]
    assert f"[{min(qualities)}<=x<={max(qualities)}]" in " ".join(run("compress", "--help").output.split())


def test_a_target_rate_out_of_reach_is_said(sample_container):
    d = sample_container
    r = run("compress", d / "s.tif", "-o", d / "t.sarc", "--target-bpp", 100, "--device", "cpu", "-q")
    assert r.exit_code == 0 and "top quality" in r.output


def test_the_core_does_not_depend_on_the_adapters():
    code = ("import sys, sar_codec, sar_codec.container, sar_codec.radiometry, sar_codec.registry; "
            "bad = [m for m in ('click', 'qgis', 'torch', 'rasterio') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    import re
    from pathlib import Path

    import sar_codec

    pattern = re.compile(r"^\s*(import|from)\s+(click|qgis|sar_codec_cli|sar_codec_qgis)\b", re.M)
    offenders = [p.name for p in Path(sar_codec.__file__).parent.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_console_script_installed():
    exe = subprocess.run([sys.executable, "-m", "sar_codec_cli.main", "--version"], capture_output=True, text=True)
    assert exe.returncode == 0 and "sar-codec" in exe.stdout


def test_values_survive_the_cli_round_trip(sample_container):
    d = sample_container
    run("decompress", d / "s.sarc", "-o", d / "full.tif", "--device", "cpu")
    with rasterio.open(d / "s.tif") as a, rasterio.open(d / "full.tif") as b:
        x, y = a.read().astype(float), b.read().astype(float)
    valid = x > 0
    assert np.array_equal(valid, y > 0)
    err = 20 * np.log10(x[valid]) - 20 * np.log10(y[valid])
    assert np.sqrt(np.mean(err**2)) < 8.0


_STARTUP = """
import sys, time
t = time.perf_counter()
from sar_codec_cli.main import cli
code = 0
try:
    cli(sys.argv[1:], prog_name="sar-codec")
except SystemExit as exc:
    code = exc.code
print(sorted(m for m in ("torch", "compressai") if m in sys.modules), file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["info", "{d}/s.sarc"], ["verify", "{d}/s.sarc"],
                                  ["compress", "{d}/s.tif", "--device", "tpu"], ["decompress", "--help"]])
def test_quick_commands_do_not_import_torch(sample_container, args):
    argv = [a.format(d=sample_container) for a in args]
    out = subprocess.run([sys.executable, "-c", _STARTUP, *argv], capture_output=True, text=True, timeout=120)
    assert out.stderr.strip().splitlines()[-1] == "[]", out.stderr  # neither torch nor compressai
    assert (out.returncode != 0) == (args[0] == "compress"), out.stderr  # only the bad device fails


def test_compress_stores_overviews_unless_told_not_to(tmp_path):
    assert run("sample", tmp_path / "s.tif", "--size", 544).exit_code == 0
    for flags, line in (([], "overviews: 1 level (272x272), "), (["--no-overviews"], "overviews: none")):
        out = tmp_path / f"s{len(flags)}.sarc"
        r = run("compress", tmp_path / "s.tif", "-o", out, "--quality", 1, "--device", "cpu", "-q", *flags)
        assert r.exit_code == 0, r.output
        assert line in run("info", out).output
