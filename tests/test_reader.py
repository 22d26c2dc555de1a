"""sar_codec.open: rasterio's dataset shape, windows equal to a full decode, overview reads, the block cache."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window as RioWindow

import sar_codec
from sar_codec import codec
from sar_codec.errors import InputError
from sar_codec.overviews import multilook, to_power
from sar_codec.tiling import Window


@pytest.fixture(scope="module")
def decoded(pyramid_container):
    with rasterio.open(pyramid_container[2]) as ds:
        return ds.read()


def test_attributes_are_rasterio_s(pyramid_container):
    source, sarc, _ = pyramid_container
    with rasterio.open(source) as src, sar_codec.open(sarc) as ds:
        assert (ds.width, ds.height, ds.count, ds.dtypes) == (src.width, src.height, src.count, src.dtypes)
        assert math.isnan(ds.nodata) and math.isnan(src.nodata)
        assert ds.crs == src.crs and ds.transform == src.transform
        assert ds.descriptions == ("VV", "VH") and ds.units == "db"
        assert ds.gcps == ([], None)
        assert ds.overviews(1) == [2] and ds.overviews(2) == [2]
        assert [(lv.width, lv.height) for lv in ds.levels] == [(640, 640), (320, 320)]
    assert ds.closed
    with pytest.raises(ValueError, match="closed"):
        ds.read(window=((0, 1), (0, 1)))


@pytest.mark.parametrize("window, rows, cols", [
    (None, slice(0, 640), slice(0, 640)),
    (((100, 300), (50, 400)), slice(100, 300), slice(50, 400)),
    (RioWindow(600, 1, 40, 639), slice(1, 640), slice(600, 640)),  # col_off, row_off, width, height
    (((127, 129), (255, 257)), slice(127, 129), slice(255, 257)),  # across four blocks
])
def test_level0_windows_equal_a_full_decode(pyramid_container, decoded, window, rows, cols):
    with sar_codec.open(pyramid_container[1]) as ds:
        got = ds.read(window=window)
        assert np.array_equal(got, decoded[:, rows, cols], equal_nan=True)
        assert np.array_equal(ds.read(2, window=window), decoded[1, rows, cols], equal_nan=True)
        assert np.array_equal(ds.read([2, 1], window=window), decoded[::-1, rows, cols], equal_nan=True)
        full_shape = (rows.stop - rows.start, cols.stop - cols.start)
        assert np.array_equal(ds.read(window=window, out_shape=full_shape), got, equal_nan=True)


def test_a_window_decodes_only_its_blocks_and_the_cache_is_bounded(pyramid_container):
    with sar_codec.open(pyramid_container[1], cache_mb=0.2) as ds:  # a 2 x 128 x 128 float32 block is 0.125 MB
        ds.read(window=((130, 140), (260, 270)))
        assert list(ds._cache) == [(0, 1 * 5 + 2)]
        ds.read(window=((0, 10), (0, 10)))
        assert list(ds._cache) == [(0, 0)]  # the older block was evicted


def test_overview_reads_equal_the_decoded_pyramid_level(pyramid_container):
    source, sarc, _ = pyramid_container
    with sar_codec.open(sarc) as ds:
        level = ds.read_level(1, Window(0, 0, 320, 320))
        assert np.array_equal(ds.read(out_shape=(320, 320)), level, equal_nan=True)
        assert np.array_equal(ds.read(out_shape=(2, 400, 400)), ds.read(out_shape=(400, 400)), equal_nan=True)
        part = ds.read(window=((128, 384), (256, 512)), out_shape=(128, 128))
        assert np.array_equal(part, level[:, 64:192, 128:256], equal_nan=True)
        assert ds.level_for(2.0, 2.0) == 1 and ds.level_for(1.9, 4.0) == 0 and ds.level_for(8.0, 8.0) == 1
    with rasterio.open(source) as src:
        raw = src.read()
    expected = multilook(to_power(raw, np.isfinite(raw), "db"))
    valid = np.isfinite(expected)
    assert np.array_equal(np.isfinite(level), valid)  # nodata carried exactly
    err = level[valid] - 10 * np.log10(expected[valid])
    assert abs(err.mean()) < 0.5 and np.sqrt(np.mean(err**2)) < 3.0  # the lowest quality codes at ~0.07 bpp


def test_container_without_overviews_reads_level_0(speckled_grd_scene, point, tmp_path):
    sarc = codec.compress_scene(speckled_grd_scene, tmp_path / "flat.sarc", architecture=point[0],
                                quality=point[1], device="cpu", overviews=False).output
    assert "overviews" not in codec.container_info(sarc)
    decoded = codec.decompress_scene(sarc, tmp_path / "flat.tif", device="cpu")
    with rasterio.open(decoded) as dec, rasterio.open(speckled_grd_scene) as src, sar_codec.open(sarc) as ds:
        assert ds.overviews(1) == []
        assert ds.gcps[1] == src.gcps[1] and len(ds.gcps[0]) == len(src.gcps[0]) == 20
        assert [(g.row, g.col, g.x, g.y) for g in ds.gcps[0]] == [(g.row, g.col, g.x, g.y) for g in src.gcps[0]]
        assert ds.crs is None and ds.nodata == 0 and ds.dtypes == ("uint16",)
        assert np.array_equal(ds.read(1), dec.read(1))
        small = ds.read(1, out_shape=(32, 32))  # no pyramid: sampled from level 0
        assert np.array_equal(small, dec.read(1)[2::4, 2::4])


def test_bad_windows_and_bands_are_one_sentence(pyramid_container):
    with sar_codec.open(pyramid_container[1]) as ds:
        with pytest.raises(InputError, match="is not inside the 640x640 scene"):
            ds.read(window=((600, 700), (0, 10)))
        with pytest.raises(InputError, match="Band 3 does not exist"):
            ds.read(3)
        with pytest.raises(InputError, match="neither a rasterio Window"):
            ds.read(window="all")
        with pytest.raises(InputError, match="Level 2 does not exist"):
            ds.read_level(2, Window(0, 0, 1, 1))


def test_import_is_light_and_the_model_loads_on_the_first_read(pyramid_container):
    code = ("import sys, sar_codec; assert 'torch' not in sys.modules and 'rasterio' not in sys.modules; "
            f"ds = sar_codec.open({str(pyramid_container[1])!r}); print(ds.width, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["640", "False"]


def test_verify_decodes_the_pyramid_too(pyramid_container, tmp_path):
    from sar_codec.container import Container
    from sar_codec.errors import ContainerError

    sarc = pyramid_container[1]
    assert codec.verify_container(sarc, decode=True, device="cpu")["blocks"] == 25 + 9
    with Container.open(sarc) as c:  # damage the payload of the first overview block
        offset = int(c._index[25]["offset"]) + c.block_length(25) // 2
    data = bytearray(sarc.read_bytes())
    data[offset] ^= 0x5A
    (tmp_path / "bad.sarc").write_bytes(bytes(data))
    with pytest.raises(ContainerError, match="block 25 of .* is corrupted"):
        codec.verify_container(tmp_path / "bad.sarc", decode=True, device="cpu")
