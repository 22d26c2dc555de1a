"""Classical baselines on the codec's own [0, 1] data, each at its strongest, with rate matching.

Every baseline codes the radiometric mapping's normalised values, so it sees exactly what the learned codec
sees, and every byte of each file counts:

- ``jpeg``: GDAL's JPEG driver at 8 bits (baseline JPEG; values round(v * 255)).
- ``jpeg2000``: GDAL's JP2OpenJPEG driver at 12 bits (values round(v * 4095), NBITS=12, irreversible 9/7
  wavelet), the whole image as one tile. The learned codec's input is 12-bit fixed point too (``FRAC_BITS``),
  so neither gets more precision than the other.
- ``jpeg2000-tiled``: the same with 1024x1024 tiles (``ARCHIVE_TILE``), GDAL's default, as archives write it;
  an image that fits in one tile codes exactly as ``jpeg2000``.
- ``jpegxl``: libjxl through imagecodecs, 16-bit greyscale (values round(v * 65535)), effort 7, a bare
  codestream; the Butteraugli distance is searched to hit the rate.
- ``lerc``: LERC 4 through imagecodecs on the float32 values with its maximum error (``MAX_Z_ERROR``) searched
  to hit the rate, then zstd, as GDAL's ``COMPRESS=LERC_ZSTD`` writes its tiles.

GDAL files are coded in memory (``/vsimem/`` through rasterio's MemoryFile) and carry no GeoJP2/GMLJP2 boxes
(georeferencing is not what is being compared).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import InputError

JPEG_BITS = 8
JPEG_MIN_QUALITY = 10  # GDAL 3.6's JPEG driver refuses QUALITY below 10 (later GDALs accept 1)
JP2_BITS = 12
JP2_TILE_RESOLUTIONS = 3  # resolution levels of a small tile (GDAL's default gives a 64-px tile only 1)
ARCHIVE_TILE = 1024  # JP2OpenJPEG's default tile side, as archives write JPEG 2000
JXL_BITS = 16
JXL_EFFORT = 7
JXL_DISTANCES = (0.01, 25.0)  # libjxl's range of Butteraugli distances (0 is lossless)
LERC_ERRORS = (1e-7, 0.5)  # the range of LERC maximum errors searched, in [0, 1] units
LERC_ZSTD_LEVEL = 9  # GDAL's default ZSTD_LEVEL
RATE_TOLERANCE = 0.10  # a matched rate is within 10 % of the target
CODECS = ("jpeg", "jpeg2000", "jpeg2000-tiled", "jpegxl", "lerc")


@dataclass(frozen=True)
class Coded:
    """A baseline's result on a set of images: the parameter used, exact bytes and decoded [0, 1] arrays."""

    codec: str
    param: float  # JPEG quality (10-100), JPEG 2000 QUALITY (% of the 12-bit size), JPEG XL distance, LERC error
    nbytes: int  # every byte of every file
    pixels: int
    decoded: list[np.ndarray]
    note: str | None = None  # set when the target rate could not be met within the tolerance

    @property
    def bpp(self) -> float:
        return self.nbytes * 8 / self.pixels


def _memory_code(array: np.ndarray, driver: str, **options) -> tuple[int, np.ndarray]:
    """Write ``array`` (H, W) with ``driver`` to memory and read it back: (file bytes, decoded array)."""
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile() as mf:
            with mf.open(driver=driver, width=array.shape[1], height=array.shape[0], count=1,
                         dtype=array.dtype, **options) as dst:
                dst.write(array, 1)
            data = mf.read()
        with MemoryFile(data) as mf, mf.open() as src:
            return len(data), src.read(1)


def _check(images: Sequence[np.ndarray]) -> None:
    for im in images:
        if im.ndim != 2 or not np.all(np.isfinite(im)):
            raise ValueError("baseline images must be 2-D and finite (fill nodata before coding)")


def quantise(norm: np.ndarray, bits: int) -> np.ndarray:
    """[0, 1] values -> unsigned integers of ``bits`` bits (round to nearest)."""
    top = 2**bits - 1
    return np.rint(np.clip(norm, 0.0, 1.0) * top).astype(np.uint8 if bits <= 8 else np.uint16)


def jpeg(images: Sequence[np.ndarray], quality: int) -> Coded:
    """Code each [0, 1] image as an 8-bit greyscale JPEG at ``quality`` (10-100)."""
    _check(images)
    total, out = 0, []
    for im in images:
        n, dec = _memory_code(quantise(im, JPEG_BITS), "JPEG", quality=int(quality))
        total += n
        out.append(dec.astype(np.float64) / (2**JPEG_BITS - 1))
    return Coded("jpeg", float(quality), total, sum(im.size for im in images), out)


def jpeg2000(images: Sequence[np.ndarray], quality: float, tile: int | None = None) -> Coded:
    """Code each [0, 1] image as a 12-bit JPEG 2000 file; ``quality`` is GDAL's QUALITY (% of raw size).

    ``tile=None`` codes the whole image as one tile. ``tile`` codes it as independent JPEG 2000 tiles of that
    size in one file; tiles under 256 pixels get ``JP2_TILE_RESOLUTIONS`` resolution levels (GDAL's default
    leaves a 64-pixel tile without any wavelet decomposition; on sen1floods11 dev patches 3 levels were about as
    good as 4 and 5 and better than 2; see docs/metrics.md).
    """
    _check(images)
    opts = {"quality": f"{quality:.6g}", "nbits": JP2_BITS, "reversible": "NO", "gmljp2": "NO", "geojp2": "NO"}
    if tile and tile < 256:
        opts["resolutions"] = JP2_TILE_RESOLUTIONS
    total, out = 0, []
    for im in images:
        side = tile or max(im.shape)
        n, dec = _memory_code(quantise(im, JP2_BITS), "JP2OpenJPEG", blockxsize=min(side, im.shape[1]),
                              blockysize=min(side, im.shape[0]), **opts)
        total += n
        out.append(dec.astype(np.float64) / (2**JP2_BITS - 1))
    name = "jpeg2000" if tile is None else "jpeg2000-tiled" if tile == ARCHIVE_TILE else f"jpeg2000-t{tile}"
    return Coded(name, float(quality), total, sum(im.size for im in images), out)


def jpegxl(images: Sequence[np.ndarray], distance: float) -> Coded:
    """Code each [0, 1] image as a 16-bit greyscale JPEG XL codestream (libjxl, effort 7) at ``distance``."""
    import imagecodecs

    _check(images)
    total, out = 0, []
    for im in images:
        data = imagecodecs.jpegxl_encode(quantise(im, JXL_BITS), distance=float(distance), effort=JXL_EFFORT,
                                         usecontainer=False, numthreads=1)
        total += len(data)
        out.append(imagecodecs.jpegxl_decode(data).astype(np.float64) / (2**JXL_BITS - 1))
    return Coded("jpegxl", float(distance), total, sum(im.size for im in images), out)


def lerc(images: Sequence[np.ndarray], max_error: float) -> Coded:
    """Code each image's float32 values with LERC (maximum error ``max_error``) and zstd, as LERC_ZSTD does."""
    _check(images)
    total, out = 0, []
    for im in images:
        n, dec = lerc_code(np.asarray(im, np.float32), max_error)
        total += n
        out.append(dec.astype(np.float64))
    return Coded("lerc", float(max_error), total, sum(im.size for im in images), out)


def lerc_code(array: np.ndarray, max_error: float, valid: np.ndarray | None = None) -> tuple[int, np.ndarray]:
    """(bytes, decoded) of a 2-D float array through LERC 4 + zstd with |error| <= ``max_error``.

    ``valid`` (optional) is LERC's own mask: invalid samples cost (almost) nothing and decode as NaN.
    """
    import imagecodecs

    mask = None if valid is None else np.ascontiguousarray(valid, dtype=bool)
    data = imagecodecs.lerc_encode(np.ascontiguousarray(array), level=float(max_error), masks=mask,
                                   compression="zstd", compressionargs={"level": LERC_ZSTD_LEVEL})
    dec = imagecodecs.lerc_decode(data, masks=False)
    if valid is not None:
        dec = np.where(valid, dec, np.nan)
    return len(data), dec


def _miss(c: Coded, target: float) -> float:
    return abs(c.bpp / target - 1.0)


def _with_note(c: Coded, target: float, tolerance: float) -> Coded:
    if _miss(c, target) <= tolerance:
        return c
    note = (f"{c.codec} cannot reach {target:.3f} bpp within {tolerance:.0%}: the closest rate it gives "
            f"is {c.bpp:.3f} bpp (parameter {c.param:.4g})")
    return Coded(c.codec, c.param, c.nbytes, c.pixels, c.decoded, note)


def _match_jpeg(images: Sequence[np.ndarray], target: float) -> Coded:
    """Bisection on the integer quality (rate grows with quality), then the closest of the neighbours."""
    cache: dict[int, Coded] = {}

    def at(q: int) -> Coded:
        if q not in cache:
            cache[q] = jpeg(images, q)
        return cache[q]

    lo, hi = JPEG_MIN_QUALITY, 100
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if at(mid).bpp < target:
            lo = mid
        else:
            hi = mid
    for q in (lo - 1, lo, hi, hi + 1):
        if JPEG_MIN_QUALITY <= q <= 100:
            at(q)
    return min(cache.values(), key=lambda c: (_miss(c, target), -c.param))


def _bisect_log(coder: Callable[[float], Coded], bounds: tuple[float, float], start: float, rising: bool,
                target: float, tolerance: float) -> Coded:
    """Bisection on the log of a continuous parameter whose rate rises (``rising``) or falls with it."""
    tried: dict[float, Coded] = {}

    def at(v: float) -> Coded:
        if v not in tried:
            tried[v] = coder(v)
        return tried[v]

    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    q = min(max(math.log(start), lo), hi)
    while hi - lo > 0.01:  # the parameter known to 1 %
        c = at(math.exp(q))
        if _miss(c, target) <= tolerance / 5:
            return c
        if (c.bpp < target) == rising:
            lo = q
        else:
            hi = q
        q = 0.5 * (lo + hi)
    return min((at(bounds[0]), at(bounds[1]), *tried.values()), key=lambda c: _miss(c, target))


def match_rate(codec: str, images: Sequence[np.ndarray], target_bpp: float, *, tile: int | None = None,
               tolerance: float = RATE_TOLERANCE) -> Coded:
    """Code ``images`` with ``codec`` at the parameter whose rate (all file bytes) is closest to ``target_bpp``.

    One parameter is used for all images and the rate is over all of them. When no parameter comes within
    ``tolerance`` (relative) of the target, the closest one is returned with a ``note`` saying so.
    """
    if not target_bpp > 0:
        raise InputError(f"Target rate {target_bpp} bpp must be positive.")
    if codec not in CODECS:
        raise InputError(f"Unknown baseline {codec!r}: use one of {', '.join(CODECS)}.")
    if codec == "jpeg":
        best = _match_jpeg(images, target_bpp)
    elif codec in ("jpeg2000", "jpeg2000-tiled"):
        side = tile if codec == "jpeg2000" else ARCHIVE_TILE
        best = _bisect_log(lambda q: jpeg2000(images, q, side), (0.01, 100.0), 100.0 * target_bpp / JP2_BITS,
                           True, target_bpp, tolerance)
    elif codec == "jpegxl":
        best = _bisect_log(lambda d: jpegxl(images, d), JXL_DISTANCES, 1.0, False, target_bpp, tolerance)
    else:
        best = _bisect_log(lambda e: lerc(images, e), LERC_ERRORS, 2.0 ** -(target_bpp + 1), False, target_bpp,
                           tolerance)
    return _with_note(best, target_bpp, tolerance)


def lossless_cog_bytes(array: np.ndarray, nodata: float | None = None) -> int:
    """Size of ``array`` (bands, H, W) as a ZSTD-compressed Cloud Optimized GeoTIFF with predictor.

    This is how Copernicus distributes COG GRD products (GDAL COG driver, COMPRESS=ZSTD, PREDICTOR=YES:
    horizontal differencing for integers, floating-point predictor for floats; 512-pixel blocks; overviews
    as the driver makes them by default). It is the lossless reference rate.
    """
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    count, height, width = array.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile() as mf:
            with mf.open(driver="COG", width=width, height=height, count=count, dtype=array.dtype,
                         nodata=nodata, compress="ZSTD", predictor="YES", blocksize=512) as dst:
                dst.write(array)
            return len(mf.read())
