"""Training and evaluation patches: SAR images from folders, mapped to [0, 1] exactly as the codec maps scenes.

A source is a folder (or file) and the units of its values. PNG files are read as 8-bit grey; GeoTIFFs through
:func:`sar_codec.scene.open_scene`, one single-channel image per band. Clean images (multi-date averages) can
carry simulated speckle: intensity multiplied by Gamma(L, 1/L) noise with L looks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .radiometry import Mapping, Units, check_units, fit_mapping, to_db

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
DEV_EVERY = 4  # every 4th file of a sorted folder is held out as the dev split


@dataclass(frozen=True)
class Source:
    """A folder (or file) of images with their units; ``speckle_looks`` > 0 adds simulated speckle."""

    path: Path
    units: Units
    speckle_looks: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Source:
        """Parse ``PATH[:UNITS[:LOOKS]]``, e.g. ``data/volkov:amplitude`` or ``data/clean:power:4.4``."""
        parts = text.split(":")
        units = check_units(parts[1]) if len(parts) > 1 and parts[1] else "db"
        looks = float(parts[2]) if len(parts) > 2 else 0.0
        path = Path(parts[0])
        if not path.exists():
            raise InputError(f"No such training source: {path}.")
        return cls(path, units, looks)


def list_images(path: Path) -> list[Path]:
    """Image files under ``path`` (recursively, sorted), or ``[path]`` for a file."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def split_files(files: list[Path], split: str) -> list[Path]:
    """The ``train`` or ``dev`` part of a sorted file list (every ``DEV_EVERY``-th file is dev)."""
    if split == "all":
        return files
    keep_dev = split == "dev"
    return [f for i, f in enumerate(files) if (i % DEV_EVERY == 0) == keep_dev]


def read_bands(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Native values and validity mask of each band of an image file."""
    if path.suffix.lower() == ".png":
        from PIL import Image

        with Image.open(path) as im:
            a = np.asarray(im.convert("L"), dtype=np.float64)
        return [(a, np.ones(a.shape, bool))]
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():  # training needs pixels only; chips without georeferencing are fine
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            arr = ds.read().astype(np.float64)
            nodata = ds.nodata
    valid = np.isfinite(arr)
    if nodata is not None and not np.isnan(nodata):
        valid &= arr != nodata
    return [(arr[b], valid[b]) for b in range(arr.shape[0])]


def _normalise(values: np.ndarray, valid: np.ndarray, source: Source,
               rng: np.random.Generator) -> tuple[np.ndarray, Mapping] | None:
    """One band in the codec's [0, 1] domain (float32, NaN where invalid) and its mapping, or None with too
    little data."""
    if source.units == "amplitude":
        valid = valid & (values > 0)
    if source.speckle_looks > 0:
        power = values**2 if source.units == "amplitude" else values
        if source.units == "db":
            power = 10.0 ** (values / 10.0)
        noise = rng.gamma(source.speckle_looks, 1.0 / source.speckle_looks, size=values.shape)
        db = to_db(power * noise, "power")
    else:
        db = to_db(values, source.units)
    db[~valid] = np.nan
    if np.isfinite(db).sum() < 64 * 64:
        return None
    mapping = fit_mapping(db)
    norm = mapping.forward(db).astype(np.float32)
    norm[~np.isfinite(db)] = np.nan
    return norm, mapping


def normalised_images(source: Source, split: str, rng: np.random.Generator, channels: int = 1,
                      mappings: list | None = None) -> list[np.ndarray]:
    """The images of ``source`` in the codec's [0, 1] domain (float32, NaN where invalid), each band mapped on
    its own as the codec maps it. ``channels=1``: every band is an image (rows, cols). ``channels=2``: the first
    two bands of each file with two or more (VV and VH) are one image (2, rows, cols); other files are skipped.
    ``mappings``: a list that receives each image's mapping (a tuple of them for ``channels=2``)."""
    out, maps = [], []
    for path in split_files(list_images(source.path), split):
        bands = read_bands(path)
        if channels == 1:
            done = [n for n in (_normalise(v, ok, source, rng) for v, ok in bands) if n is not None]
            out += [n for n, _ in done]
            maps += [m for _, m in done]
        elif len(bands) >= channels:
            pair = [_normalise(v, ok, source, rng) for v, ok in bands[:channels]]
            if all(n is not None for n in pair):
                out.append(np.stack([n for n, _ in pair]))
                maps.append(tuple(m for _, m in pair))
    if mappings is not None:
        mappings += maps
    return out


def _hw(im: np.ndarray) -> tuple[int, int]:
    return im.shape[-2], im.shape[-1]


class PatchSampler:
    """Random 64x64 (``size``) patches, with flips, from images in the [0, 1] domain; skips patches with nodata.
    Images are (rows, cols) or (channels, rows, cols), all with the same number of channels."""

    def __init__(self, images: list[np.ndarray], size: int = 64, seed: int = 0):
        self.images = [im for im in images if min(_hw(im)) >= size]
        if not self.images:
            raise InputError(f"No training image is at least {size}x{size} pixels.")
        self.channels = 1 if self.images[0].ndim == 2 else self.images[0].shape[0]
        areas = np.array([im.size for im in self.images], dtype=np.float64)
        self.weights = areas / areas.sum()
        self.size = size
        self.rng = np.random.default_rng(seed)

    def sample(self, batch: int) -> np.ndarray:
        """A batch (batch, channels, size, size) of float32 patches."""
        out = np.empty((batch, self.channels, self.size, self.size), np.float32)
        s, n = self.size, 0
        while n < batch:
            im = self.images[self.rng.choice(len(self.images), p=self.weights)]
            h, w = _hw(im)
            r = self.rng.integers(0, h - s + 1)
            c = self.rng.integers(0, w - s + 1)
            patch = im[..., r : r + s, c : c + s]
            if np.isnan(patch).any():
                continue
            if self.rng.random() < 0.5:
                patch = patch[..., :, ::-1]
            if self.rng.random() < 0.5:
                patch = patch[..., ::-1, :]
            out[n] = patch
            n += 1
        return out


def dev_patches(images: list[np.ndarray], size: int = 64, origins: list | None = None) -> np.ndarray:
    """All non-overlapping patches without nodata from the dev images, (n, channels, size, size) float32.
    ``origins``: a list that receives the index of each patch's image."""
    patches = []
    for i, im in enumerate(images):
        im3 = im[None] if im.ndim == 2 else im
        h, w = _hw(im3)
        for r in range(0, h - size + 1, size):
            for c in range(0, w - size + 1, size):
                p = im3[:, r : r + size, c : c + size]
                if not np.isnan(p).any():
                    patches.append(p)
                    if origins is not None:
                        origins.append(i)
    return np.stack(patches).astype(np.float32)
