"""sar-codec: learned compression of Sentinel-1 SAR GRD imagery in a georeferenced container."""

from sar_codec._version import __version__

__all__ = ["__version__", "open"]


def __getattr__(name: str):
    """``sar_codec.open`` is imported on first use, so that ``import sar_codec`` stays light (no torch, no GDAL)."""
    if name == "open":
        from sar_codec.reader import open

        return open
    raise AttributeError(f"module 'sar_codec' has no attribute {name!r}")
