"""sar-codec: learned compression of Sentinel-1 SAR GRD imagery in a georeferenced container."""

from sar_codec._version import __version__

__all__ = ["__version__"]
