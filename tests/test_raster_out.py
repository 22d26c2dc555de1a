"""Tests of sar_codec.raster_out: metadata round trips, COG, atomicity and protected paths."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio

from sar_codec.errors import OutputExistsError
from sar_codec.raster_out import SceneWriter
from sar_codec.scene import open_scene


def copy_scene(inputs, out: Path, *, cog: bool = False, block: int = 24, **kwargs) -> None:
    """Copy a scene window by window through SceneWriter, as the decoder does."""
    with open_scene(inputs) as scene, SceneWriter(out, scene.info, cog=cog, **kwargs) as writer:
        info = scene.info
        for row in range(0, info.height, block):
            for col in range(0, info.width, block):
                h, w = min(block, info.height - row), min(block, info.width - col)
                writer.write(row, col, scene.read(row, col, h, w))


def assert_same_scene(a, b) -> None:
    """Everything the writer must restore: georef (exactly), nodata, dtype, tags, names, values."""
    with open_scene(a) as src, open_scene(b) as out:
        assert out.info.to_json() == src.info.to_json()
        assert out.info == src.info
        info = src.info
        np.testing.assert_array_equal(out.read(0, 0, info.height, info.width),
                                      src.read(0, 0, info.height, info.width))


@pytest.mark.parametrize("cog", [False, True], ids=["gtiff", "cog"])
@pytest.mark.parametrize("kind", ["db_scene", "grd_scene"])
def test_round_trip(kind, cog, request, tmp_path):
    source = request.getfixturevalue(kind)
    out = tmp_path / "out" / "restored.tif"
    out.parent.mkdir()
    copy_scene(source, out, cog=cog)
    assert_same_scene(source, out)
    with rasterio.open(out) as ds:
        assert ds.block_shapes[0] == (512, 512)
        assert ds.compression.name == "deflate"
        assert (ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG") == cog
    assert sorted(p.name for p in out.parent.iterdir()) == ["restored.tif"]  # no temp left
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not a private temp file's 0600


def test_round_trip_of_a_window_and_of_a_safe(grd_scene, safe_dir, tmp_path):
    with open_scene(grd_scene) as scene:
        sub = scene.info.for_window(8, 16, 24, 40)
        with SceneWriter(tmp_path / "sub.tif", sub) as writer:
            writer.write(0, 0, scene.read(8, 16, 24, 40))
    with open_scene(tmp_path / "sub.tif") as out:
        assert out.info == sub
    copy_scene(safe_dir, tmp_path / "safe.tif")
    with open_scene(tmp_path / "safe.tif") as out, open_scene(safe_dir) as src:
        assert out.info.band_names == ("VV", "VH")  # no source descriptions: described by polarisation
        assert out.info.band_descriptions == ("VV", "VH")
        assert out.info.georef == src.info.georef and out.info.tags == src.info.tags
        np.testing.assert_array_equal(out.read(0, 0, 32, 40), src.read(0, 0, 32, 40))


class Boom(Exception):
    pass


@pytest.mark.parametrize("cog", [False, True], ids=["gtiff", "cog"])
def test_exception_mid_write_leaves_nothing(db_scene, tmp_path, cog):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    existing = out_dir / "old.tif"
    existing.write_bytes(b"previous result")
    for target, overwrite in ((out_dir / "new.tif", False), (existing, True)):
        with pytest.raises(Boom), open_scene(db_scene) as scene:
            with SceneWriter(target, scene.info, cog=cog, overwrite=overwrite) as writer:
                writer.write(0, 0, scene.read(0, 0, 16, 16))
                raise Boom
    assert sorted(p.name for p in out_dir.iterdir()) == ["old.tif"]
    assert existing.read_bytes() == b"previous result"


def test_existing_output_and_protected_inputs(db_scene, tmp_path):
    with open_scene(db_scene) as scene:
        info = scene.info
    existing = tmp_path / "done.tif"
    existing.write_bytes(b"x")
    with pytest.raises(OutputExistsError, match="already exists"):
        SceneWriter(existing, info)
    copy_scene(db_scene, existing, overwrite=True)
    assert existing.stat().st_size > 1
    for path in (db_scene, tmp_path / "." / db_scene.name):
        with pytest.raises(OutputExistsError, match="is an input"):
            SceneWriter(path, info, overwrite=True, protect=[db_scene])
    link = tmp_path / "link.tif"
    link.symlink_to(db_scene)
    with pytest.raises(OutputExistsError, match="is an input"):
        SceneWriter(link, info, overwrite=True, protect=[str(db_scene)])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_write_checks_its_arguments(db_scene, tmp_path):
    with open_scene(db_scene) as scene, SceneWriter(tmp_path / "o.tif", scene.info) as writer:
        with pytest.raises(ValueError, match="float32"):
            writer.write(0, 0, np.zeros((2, 4, 4), "float64"))
        with pytest.raises(ValueError, match="outside"):
            writer.write(38, 0, np.zeros((2, 4, 4), "float32"))
        writer.write(0, 0, scene.read(0, 0, 40, 56))


# --- real Sentinel-1 files -------------------------------------------------------------------


@pytest.mark.data
def test_real_round_trips(shared_data, tmp_path):
    grd = shared_data / "grd-uint16-gcps"
    pair = [grd / "S1A_IW_GRDH_20180716T004042_iw-vv.tiff", grd / "S1A_IW_GRDH_20180716T004042_iw-vh.tiff"]
    copy_scene(pair, tmp_path / "grd.tif", block=512)
    with open_scene(pair) as src, open_scene(tmp_path / "grd.tif") as out:
        assert out.info.georef == src.info.georef and len(out.info.georef["gcps"]) == 210
        assert out.info.band_tags == src.info.band_tags and out.info.tags == src.info.tags
    chip = shared_data / "sen1floods11-dualpol-db" / "Ghana_53713_S1Hand.tif"
    copy_scene(chip, tmp_path / "chip.tif", cog=True, block=256)
    assert_same_scene(chip, tmp_path / "chip.tif")
