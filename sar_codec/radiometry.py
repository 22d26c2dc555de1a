"""Radiometry: the one place that maps SAR values to and from the codec's [0, 1] domain.

Values go to decibels (amplitude: 20 log10, power: 10 log10, dB: as is), then through a per-polarisation,
monotone, piecewise-linear mapping to [0, 1]. The mapping is fitted to the scene: its core, between the
0.1th and 99.9th percentiles, is linear; the tails down to the scene minimum and up to the scene maximum
are kept too, compressed ``TAIL_COMPRESSION`` times, so bright scatterers and dark water are never clipped.
The mapping's knots are stored in the container and decoding inverts them exactly.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from .errors import InputError

Units = Literal["amplitude", "power", "db"]
UNITS: tuple[str, ...] = get_args(Units)

TAIL_COMPRESSION = 4.0
KNOT_DB_STEP = 2.0**-10  # dB knots are multiples of this (exact in float32 up to +-16384 dB)
KNOT_NORM_STEP = 2.0**-20  # [0, 1] knots are multiples of this (exact in float32)
CORE_PERCENTILES = (0.1, 99.9)
DB_FLOOR = -100.0
_MIN_CORE_DB = 1.0

# Histogram used to find percentiles while streaming a scene: 0.01 dB bins over [-150, 150) dB.
HIST_RANGE = (-150.0, 150.0)
HIST_BINS = 30000


def check_units(units: str) -> Units:
    """Return ``units`` if it names known units, else raise InputError."""
    if units not in UNITS:
        raise InputError(f"Unknown units {units!r}: use one of {', '.join(UNITS)}.")
    return units  # type: ignore[return-value]


def _table_index(dtype: np.dtype) -> np.dtype | None:
    """The unsigned type that indexes a table of every value of an 8- or 16-bit integer ``dtype``, else None."""
    return np.dtype(f"u{dtype.itemsize}") if dtype.kind in "iu" and dtype.itemsize <= 2 else None


def tabulated(fn: Callable[[np.ndarray, Units], np.ndarray]) -> Callable[[np.ndarray, Units], np.ndarray]:
    """Decorate an elementwise ``fn(values, units)`` so that 8- and 16-bit integer inputs (GRD amplitude DN) are
    looked up in a table of ``fn`` over every value of their type, computed once per type and units: the same
    results as ``fn`` on the array, several times faster than a logarithm per sample."""
    tables: dict[tuple[str, str], np.ndarray] = {}

    @functools.wraps(fn)
    def lookup(values: np.ndarray, units: Units) -> np.ndarray:
        values = np.asarray(values)
        index_type = _table_index(values.dtype)
        if index_type is None:
            return fn(values, units)
        table = tables.get((values.dtype.str, units))
        if table is None:
            with np.errstate(all="ignore"):  # values the scene may not hold (e.g. 65535 as dB)
                every = fn(np.arange(2 ** (8 * index_type.itemsize), dtype=index_type).view(values.dtype), units)
            table = tables.setdefault((values.dtype.str, units), every)
        return table[values.view(index_type)]

    return lookup


@tabulated
def to_db(values: np.ndarray, units: Units) -> np.ndarray:
    """Convert native values to decibels (float64); non-positive amplitude or power goes to ``DB_FLOOR``."""
    v = np.asarray(values, dtype=np.float64)
    if units == "db":
        return v.copy()
    floor = 10.0 ** (DB_FLOOR / (20.0 if units == "amplitude" else 10.0))
    with np.errstate(invalid="ignore"):
        v = np.where(v > floor, v, floor)
    return (20.0 if units == "amplitude" else 10.0) * np.log10(v)


def from_db(db: np.ndarray, units: Units, dtype: np.dtype | str) -> np.ndarray:
    """Convert decibels back to native units and ``dtype`` (integers rounded and kept >= 1, 0 being nodata)."""
    dtype = np.dtype(dtype)
    db = np.asarray(db, dtype=np.float64)
    if units == "db":
        v = db
    else:
        v = 10.0 ** (db / (20.0 if units == "amplitude" else 10.0))
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        v = np.clip(np.rint(v), max(info.min, 1), info.max)
    return v.astype(dtype)


@dataclass(frozen=True)
class Mapping:
    """A monotone piecewise-linear map from dB to [0, 1], defined by matching knots."""

    knots_db: tuple[float, ...]
    knots_norm: tuple[float, ...]

    def forward(self, db: np.ndarray) -> np.ndarray:
        """dB -> [0, 1] (values outside the knots are clamped to the ends)."""
        return np.interp(db, self.knots_db, self.knots_norm)

    def inverse(self, norm: np.ndarray) -> np.ndarray:
        """[0, 1] -> dB."""
        return np.interp(norm, self.knots_norm, self.knots_db)

    def db_per_unit(self) -> float:
        """dB per unit of [0, 1] in the mapping's core (its segment with the fewest dB per unit: the tails are
        compressed): what a normalised error is worth in dB over most of the band."""
        return min((d1 - d0) / (n1 - n0) for d0, d1, n0, n1 in
                   zip(self.knots_db, self.knots_db[1:], self.knots_norm, self.knots_norm[1:]))

    def to_json(self) -> dict:
        return {"knots_db": list(self.knots_db), "knots_norm": list(self.knots_norm)}

    @classmethod
    def from_json(cls, d: dict) -> Mapping:
        kd = tuple(float(v) for v in d["knots_db"])
        kn = tuple(float(v) for v in d["knots_norm"])
        if len(kd) != len(kn) or len(kd) < 2 or np.any(np.diff(kd) <= 0) or np.any(np.diff(kn) <= 0):
            raise ValueError("mapping knots must be two increasing sequences of equal length")
        return cls(kd, kn)


def _on_grid(value: float, step: float, how=round) -> float:
    return float(how(value / step) * step)


def mapping_from_stats(lo: float, hi: float, vmin: float, vmax: float) -> Mapping:
    """Build the mapping from the core percentiles ``lo``/``hi`` and the extremes ``vmin``/``vmax`` (dB).

    The knots are put on short binary grids (``KNOT_DB_STEP`` dB outwards for the extremes, ``KNOT_NORM_STEP``
    in [0, 1]), so that each is stored exactly in 4 bytes of the container header instead of 8.
    """
    if hi - lo < _MIN_CORE_DB:
        mid = 0.5 * (lo + hi)
        lo, hi = mid - _MIN_CORE_DB / 2, mid + _MIN_CORE_DB / 2
    lo, hi = _on_grid(lo, KNOT_DB_STEP), _on_grid(hi, KNOT_DB_STEP)
    vmin = _on_grid(min(vmin, lo), KNOT_DB_STEP, math.floor)
    vmax = _on_grid(max(vmax, hi), KNOT_DB_STEP, math.ceil)
    knots = [lo, hi]
    lengths = [hi - lo]
    if lo - vmin > 1e-6:
        knots.insert(0, vmin)
        lengths.insert(0, (lo - vmin) / TAIL_COMPRESSION)
    if vmax - hi > 1e-6:
        knots.append(vmax)
        lengths.append((vmax - hi) / TAIL_COMPRESSION)
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    norm = cum / cum[-1]
    gridded = np.round(norm / KNOT_NORM_STEP) * KNOT_NORM_STEP
    if np.all(np.diff(gridded) > 0):  # keep the exact values where the grid would merge two knots
        norm = gridded
    return Mapping(tuple(float(k) for k in knots), tuple(float(n) for n in norm))


def fit_mapping(db: np.ndarray) -> Mapping:
    """Fit a mapping to the valid (finite) dB values of one polarisation held in memory."""
    v = np.asarray(db, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise InputError("The scene has no valid pixels to compress.")
    lo, hi = np.percentile(v, CORE_PERCENTILES)
    return mapping_from_stats(float(lo), float(hi), float(v.min()), float(v.max()))


class DbHistogram:
    """Accumulates dB statistics window by window, so a mapping can be fitted to a scene too big for memory."""

    def __init__(self) -> None:
        self.counts = np.zeros(HIST_BINS, dtype=np.int64)
        self.vmin = np.inf
        self.vmax = -np.inf

    def add(self, db: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Count the finite values of ``db`` (each ``weights`` times, when given)."""
        v = np.asarray(db, dtype=np.float64)
        finite = np.isfinite(v)
        v = v[finite]
        if v.size == 0:
            return
        self.vmin = min(self.vmin, float(v.min()))
        self.vmax = max(self.vmax, float(v.max()))
        idx = ((v - HIST_RANGE[0]) * (HIST_BINS / (HIST_RANGE[1] - HIST_RANGE[0]))).astype(np.int64)
        idx = np.clip(idx, 0, HIST_BINS - 1)
        if weights is None:
            self.counts += np.bincount(idx, minlength=HIST_BINS)
        else:  # integer counts, exact in float64 below 2**53
            self.counts += np.bincount(idx, np.asarray(weights)[finite], minlength=HIST_BINS).astype(np.int64)

    def add_samples(self, values: np.ndarray, units: Units) -> None:
        """Count the dB values of native samples (the valid ones); 8- and 16-bit integers (GRD DN) are counted
        per distinct value first, the same histogram for a fraction of the work."""
        values = np.asarray(values).ravel()
        index_type = _table_index(values.dtype)
        if index_type is None:
            self.add(to_db(values, units))
            return
        counts = np.bincount(values.view(index_type), minlength=2 ** (8 * index_type.itemsize))
        present = np.flatnonzero(counts)
        self.add(to_db(present.astype(index_type).view(values.dtype), units), counts[present])

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def percentile(self, q: float) -> float:
        """Percentile ``q`` (0-100), exact to the 0.01 dB bin width."""
        cum = np.cumsum(self.counts)
        k = np.searchsorted(cum, q / 100.0 * cum[-1], side="left")
        width = (HIST_RANGE[1] - HIST_RANGE[0]) / HIST_BINS
        return float(np.clip(HIST_RANGE[0] + (k + 0.5) * width, self.vmin, self.vmax))

    def mapping(self) -> Mapping:
        if self.total == 0:
            raise InputError("The scene has no valid pixels to compress.")
        lo, hi = (self.percentile(q) for q in CORE_PERCENTILES)
        return mapping_from_stats(lo, hi, self.vmin, self.vmax)
