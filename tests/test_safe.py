"""SAFE products in and out: every file travels, the product comes back and opens in GDAL's SENTINEL1 driver."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasters import SAFE_NAME, SAFE_SIZE, speckle_amplitude

from sar_codec import codec
from sar_codec.container import PREAMBLE_SIZE, Container
from sar_codec.errors import ContainerError, InputError, OutputExistsError
from sar_codec.safe import product_members, rebuild_product, store_product
from sar_codec.scene import open_scene

Q = 1  # the lowest quality codes fastest


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(root: Path) -> dict[str, Path]:
    return {f.relative_to(root).as_posix(): f for f in sorted(root.rglob("*")) if f.is_file()}


def _sentinel1(manifest: str) -> dict:
    """What GDAL's SENTINEL1 driver reports of a product: subdatasets (product path removed), size, GCPs, and the
    size and dtype of each subdataset."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(manifest) as ds:
            assert ds.driver == "SAFE"
            gcps, crs = ds.gcps
            subs = list(ds.subdatasets)
            out = {"size": (ds.width, ds.height, ds.count), "dtypes": ds.dtypes,
                   "gcps": [(g.row, g.col, g.x, g.y, g.z) for g in gcps], "crs": crs.to_epsg(),
                   "subdatasets": [s.replace(manifest, "PRODUCT") for s in subs]}
        for s in subs:
            with rasterio.open(s) as sub:
                out[s.replace(manifest, "PRODUCT")] = (sub.width, sub.height, sub.count, sub.dtypes)
    return out


def test_every_non_measurement_file_is_stored_with_its_checksum(test_safe, safe_container):
    header = codec.container_info(safe_container)
    stored = {f["path"]: f for f in header["files"]}
    originals = {f"{SAFE_NAME}/{k}": v for k, v in _tree(test_safe).items()}
    expected = {k for k in originals if "/measurement/" not in k}
    assert set(stored) == expected and len(expected) == 8  # manifest, 2 annotations, 4 calibration/noise, png
    for path, record in stored.items():
        assert record["sha256"] == _sha(originals[path]) and record["size"] == originals[path].stat().st_size
    with Container.open(safe_container) as c:
        blocks = sorted(f["block"] for f in header["files"])
        assert blocks == list(range(c.block_count - len(blocks), c.block_count))
    coded = {m["path"]: m for m in header["safe"]["measurements"]}
    assert set(coded) == {k for k in originals if "/measurement/" in k}
    vv = next(m for m in coded.values() if m["polarisation"] == "VV")
    assert vv["layout"]["tiled"] is False and vv["layout"]["blockysize"] == 1 and len(vv["gcps"]) == 210
    assert (vv["height"], vv["width"], vv["dtype"]) == (*SAFE_SIZE, "uint16")


def test_the_rebuilt_product_opens_in_gdal_as_the_original(test_safe, safe_container, tmp_path):
    out = tmp_path / "restored" / SAFE_NAME
    out.parent.mkdir()
    assert rebuild_product(safe_container, out, device="cpu") == out
    assert os.listdir(out.parent) == [SAFE_NAME]  # nothing left beside it
    original, rebuilt = _tree(test_safe), _tree(out)
    assert set(original) == set(rebuilt)
    for name, path in original.items():
        if not name.startswith("measurement/"):
            assert rebuilt[name].read_bytes() == path.read_bytes(), name
    report = _sentinel1(str(out / "manifest.safe"))
    assert report == _sentinel1(str(test_safe / "manifest.safe"))
    assert len(report["subdatasets"]) == 3 and len(report["gcps"]) == 210
    with rasterio.open(codec.decompress_scene(safe_container, tmp_path / "plain.tif", device="cpu")) as plain:
        names = codec.container_info(safe_container)["scene"]["band_names"]
        decoded = {pol: plain.read(i + 1) for i, pol in enumerate(names)}
    for name in (n for n in original if n.startswith("measurement/")):
        with rasterio.open(original[name]) as a, rasterio.open(rebuilt[name]) as b:
            assert (b.width, b.height, b.dtypes, b.block_shapes) == (a.width, a.height, a.dtypes, a.block_shapes)
            assert b.profile.get("compress") == a.profile.get("compress")
            assert b.tags() == a.tags() and b.gcps[1] == a.gcps[1]
            assert [(g.row, g.col, g.x, g.y, g.z) for g in b.gcps[0]] == [(g.row, g.col, g.x, g.y, g.z)
                                                                          for g in a.gcps[0]]
            assert np.array_equal(b.read(1), decoded["VV" if "-vv-" in name else "VH"])  # the codec's decode
            x, y = a.read(1).astype(float), b.read(1).astype(float)
            # the real texture, not noise or another image: at quality 1 (about 0.04 bpp) the default model keeps
            # a correlation of about 0.5 with it (0.497 for mbt2018-mean-light); an unrelated image has about 0
            assert np.corrcoef(x.ravel(), y.ravel())[0, 1] > 0.4
            assert abs(y.mean() / x.mean() - 1) < 0.1


def test_rebuild_as_zip_holds_the_product_folder(test_safe, safe_container, tmp_path):
    out = rebuild_product(safe_container, tmp_path / "restored.zip", device="cpu")
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        assert names == {f"{SAFE_NAME}/{k}" for k in _tree(test_safe)}
        assert zf.read(f"{SAFE_NAME}/manifest.safe") == (test_safe / "manifest.safe").read_bytes()
    assert os.listdir(tmp_path) == ["restored.zip"]
    manifest = f"/vsizip/{out}/{SAFE_NAME}/manifest.safe"
    assert _sentinel1(manifest)["size"] == _sentinel1(str(test_safe / "manifest.safe"))["size"]


def test_a_zip_product_stores_the_same_paths(test_safe, tmp_path):
    archive = Path(shutil.make_archive(str(tmp_path / SAFE_NAME.replace(".SAFE", "")), "zip", test_safe.parent,
                                       test_safe.name))
    root_dir, dir_members = product_members(test_safe)
    root_zip, zip_members = product_members(archive)
    assert root_zip == root_dir == SAFE_NAME
    assert [m.path for m in zip_members] == [m.path for m in dir_members]
    with open_scene(archive) as scene:
        stored = store_product(archive, scene, first_block=4)
    assert [f["block"] for f in stored.header["files"]] == list(range(4, 4 + 8))
    assert {m["path"] for m in stored.header["safe"]["measurements"]} == {m.path for m in zip_members
                                                                          if m.is_measurement}


def test_annotation_gcps_are_those_gdal_reads(test_safe):
    from sar_codec.safe import annotation_georef

    annotation = next((test_safe / "annotation").glob("*-vv-*.xml"))
    georef = annotation_georef(annotation.read_bytes(), annotation.name)
    gdal = _sentinel1(str(test_safe / "manifest.safe"))
    assert [tuple(g[:5]) for g in georef["gcps"]] == gdal["gcps"] and gdal["crs"] == 4326
    with pytest.raises(InputError, match="not valid XML"):
        annotation_georef(b"<product><geolocationGrid>", "a.xml")
    assert annotation_georef(b"<product/>", "a.xml") is None


def test_a_corrupted_stored_file_is_reported_by_name(safe_container, tmp_path):
    header = codec.container_info(safe_container)
    record = next(f for f in header["files"] if f["path"].endswith("manifest.safe"))
    with Container.open(safe_container) as c:
        offset = int(c._entry(record["block"])[0])
    bad = tmp_path / "bad.sarc"
    data = bytearray(safe_container.read_bytes())
    data[offset + 10] ^= 0xFF
    bad.write_bytes(bytes(data))
    assert offset > PREAMBLE_SIZE
    with pytest.raises(ContainerError, match=f"stored file {SAFE_NAME}/manifest.safe .* corrupted"):
        rebuild_product(bad, tmp_path / "out.SAFE", device="cpu")
    with pytest.raises(ContainerError, match="manifest.safe"):
        codec.verify_container(bad)
    assert codec.verify_container(safe_container)["files"] == 8
    assert sorted(os.listdir(tmp_path)) == ["bad.sarc"]  # no product, no debris
    result = CliRunner().invoke(_cli(), ["decompress", str(bad), "--safe", str(tmp_path / "x.zip"), "-q"])
    assert result.exit_code == 1 and "manifest.safe" in result.output and "Traceback" not in result.output


def test_outputs_are_never_overwritten_and_plain_containers_are_refused(safe_container, speckled_grd_scene, tmp_path):
    existing = tmp_path / "keep.SAFE"
    existing.mkdir()
    (existing / "mine.txt").write_text("keep me")
    with pytest.raises(OutputExistsError):
        rebuild_product(safe_container, existing, device="cpu")
    assert (existing / "mine.txt").read_text() == "keep me"
    plain = codec.compress_scene(speckled_grd_scene, tmp_path / "plain.sarc", quality=Q, device="cpu").output
    assert "files" not in codec.container_info(plain)
    with pytest.raises(InputError, match="not made from a SAFE product"):
        rebuild_product(plain, tmp_path / "p.SAFE", device="cpu")
    assert sorted(os.listdir(tmp_path)) == ["keep.SAFE", "plain.sarc"]


def _cli():
    from sar_codec_cli.main import cli

    return cli


def test_cli_info_lists_files_and_decompress_rebuilds(safe_container, tmp_path):
    runner = CliRunner()
    info = runner.invoke(_cli(), ["info", str(safe_container)])
    assert info.exit_code == 0, info.output
    assert "8 file(s) stored losslessly" in info.output and "manifest.safe" in info.output
    as_json = json.loads(runner.invoke(_cli(), ["info", "--json", str(safe_container)]).output)
    assert len(as_json["files"]) == 8
    out = tmp_path / "r.SAFE"
    result = runner.invoke(_cli(), ["decompress", str(safe_container), "--safe", str(out), "--device", "cpu", "-q"])
    assert result.exit_code == 0, result.output
    assert (out / "manifest.safe").is_file()
    usage = runner.invoke(_cli(), ["decompress", str(safe_container)])
    assert usage.exit_code == 2


def test_the_shared_full_size_product_is_described_without_coding_it(shared_data):
    product = shared_data / "safe-grd-full-size" / SAFE_NAME
    with open_scene(product) as scene:
        stored = store_product(product, scene, first_block=scene.info.width)
    files = {f["path"]: f for f in stored.header["files"]}
    assert set(files) == {f"{SAFE_NAME}/manifest.safe"} | {f"{SAFE_NAME}/annotation/{p.name}"
                                                           for p in (product / "annotation").iterdir()}
    for path, record in files.items():
        assert record["sha256"] == _sha(product / path.split("/", 1)[1])
    (vv,) = stored.header["safe"]["measurements"]
    assert (vv["width"], vv["height"], vv["dtype"]) == (25788, 16685, "uint16")
    assert vv["layout"]["compress"] == "zstd" and vv["layout"]["blockysize"] == 1
    assert vv["gcps"] is None and vv["crs"] is not None  # what this test copy holds
    assert len(stored.georef["gcps"]) == 210  # so the scene takes the annotation's GCPs instead
    assert stored.georef["gcps"][-1][:2] == [16684.0, 25787.0]
    assert sum(len(p) for p in stored.payloads) < sum(f["size"] for f in files.values()) / 5  # lzma: 8.5x on these XMLs


@pytest.mark.parametrize("compression", ["lzma", "zlib"])
def test_stored_files_round_trip_and_refuse_what_does_not_match(compression):
    from sar_codec.safe import pack_file, unpack_file

    data = b"<xml>" + bytes(range(256)) * 40 + b"</xml>"
    record = {"path": "P.SAFE/a.xml", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
              "compression": compression}
    payload = pack_file(data, compression)
    assert len(payload) < len(data) and unpack_file(payload, record, "c.sarc") == data
    with pytest.raises(ContainerError, match="P.SAFE/a.xml .*does not decompress"):
        unpack_file(payload[:-5] + b"xxxxx", record, "c.sarc")
    with pytest.raises(ContainerError, match="P.SAFE/a.xml .*SHA-256"):
        unpack_file(pack_file(data[:-1] + b"!", compression), record, "c.sarc")
    with pytest.raises(ContainerError, match="compression 'brotli'"):
        unpack_file(payload, {**record, "compression": "brotli"}, "c.sarc")
    with pytest.raises(InputError, match="Unknown file compression"):
        pack_file(data, "brotli")


def test_a_zstd_striped_measurement_with_a_crs_and_no_transform_comes_back_so(tmp_path, make_raster):
    """The shared full-size product's measurement layout (ZSTD strips of one line, EPSG:4326, identity
    transform), small: the rebuilt file reports the same to GDAL."""
    product = tmp_path / "S1B_IW_GRDH_1SDV_TEST.SAFE"
    (product / "measurement").mkdir(parents=True)
    (product / "manifest.safe").write_bytes(b"<?xml version='1.0'?><xfdu:XFDU/>\n")
    (product / "annotation").mkdir()
    grid = "".join(f"<geolocationGridPoint><line>{r}</line><pixel>{c}</pixel><latitude>{10 - r / 1000}</latitude>"
                   f"<longitude>{78 + c / 1000}</longitude><height>{r + c}</height></geolocationGridPoint>"
                   for r in (0, 129) for c in (0, 100, 199))
    (product / "annotation" / "s1b-iw-grd-vv-test-001.xml").write_text(
        f"<product><geolocationGrid><geolocationGridPointList count='6'>{grid}</geolocationGridPointList>"
        "</geolocationGrid></product>")
    tif = product / "measurement" / "s1b-iw-grd-vv-test-001.tiff"
    make_raster(tif, speckle_amplitude((1, 130, 200)), crs=CRS.from_epsg(4326), transform=Affine.identity(),
                compress="zstd", blockysize=1, bigtiff="YES")
    sarc = codec.compress_scene(product, tmp_path / "p.sarc", quality=Q, device="cpu").output
    out = rebuild_product(sarc, tmp_path / "out.SAFE", device="cpu")
    with rasterio.open(tif) as a, rasterio.open(out / "measurement" / tif.name) as b:
        assert (b.crs, b.transform, b.gcps[0], b.block_shapes, b.profile["compress"]) == (
            a.crs, a.transform, a.gcps[0], a.block_shapes, a.profile["compress"])
    assert (out / "measurement" / tif.name).read_bytes()[2:4] == b"+\x00"  # BigTIFF as the original
    assert (out / "manifest.safe").read_bytes() == (product / "manifest.safe").read_bytes()
    georef = codec.container_info(sarc)["scene"]["georef"]  # the scene takes the annotation's GCPs
    assert georef["transform"] is None and [g[:5] for g in georef["gcps"]][-1] == [129, 199, 78.199, 9.871, 328]


def test_overwrite_replaces_a_product_and_a_cancelled_rebuild_leaves_it_as_it_was(safe_container, tmp_path):
    from sar_codec.errors import CancelledError

    out = tmp_path / "p.SAFE"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(CancelledError):
        rebuild_product(safe_container, out, device="cpu", overwrite=True, cancelled=lambda: True)
    assert os.listdir(tmp_path) == ["p.SAFE"] and os.listdir(out) == ["old.txt"]  # untouched, no debris
    rebuild_product(safe_container, out, device="cpu", overwrite=True)
    assert os.listdir(tmp_path) == ["p.SAFE"] and (out / "manifest.safe").is_file()
    assert not (out / "old.txt").exists()
