"""Scene in, container out, scene back: georeferencing, nodata, dtype and band order survive exactly."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasters import make_gcps

from sar_codec import block_payload, codec
from sar_codec.container import PREAMBLE_SIZE, ContainerWriter, read_header
from sar_codec.errors import CancelledError, ContainerError, InputError, OutputExistsError, SarCodecError, WeightsError
from sar_codec.files import temp_path
from sar_codec.models import ARITHMETIC_VERSION


def speckle_amplitude(shape, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(np.sqrt(rng.gamma(1.0, 1.0e4, size=shape)), 1, 65535).astype("uint16")

Q = 1  # the lowest quality codes fastest to the same guarantees


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.crs, ds.transform, ds.gcps, ds.nodata, ds.dtypes, ds.descriptions, ds.tags()


def _db(a, units):
    a = a.astype(np.float64)
    return 20 * np.log10(np.maximum(a, 1)) if units == "amplitude" else a


def assert_same_scene(original, decoded, units, max_rmse_db):
    """Georeferencing, size, dtype, band order and nodata exactly equal; values close in dB."""
    a, crs, transform, gcps, nodata, dtypes, desc, tags = _read(original)
    b, crs2, transform2, gcps2, nodata2, dtypes2, desc2, tags2 = _read(decoded)
    assert b.shape == a.shape and dtypes2 == dtypes and all(d2 == d for d, d2 in zip(desc, desc2) if d)
    assert crs2 == crs and transform2 == transform
    assert [(g.row, g.col, g.x, g.y, g.z) for g in gcps2[0]] == [(g.row, g.col, g.x, g.y, g.z) for g in gcps[0]]
    assert gcps2[1] == gcps[1]
    assert (nodata2 == nodata) or (math.isnan(nodata) and math.isnan(nodata2))
    for k, v in tags.items():
        assert tags2.get(k) == v
    invalid = np.isnan(a) if a.dtype.kind == "f" else (a == 0) | (a == (nodata or 0))
    invalid2 = np.isnan(b) if b.dtype.kind == "f" else (b == 0) | (b == (nodata or 0))
    assert np.array_equal(invalid, invalid2)
    assert np.array_equal(a[invalid].view(np.uint8), b[invalid2].view(np.uint8))  # nodata values bit-exact
    err = _db(a[~invalid], units) - _db(b[~invalid], units)
    assert np.sqrt(np.mean(err**2)) < max_rmse_db


@pytest.fixture(scope="module")
def db_container(speckled_db_scene, tmp_path_factory):
    out = tmp_path_factory.mktemp("c") / "db.sarc"
    result = codec.compress_scene(speckled_db_scene, out, quality=Q, device="cpu")
    return speckled_db_scene, out, result


def test_db_scene_round_trip(db_container, tmp_path):
    src, sarc, result = db_container
    assert result.bytes == sarc.stat().st_size and result.bpp == pytest.approx(result.bytes * 8 / (2 * 128 * 192))
    out = codec.decompress_scene(sarc, tmp_path / "back.tif", device="cpu")
    assert_same_scene(src, out, "db", max_rmse_db=6.0)


def test_gcp_scene_round_trip_as_cog(speckled_grd_scene, tmp_path):
    sarc = codec.compress_scene(speckled_grd_scene, tmp_path / "g.sarc", quality=Q, device="cpu").output
    header = read_header(sarc)
    assert len(header["scene"]["georef"]["gcps"]) == 20 and header["scene"]["georef"]["transform"] is None
    out = codec.decompress_scene(sarc, tmp_path / "g.tif", cog=True, device="cpu")
    assert_same_scene(speckled_grd_scene, out, "amplitude", max_rmse_db=8.0)
    with rasterio.open(out) as ds:
        assert ds.driver == "GTiff" and ds.profile.get("tiled")


def test_a_small_chip_carries_at_most_200_bytes_of_metadata(tmp_path, make_raster):
    """Preamble + header + index of a 64x64 dual-polarisation chip with a CRS and a transform (issue 13)."""
    rng = np.random.default_rng(5)
    db = (10 * np.log10(rng.gamma(1.0, 0.05, (2, 64, 64)))).astype("float32")
    src = make_raster(tmp_path / "chip.tif", db, crs="EPSG:4326", nodata=float("nan"),
                      transform=Affine(8.983152841195214e-05, 0, 12.345678912, 0, -8.983152841195214e-05, 45.6789))
    sarc = codec.compress_scene(src, tmp_path / "chip.sarc", quality=Q, device="cpu").output
    with codec.Container.open(sarc) as c:
        payload = sum(c.block_length(i) for i in range(c.block_count))
        assert c.block_count == 1 and c.file_size - payload <= 200
    out = codec.decompress_scene(sarc, tmp_path / "back.tif", device="cpu")
    assert_same_scene(src, out, "db", max_rmse_db=8.0)


def test_window_decode_matches_full_decode(db_container, tmp_path):
    _, sarc, _ = db_container
    full = _read(codec.decompress_scene(sarc, tmp_path / "full.tif", device="cpu"))
    win = _read(codec.decompress_scene(sarc, tmp_path / "win.tif", window=(70, 30, 50, 40), device="cpu"))
    assert np.array_equal(win[0], full[0][:, 30:70, 70:120], equal_nan=True)
    assert win[2] == full[2] * Affine.translation(70, 30)


def test_bbox_decode(db_container, tmp_path):
    _, sarc, _ = db_container
    out = codec.decompress_scene(sarc, tmp_path / "bbox.tif", bbox=(500200.0, 4649000.0, 500600.0, 4649500.0),
                                 device="cpu")
    with rasterio.open(out) as ds:
        assert ds.crs == CRS.from_epsg(32631)
        assert ds.bounds.left == pytest.approx(500200.0) and ds.bounds.top == pytest.approx(4649500.0)
        assert (ds.width, ds.height) == (40, 50)


def test_decoding_does_not_depend_on_block_size(speckled_db_scene, tmp_path):
    """With the fixed-point encoder, tiles code to the same symbols whatever block (batch) they are in."""
    outs = []
    for bs in (64, 192):
        sarc = codec.compress_scene(speckled_db_scene, tmp_path / f"b{bs}.sarc", quality=Q, block_size=bs,
                                    device="cpu", reproducible=True).output
        outs.append(_read(codec.decompress_scene(sarc, tmp_path / f"b{bs}.tif", device="cpu", exact=True))[0])
    assert np.array_equal(outs[0], outs[1], equal_nan=True)


def _fast_and_exact_db(sarc, tmp_path, window=None):
    """The default (float synthesis) and the exact decode of a container, in dB, and where both are valid."""
    fast = _read(codec.decompress_scene(sarc, tmp_path / "fast.tif", window=window, device="cpu"))[0]
    exact = _read(codec.decompress_scene(sarc, tmp_path / "exact.tif", window=window, device="cpu", exact=True))[0]
    valid = np.isfinite(fast) & np.isfinite(exact)
    assert np.array_equal(valid, np.isfinite(exact))  # the same samples are valid (nodata is lossless)
    return fast.astype(np.float64), exact.astype(np.float64), valid


def test_exact_decode_is_the_same_with_any_threads_and_fast_is_close(db_container, tmp_path):
    import torch

    _, sarc, _ = db_container
    fast, exact, valid = _fast_and_exact_db(sarc, tmp_path)
    diff = np.abs(fast - exact)[valid]
    assert diff.max() > 0 and diff.max() < 1.0 and diff.mean() < 0.05  # dB: a fraction of a quantisation step
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _read(codec.decompress_scene(sarc, tmp_path / "one.tif", device="cpu", exact=True))[0]
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(one, exact, equal_nan=True)


def test_blocks_coded_in_parallel_give_what_one_at_a_time_gives(tmp_path, make_raster, monkeypatch):
    """Two encode workers (scene and pyramid blocks) write the same container bytes as one, and two decode workers
    (each on one BLAS thread) the same samples as one: blocks come back in order, none lost or swapped."""
    from rasters import speckle_amplitude

    from sar_codec import scene_container

    scene = make_raster(tmp_path / "grd.tif", speckle_amplitude((2, 700, 600), seed=5), nodata=0,
                        crs=CRS.from_epsg(32631), transform=Affine(10, 0, 500000, 0, -10, 4000000))
    runs = []
    for workers in (1, 2):
        monkeypatch.setattr(codec, "ENCODE_WORKERS", workers)
        monkeypatch.setattr(scene_container, "DECODE_WORKERS", workers)
        sarc = codec.compress_scene(scene, tmp_path / f"w{workers}.sarc", quality=Q, block_size=128,
                                    device="cpu").output
        runs.append((sarc.read_bytes(), _read(codec.decompress_scene(sarc, tmp_path / f"w{workers}.tif",
                                                                     device="cpu"))[0]))
    assert codec.container_info(tmp_path / "w2.sarc")["overviews"]  # the pyramid was coded too
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_reproducible_containers_do_not_depend_on_threads(speckled_db_scene, tmp_path):
    import torch

    threads = torch.get_num_threads()
    blobs = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            out = codec.compress_scene(speckled_db_scene, tmp_path / f"t{n}.sarc", quality=Q, device="cpu",
                                       reproducible=True).output
            blobs.append(out.read_bytes())
    finally:
        torch.set_num_threads(threads)
    assert blobs[0] == blobs[1]


def test_bright_and_dark_targets_survive(tmp_path, make_raster):
    rng = np.random.default_rng(4)
    db = rng.normal(-14, 2.5, (1, 128, 128))
    db[0, 60:63, 60:63] = 30.0  # a ship far above 0 dB
    db[0, 10:40, 10:40] = rng.normal(-32, 1.0, (30, 30))  # calm water
    src = make_raster(tmp_path / "bright.tif", db.astype("float32"), crs=CRS.from_epsg(32631),
                       transform=Affine(10.0, 0, 500000.0, 0, -10.0, 4650000.0), nodata=np.nan)
    sarc = codec.compress_scene(src, tmp_path / "b.sarc", quality=7, device="cpu").output
    back = _read(codec.decompress_scene(sarc, tmp_path / "b.tif", device="cpu"))[0]
    assert back[0, 61, 61] > 15.0  # not clipped to the scene's typical range
    assert abs(back[0, 15:35, 15:35].mean() - db[0, 15:35, 15:35].mean()) < 3.0


def test_cancel_leaves_no_output(speckled_db_scene, tmp_path):
    out = tmp_path / "x.sarc"
    with pytest.raises(CancelledError):
        codec.compress_scene(speckled_db_scene, out, quality=Q, block_size=64, device="cpu",
                             cancelled=lambda: True)
    assert list(tmp_path.iterdir()) == []


def test_inputs_and_existing_outputs_are_never_overwritten(speckled_db_scene, db_container, tmp_path):
    before = speckled_db_scene.read_bytes()
    with pytest.raises(OutputExistsError):
        codec.compress_scene(speckled_db_scene, speckled_db_scene, quality=Q, overwrite=True, device="cpu")
    assert speckled_db_scene.read_bytes() == before
    _, sarc, _ = db_container
    with pytest.raises(OutputExistsError):
        codec.compress_scene(speckled_db_scene, sarc, quality=Q, device="cpu")
    with pytest.raises(OutputExistsError):
        codec.decompress_scene(sarc, sarc, overwrite=True, device="cpu")


def test_a_zipped_safe_input_is_never_its_own_output(tmp_path, make_raster):
    safe = tmp_path / "S1A_IW_GRDH_1SDV_20180716T004042.SAFE"
    (safe / "measurement").mkdir(parents=True)
    (safe / "manifest.safe").write_text("<?xml version='1.0'?><xfdu:XFDU/>\n")
    make_raster(safe / "measurement" / "s1a-iw-grd-vv-20180716t004042.tiff", speckle_amplitude((1, 64, 64)),
                gcps=(make_gcps(64, 64), CRS.from_epsg(4326)))
    archive = tmp_path / "S1.zip"
    shutil.make_archive(str(archive.with_suffix("")), "zip", tmp_path, safe.name)
    before = archive.read_bytes()
    with pytest.raises(OutputExistsError, match="input"):
        codec.compress_scene(archive, archive, quality=Q, overwrite=True, device="cpu")
    assert archive.read_bytes() == before


def test_the_same_file_as_both_polarisations_is_refused(speckled_grd_scene, tmp_path):
    with pytest.raises(InputError, match="twice"):
        codec.compress_scene([speckled_grd_scene, speckled_grd_scene.parent / "." / speckled_grd_scene.name],
                             tmp_path / "o.sarc", quality=Q, device="cpu")


def test_decoded_polarisations_are_described_and_keep_the_scene_date(tmp_path, make_raster):
    gcps = (make_gcps(64, 64), CRS.from_epsg(4326))
    files = []
    for pol, date in (("vv", "2018:07:16 00:40:43"), ("vh", "2018:07:16 00:40:42")):
        files.append(make_raster(tmp_path / f"s1a-iw-grd-{pol}.tiff", speckle_amplitude((1, 64, 64)), gcps=gcps,
                                 tags={"TIFFTAG_DATETIME": date, "MISSION": "S1A"}))
    codec.compress_scene(files, tmp_path / "s.sarc", quality=Q, device="cpu")
    with rasterio.open(codec.decompress_scene(tmp_path / "s.sarc", tmp_path / "s.tif", device="cpu")) as ds:
        assert ds.descriptions == ("VV", "VH")
        assert ds.tags()["TIFFTAG_DATETIME"] == "2018:07:16 00:40:42" and ds.tags()["MISSION"] == "S1A"
        assert [ds.tags(b)["TIFFTAG_DATETIME"] for b in (1, 2)] == ["2018:07:16 00:40:43", "2018:07:16 00:40:42"]


def test_outputs_get_the_permissions_of_the_umask(db_container, tmp_path):
    src, _, _ = db_container
    old = os.umask(0o022)
    try:
        codec.compress_scene(src, tmp_path / "a.sarc", quality=Q, device="cpu")
        codec.decompress_scene(tmp_path / "a.sarc", tmp_path / "a.tif", device="cpu", cog=True)
    finally:
        os.umask(old)
    assert (tmp_path / "a.sarc").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "a.tif").stat().st_mode & 0o777 == 0o644


def test_a_later_run_removes_what_a_killed_run_left(db_container, tmp_path):
    src, sarc, _ = db_container
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a writer that is gone
    debris = [p.with_name(p.name.replace(f"-{os.getpid()}-", f"-{child.pid}-"))
              for p in (temp_path(tmp_path / "x.sarc"), temp_path(tmp_path / "x.tif"))]
    for p in debris:
        p.write_bytes(b"half a file")
    codec.compress_scene(src, tmp_path / "x.sarc", quality=Q, device="cpu")
    codec.decompress_scene(sarc, tmp_path / "x.tif", device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.sarc", "x.tif"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p, w: w(p, np.ones((3, 70, 70), "float32")), "band"),
        (lambda p, w: w(p, np.ones((1, 70, 70), "complex64")), "type"),
        (lambda p, w: w(p, np.zeros((1, 70, 70), "uint16"), nodata=0), "nodata"),
        (lambda p, w: w(p, speckle_amplitude((1, 40, 80))), "smaller"),
        (lambda p, w: p.write_text("not a raster") and p, "raster"),
        (lambda p, w: p.with_name("missing.tif"), "exist"),
    ],
)
def test_bad_inputs_give_one_clear_error(tmp_path, make_raster, make, message):
    src = make(tmp_path / "in.tif", make_raster)
    with pytest.raises(InputError, match=message) as info:
        codec.compress_scene(src, tmp_path / "o.sarc", device="cpu")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "o.sarc").exists()


BAD_OPTIONS = [  # (option, the word the message must hold)
    ({"tile_size": 50}, "Tile size"), ({"tile_size": 64.0}, "Tile size"), ({"quality": 99}, "Quality"),
    ({"units": "kelvin"}, "kelvin"), ({"architecture": "jpeg"}, "jpeg"), ({"block_size": 96}, "Block size"),
    ({"quality": 2, "target_bpp": 1.0}, "either"), ({"device": "tpu"}, "tpu"), ({"target_bpp": math.nan}, "target"),
    ({"target_bpp": "1.5"}, "target"), ({"max_error_db": -1}, "maximum error"), ({"max_error_db": "x"}, "maximum"),
    ({"pols": []}, "polarisations"), ({"pols": "VV"}, "polarisations"), ({"pols": ["VV", ""]}, "polarisations"),
    ({"pols": ["VV", "VH", "HH"]}, "polarisations"),
]


@pytest.mark.parametrize(("kwargs", "word"), BAD_OPTIONS)
def test_bad_options_give_one_clear_error(speckled_db_scene, tmp_path, kwargs, word, monkeypatch):
    kwargs.setdefault("device", "cpu")
    monkeypatch.setattr(codec, "open_scene", lambda *a, **k: pytest.fail("the scene was read before the options"))
    with pytest.raises(InputError, match=word) as info:
        codec.compress_scene(speckled_db_scene, tmp_path / "o.sarc", **kwargs)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "o.sarc").exists()


@pytest.mark.parametrize(("kwargs", "word"), BAD_OPTIONS)
def test_options_are_checked_before_the_input_is_looked_at(tmp_path, kwargs, word):
    kwargs.setdefault("device", "cpu")
    with pytest.raises(InputError, match=word):  # not "No such file": the options come first
        codec.compress_scene(tmp_path / "missing.tif", tmp_path / "o.sarc", **kwargs)


@pytest.mark.parametrize(("kwargs", "word"), [
    ({"window": (0, 0, 8, 8), "bbox": (0, 0, 1, 1)}, "not both"), ({"window": (0, 0, 0, 8)}, "positive"),
    ({"window": (-1, 0, 8, 8)}, "offsets"), ({"window": (0, 0, 8)}, "four whole numbers"),
    ({"window": (0, 0, 8.5, 8)}, "four whole numbers"), ({"bbox": (2, 0, 1, 1)}, "empty"),
    ({"bbox": (0, 0, math.inf, 1)}, "four numbers"), ({"device": "tpu"}, "tpu"),
])
def test_decode_options_are_checked_before_the_container_is_opened(tmp_path, kwargs, word, monkeypatch):
    monkeypatch.setattr(codec, "open_container", lambda *a: pytest.fail("the container was read before the options"))
    with pytest.raises(InputError, match=word):
        codec.decompress_scene(tmp_path / "missing.sarc", tmp_path / "o.tif", **{"device": "cpu", **kwargs})
    with pytest.raises(InputError, match="tpu"):
        codec.verify_container(tmp_path / "missing.sarc", device="tpu")
    assert not (tmp_path / "o.tif").exists()


def test_a_window_outside_the_scene_is_refused(db_container, tmp_path):
    _, sarc, _ = db_container
    with pytest.raises(InputError, match="not inside the 192x128 scene"):
        codec.decompress_scene(sarc, tmp_path / "o.tif", window=(100, 0, 100, 8), device="cpu")
    assert not (tmp_path / "o.tif").exists()


def _payload_bpp(sarc, result):
    """The rate of the block payloads alone (what the rate search measures on its sample blocks)."""
    with codec.Container.open(sarc) as c:
        return sum(c.block_length(i) for i in range(c.block_count)) * 8 / result.pixels


def test_target_bpp_picks_the_highest_quality_at_or_below_the_target(speckled_db_scene, tmp_path, monkeypatch):
    # The scene is one block, so the search's sample is the whole scene and its rate the payloads' rate.
    rates = {q: _payload_bpp(tmp_path / f"q{q}.sarc", codec.compress_scene(
        speckled_db_scene, tmp_path / f"q{q}.sarc", quality=q, device="cpu")) for q in (2, 3)}
    assert rates[2] < rates[3]
    target = (rates[2] + rates[3]) / 2
    coded, encode_block = [], block_payload.encode_block
    monkeypatch.setattr(block_payload, "encode_block", lambda c, q, *a: coded.append(q + 1) or encode_block(c, q, *a))
    r = codec.compress_scene(speckled_db_scene, tmp_path / "t.sarc", target_bpp=target, device="cpu")
    assert r.quality == 2 and _payload_bpp(tmp_path / "t.sarc", r) <= target and r.note is None
    assert coded == [1, 2, 3, 2]  # the search stops at the first quality above the target, then the scene


def test_target_bpp_out_of_reach_says_so(speckled_db_scene, tmp_path):
    from sar_codec.registry import quality_range

    lowest, top = quality_range()
    high = codec.compress_scene(speckled_db_scene, tmp_path / "hi.sarc", target_bpp=100, device="cpu")
    assert high.quality == top and "top quality" in high.note
    low = codec.compress_scene(speckled_db_scene, tmp_path / "lo.sarc", target_bpp=1e-4, device="cpu")
    assert low.quality == lowest and "No quality reaches" in low.note


@pytest.mark.parametrize("target", [math.nan, math.inf, 0.0, -1.0])
def test_target_bpp_must_be_a_positive_number(speckled_db_scene, tmp_path, target):
    with pytest.raises(InputError, match="not a positive number"):
        codec.compress_scene(speckled_db_scene, tmp_path / "o.sarc", target_bpp=target, device="cpu")
    assert not (tmp_path / "o.sarc").exists()


def _rewrite_header(src, dst, change):
    with codec.Container.open(src) as c:
        header = json.loads(json.dumps(c.header))
        change(header)
        with ContainerWriter(dst, header, c.block_count) as w:
            for i in range(c.block_count):
                w.write_block(i, c.read_block(i))


def _set(path, value):
    def change(h):
        *parents, last = path.split(".")
        for key in parents:
            h = h[key]
        if value is _DROP:
            del h[last]
        else:
            h[last] = value
    return change


_DROP = object()


@pytest.mark.parametrize(("edit", "value"), [
    ("scene.width", _DROP), ("scene.width", "56"), ("scene.height", True), ("scene.count", 3),
    ("scene.dtype", "complex64"), ("scene.nodata", "none"), ("scene.nodata", _DROP), ("scene.band_names", ["VV"]),
    ("scene.units", "kelvin"),
    ("scene.georef", {}), ("scene.georef.crs", "not a CRS"), ("scene.georef.transform", [0, 0, 0, 0, 0, 0]),
    ("scene.georef.transform", [1, 0]), ("scene.georef.gcps", [[1, 2]]), ("scene.tags", {"a": 1}),
    ("scene.band_tags", {}), ("scene.band_descriptions", None), ("scene", []), ("mappings", []),
    ("mappings", [{"knots_db": [0, -1], "knots_norm": [0, 1]}] * 2), ("mappings", [{"knots_db": "x"}] * 2),
    ("tile_size", 50), ("block_size", "128"), ("model.sha256", 123), ("model.quality", "1"), ("model", None),
    ("format", "other"),
])
def test_an_edited_header_is_one_container_error(db_container, tmp_path, edit, value):
    _, sarc, _ = db_container
    _rewrite_header(sarc, tmp_path / "e.sarc", _set(edit, value))  # a valid CRC over an invalid header
    with pytest.raises(ContainerError) as info:
        codec.decompress_scene(tmp_path / "e.sarc", tmp_path / "e.tif", device="cpu")
    assert "\n" not in str(info.value) and "e.sarc" in str(info.value)
    assert not (tmp_path / "e.tif").exists()


def test_container_made_with_missing_weights_is_refused(db_container, tmp_path):
    _, sarc, _ = db_container
    _rewrite_header(sarc, tmp_path / "w.sarc", lambda h: h["model"].update(sha256="0" * 64))
    with pytest.raises(WeightsError, match="not installed"):
        codec.decompress_scene(tmp_path / "w.sarc", tmp_path / "w.tif", device="cpu")
    assert not (tmp_path / "w.tif").exists()


def test_container_coded_with_other_arithmetic_is_refused(db_container, tmp_path):
    _, sarc, _ = db_container
    assert codec.container_info(sarc)["model"]["arithmetic"] == ARITHMETIC_VERSION
    _rewrite_header(sarc, tmp_path / "a.sarc", lambda h: h["model"].pop("arithmetic"))  # as version 1 wrote it
    with pytest.raises(WeightsError, match="arithmetic version 1"):
        codec.decompress_scene(tmp_path / "a.sarc", tmp_path / "a.tif", device="cpu")
    assert not (tmp_path / "a.tif").exists()


def test_corruption_never_gives_a_silently_wrong_image(db_container, tmp_path):
    _, sarc, _ = db_container
    reference = _read(codec.decompress_scene(sarc, tmp_path / "ref.tif", device="cpu"))[0]
    data = sarc.read_bytes()
    rng = np.random.default_rng(0)
    outcomes = {"error": 0, "same": 0}
    for k in range(12):
        bad = bytearray(data)
        pos = int(rng.integers(PREAMBLE_SIZE, len(bad)))
        bad[pos] ^= int(rng.integers(1, 256))
        path = tmp_path / f"bad{k}.sarc"
        path.write_bytes(bytes(bad))
        try:
            out = codec.decompress_scene(path, tmp_path / f"bad{k}.tif", device="cpu")
        except SarCodecError:
            assert not (tmp_path / f"bad{k}.tif").exists()
            outcomes["error"] += 1
            continue
        assert np.array_equal(_read(out)[0], reference, equal_nan=True)
        outcomes["same"] += 1
    assert outcomes["error"] > 0


def test_truncated_container_is_a_container_error(db_container, tmp_path):
    _, sarc, _ = db_container
    cut = tmp_path / "cut.sarc"
    cut.write_bytes(sarc.read_bytes()[:-10])
    with pytest.raises(ContainerError):
        codec.decompress_scene(cut, tmp_path / "cut.tif", device="cpu")
    with pytest.raises(ContainerError):
        codec.verify_container(cut)


def test_info_reads_the_header_without_torch(db_container):
    import subprocess
    import sys

    _, sarc, _ = db_container
    code = ("import sys, json; from sar_codec.codec import container_info; "
            f"d = container_info({str(sarc)!r}); assert 'torch' not in sys.modules; print(d['model']['architecture'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    from sar_codec.registry import DEFAULT_ARCHITECTURE

    assert out.stdout.strip() == DEFAULT_ARCHITECTURE


# --- real Sentinel-1 data ---------------------------------------------------------------------


@pytest.mark.data
def test_real_dualpol_chips_round_trip(shared_data, tmp_path):
    chips = sorted((shared_data / "sen1floods11-dualpol-db").glob("*.tif"))
    assert chips
    for chip in chips:
        sarc = codec.compress_scene(chip, tmp_path / f"{chip.stem}.sarc", quality=Q, device="cpu").output
        out = codec.decompress_scene(sarc, tmp_path / f"{chip.stem}.tif", device="cpu")
        assert_same_scene(chip, out, "db", max_rmse_db=6.0)


@pytest.mark.data
def test_real_chip_fast_decode_is_within_a_fraction_of_a_db_of_the_exact_one(shared_data, tmp_path):
    chip = sorted((shared_data / "sen1floods11-dualpol-db").glob("*.tif"))[0]
    sarc = codec.compress_scene(chip, tmp_path / "chip.sarc", device="cpu").output  # the default quality
    fast, exact, valid = _fast_and_exact_db(sarc, tmp_path, window=(128, 128, 256, 256))
    diff = np.abs(fast - exact)[valid]
    # measured on the seven chips (docs/benchmarks.md), the default model: at most 0.54 dB, 0.008-0.023 dB on average
    assert diff.max() < 1.0 and diff.mean() < 0.03
    a = _read(chip)[0][:, 128:384, 128:384].astype(np.float64)
    err_fast, err_exact = np.sqrt(np.mean((a - fast)[valid] ** 2)), np.sqrt(np.mean((a - exact)[valid] ** 2))
    assert abs(err_fast - err_exact) < 0.01 * err_exact  # the same distortion to the original


@pytest.mark.data
def test_real_grd_pair_keeps_every_gcp(shared_data, tmp_path):
    d = shared_data / "grd-uint16-gcps"
    vv, vh = d / "S1A_IW_GRDH_20180716T004042_iw-vv.tiff", d / "S1A_IW_GRDH_20180716T004042_iw-vh.tiff"
    sarc = codec.compress_scene([vv, vh], tmp_path / "grd.sarc", quality=Q, device="cpu").output
    header = read_header(sarc)
    assert header["scene"]["band_names"] == ["VV", "VH"] and len(header["scene"]["georef"]["gcps"]) == 210
    out = codec.decompress_scene(sarc, tmp_path / "grd.tif", device="cpu")
    with rasterio.open(vv) as a, rasterio.open(out) as b:
        assert b.count == 2 and b.dtypes == ("uint16", "uint16") and (b.width, b.height) == (a.width, a.height)
        assert [(g.row, g.col, g.x, g.y, g.z) for g in b.gcps[0]] == [(g.row, g.col, g.x, g.y, g.z) for g in a.gcps[0]]
        assert b.gcps[1] == a.gcps[1]
        assert np.array_equal(a.read(1) == 0, b.read(1) == 0)


def test_scenes_take_their_models_tile_size_unless_smaller(tmp_path, make_raster, monkeypatch) -> None:
    """A model trained on larger crops codes scenes in tiles of that size (halved for a scene narrower than
    one); an asked-for tile size wins."""
    from dataclasses import replace

    from sar_codec import registry
    from sar_codec.tiling import scene_tile_size

    assert [scene_tile_size(256, h, w, 512) for h, w in ((640, 640), (200, 900), (100, 100), (64, 64))] == \
        [256, 128, 64, 64]
    assert [scene_tile_size(256, 640, 640, b) for b in (1024, 384, 192, 64)] == [256, 128, 64, 64]
    monkeypatch.setattr(codec, "lookup", lambda a, q: replace(registry.lookup(a, q), tile_size=128))
    rng = np.random.default_rng(3)
    for shape, tile, asked in (((160, 200), 128, None), ((100, 300), 64, None), ((160, 200), 64, 64)):  # 512 blocks
        src = make_raster(tmp_path / f"s{shape[0]}{asked}.tif", rng.normal(-12, 3, (1, *shape)).astype("f4"))
        out = codec.compress_scene(src, tmp_path / f"s{shape[0]}{asked}.sarc", device="cpu", quality=2,
                                   tile_size=asked, overviews=False).output
        assert read_header(out)["tile_size"] == tile
        back = codec.decompress_scene(out, tmp_path / f"b{shape[0]}{asked}.tif", device="cpu")
        with rasterio.open(back) as f:
            assert f.shape == shape
