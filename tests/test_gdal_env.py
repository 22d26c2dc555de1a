"""GDAL environment policy: scene reads and writes run with a bounded block cache, unless the user set one."""

from __future__ import annotations

from rasterio._env import get_gdal_config

from sar_codec.gdal_env import GDAL_CACHE_MB, bounded_gdal_cache


def test_the_block_cache_is_bounded_inside_and_restored_after(monkeypatch):
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    before = get_gdal_config("GDAL_CACHEMAX")
    with bounded_gdal_cache():
        assert get_gdal_config("GDAL_CACHEMAX") == GDAL_CACHE_MB
    assert get_gdal_config("GDAL_CACHEMAX") == before


def test_a_cache_size_the_user_set_wins(monkeypatch):
    monkeypatch.setenv("GDAL_CACHEMAX", "64")
    with bounded_gdal_cache() as env:
        assert "GDAL_CACHEMAX" not in env.options
