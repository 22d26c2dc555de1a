"""GDAL environment policy: the bounded block cache every scene read and write runs under."""

from __future__ import annotations

import os

import rasterio

GDAL_CACHE_MB = 128


def bounded_gdal_cache() -> rasterio.Env:
    """A rasterio environment whose GDAL block cache holds at most ``GDAL_CACHE_MB`` (GDAL's default is 5 % of
    RAM, which fills as a large scene streams through and makes peak memory grow with the scene). A
    ``GDAL_CACHEMAX`` set by the user in the process environment wins."""
    if "GDAL_CACHEMAX" in os.environ:
        return rasterio.Env()
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB)
