"""The model table: architecture x quality -> configuration -> weights file (with its SHA-256).

The table lives in one file, ``sar_codec/weights/models.json``, written when weights are registered after
training. One weights file holds every quality of an architecture (qualities are gain vectors). Weights load
with ``torch.load(weights_only=True)`` and are checked against their SHA-256 first.

Weights that newer weights of the same architecture replaced stay installed as *retired* entries (``"retired":
true``, the file renamed ``ARCH-<first 12 hex digits of its SHA-256>.pt``): nothing encodes with them, but the
containers made with them still decode (:func:`find_by_hash`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError, WeightsError
from .files import atomic_path, write_text_atomic
from .models import ARCHITECTURE_CLASS_NAMES

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
TABLE_FILE = WEIGHTS_DIR / "models.json"
# bmshj2018-hyperprior-light's decoder (the best model on two dev sets, 2.3 BD-rate points from the best on the
# third, a synthesis 5x cheaper than the founding study's) behind a light analysis 3.2x cheaper to encode, at the
# same rate-distortion on the dev sets (docs/models.md)
DEFAULT_ARCHITECTURE = "bmshj2018-hyperprior-fast"
DEFAULT_QUALITY = 6  # about 1 bpp (lambda 0.015)
ARCHITECTURES = tuple(ARCHITECTURE_CLASS_NAMES)  # declared once, in sar_codec/models/__init__.py


@dataclass(frozen=True)
class ModelEntry:
    """One row of the table: an architecture at one quality."""

    architecture: str
    quality: int  # 1-based, higher is better
    lmbda: float
    weights: str  # file name under WEIGHTS_DIR
    sha256: str
    config: dict
    dev_bpp: float | None = None
    dev_psnr: float | None = None
    tile_size: int = 64  # the tile side it was trained for, the default of scenes it codes (sar_codec.tiling)

    @property
    def path(self) -> Path:
        return weights_dir() / self.weights


def weights_dir() -> Path:
    return TABLE_FILE.parent


def _read_table(path: Path | None = None) -> list[dict]:
    """The table's entries, each of a declared architecture (one clear error where one is not)."""
    path = TABLE_FILE if path is None else path
    if not path.exists():
        return []
    models = json.loads(path.read_text())["models"]
    for m in models:
        if m["architecture"] not in ARCHITECTURES:
            raise WeightsError(f"The model table {path} names an unknown architecture, {m['architecture']!r} "
                               f"(known: {', '.join(ARCHITECTURES)}); reinstall sar-codec.")
    return models


def model_table(retired: bool = False) -> list[ModelEntry]:
    """Every shipped (architecture, quality), in table order; with ``retired``, the rows of retired weights too."""
    rows = []
    for m in _read_table():
        if m.get("retired") and not retired:
            continue
        for q in m["qualities"]:
            rows.append(ModelEntry(m["architecture"], q["quality"], q["lambda"], m["weights"], m["sha256"],
                                   m["config"], q.get("dev_bpp"), q.get("dev_psnr"), m.get("tile_size", 64)))
    return rows


def quality_range() -> tuple[int, int]:
    """The lowest and highest quality of the installed models ((1, 1) when none is installed)."""
    qualities = [e.quality for e in model_table()]
    return (min(qualities), max(qualities)) if qualities else (1, 1)


def lookup(architecture: str, quality: int) -> ModelEntry:
    """The table row for ``architecture`` at ``quality``; one clear error when there is none."""
    rows = [e for e in model_table() if e.architecture == architecture]
    if architecture not in ARCHITECTURES:
        raise InputError(f"Unknown model {architecture!r}: use one of {', '.join(ARCHITECTURES)}.")
    if not rows:
        raise WeightsError(f"No weights for {architecture} are installed; shipped: "
                           f"{', '.join(sorted({e.architecture for e in model_table()})) or 'none'}.")
    for e in rows:
        if e.quality == quality:
            return e
    raise InputError(f"Quality {quality} does not exist for {architecture}: use "
                     f"{min(e.quality for e in rows)} to {max(e.quality for e in rows)}.")


def find_by_hash(architecture: str, sha256: str, quality: int | None = None) -> ModelEntry | None:
    """A row of ``architecture`` whose weights have ``sha256`` (what a container was made with), current or
    retired, if installed; at ``quality`` when given."""
    for e in model_table(retired=True):
        if e.architecture == architecture and e.sha256 == sha256 and quality in (None, e.quality):
            return e
    return None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_model(entry: ModelEntry):
    """The float model of a table row, weights checked against the table's SHA-256."""
    import torch

    from .models.architectures import model_from_state

    if not entry.path.exists():
        raise WeightsError(f"The weights file {entry.weights} for {entry.architecture} is not installed.")
    if file_sha256(entry.path) != entry.sha256:
        raise WeightsError(f"The weights file {entry.weights} does not match its SHA-256 in the model table.")
    blob = torch.load(entry.path, map_location="cpu", weights_only=True)
    return model_from_state(entry.architecture, entry.config, blob["state_dict"]).eval()


@functools.lru_cache(maxsize=8)
def _cached_codec(architecture: str, sha256: str, device: str):
    from .models.engine import TileCodec

    entry = find_by_hash(architecture, sha256)
    return TileCodec(load_model(entry), device)


def load_codec(entry: ModelEntry, device: str = "cpu"):
    """The compiled fixed-point :class:`TileCodec` of a table row (cached per process)."""
    return _cached_codec(entry.architecture, entry.sha256, device)


@functools.lru_cache(maxsize=8)
def _cached_numpy_decoder(architecture: str, sha256: str):
    from .models.numpy_decoder import NumpyTileDecoder, decoder_path

    entry = find_by_hash(architecture, sha256)
    path = decoder_path(entry.path)
    if not path.exists():
        return None
    try:
        decoder = NumpyTileDecoder.load(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as exc:  # damaged, or another format
        raise WeightsError(f"The decoder file {path.name} for {architecture} cannot be read ({exc}); "
                           "reinstall sar-codec.") from None
    return decoder if decoder.weights_sha256 == sha256 else None


def load_decoder(entry: ModelEntry, device: str = "cpu"):
    """What decodes a table row's streams on ``device``: on the CPU its torch-free decoder
    (:mod:`sar_codec.models.numpy_decoder`: the same latent bit for bit, and with ``exact`` the same codes, as
    the compiled codec, without importing torch) where the model has one that matches its weights; else the
    compiled :class:`TileCodec` (cached per process)."""
    if device == "cpu":
        decoder = _cached_numpy_decoder(entry.architecture, entry.sha256)
        if decoder is not None:
            return decoder
    return load_codec(entry, device)


def _copy_atomic(src: Path, dst: Path) -> None:
    import shutil

    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _retire(current: dict, table_dir: Path) -> dict | None:
    """``current``'s weights (and torch-free decoder) copied to their retired name, and its entry retired; None,
    with a warning, when its file is not there (nothing could decode with it). InputError when its file is there
    but not the one the table names: it is not overwritten."""
    import warnings

    from .models.numpy_decoder import decoder_path

    old = table_dir / current["weights"]
    if not old.exists():
        warnings.warn(f"{old} is missing: its entry in the model table is dropped (no container made with it "
                      "can be decoded here).", stacklevel=3)
        return None
    if file_sha256(old) != current["sha256"]:
        raise InputError(f"{old} is not the file the model table names (its hash differs); restore it or move it "
                         "away before registering new weights, which would overwrite it.")
    retired = table_dir / f"{old.stem}-{current['sha256'][:12]}{old.suffix}"
    _copy_atomic(old, retired)
    if decoder_path(old).exists():
        _copy_atomic(decoder_path(old), decoder_path(retired))
    return {**current, "weights": retired.name, "retired": True}


def register_weights(path: Path, table: Path | None = None, name: str | None = None) -> dict:
    """Add or replace the table entry for a weights file written by training (atomic rewrites of the table).

    The file is copied beside the table as ``name`` (default: its own name). The architecture's weights it
    replaces, when they differ, are retired (see the module's docstring) so that their containers still decode:
    first they are copied to their retired name and the table says so, then the new file is copied in, then the
    table names it; a run killed on the way leaves a table whose every entry matches its file. Weights that were
    retired and are registered again become current under ``name``, and their retired copy is removed."""
    import torch

    table = TABLE_FILE if table is None else table
    meta = torch.load(path, map_location="cpu", weights_only=True)["meta"]
    if meta["architecture"] not in ARCHITECTURES:
        raise InputError(f"{path.name} holds an unknown architecture, {meta['architecture']!r}: this version "
                         f"installs {', '.join(ARCHITECTURES)}.")
    if meta["config"].get("in_channels", 1) != 1:
        raise InputError(f"{path.name} is a {meta['config']['in_channels']}-channel model; the codec codes each "
                         "polarisation with a one-channel model, so only those can be installed (see docs/models.md).")
    arch, sha = meta["architecture"], file_sha256(path)
    dest = table.parent / (name or path.name)
    models = _read_table(table)
    current = next((m for m in models if m["architecture"] == arch and not m.get("retired")), None)
    kept = [m for m in models if m is not current and m["sha256"] != sha]
    if current is not None and current["sha256"] != sha:
        retired = _retire(current, table.parent)
        if retired is not None:
            kept.append(retired)
        _write_table(table, kept)
    if path.resolve() != dest.resolve():
        _copy_atomic(path, dest)
    entry = {
        "architecture": arch,
        "weights": dest.name,
        "sha256": sha,
        "config": meta["config"],
        "training": {k: meta[k] for k in ("steps", "minutes", "batch_size", "patch_size", "device", "sources",
                                          "init_from", "train_only") if k in meta},
        "qualities": [
            {"quality": i + 1, "lambda": lam, "dev_bpp": round(d["bpp"], 4), "dev_psnr": round(d["psnr"], 3)}
            for i, (lam, d) in enumerate(zip(meta["lambdas"], meta["dev_estimate"]))
        ],
    }
    if meta.get("patch_size", 64) != 64:  # trained on larger crops: scenes are coded in tiles of that size
        entry["tile_size"] = meta["patch_size"]
    _write_table(table, [*kept, entry])
    _remove_retired_copies(models, sha, dest)
    return entry


def _remove_retired_copies(models: list[dict], sha: str, dest: Path) -> None:
    """The retired copy (and its decoder) of weights ``sha`` that the table now names as ``dest``."""
    from .models.numpy_decoder import decoder_path

    for m in models:
        old = dest.parent / m["weights"]
        if m.get("retired") and m["sha256"] == sha and old.name != dest.name:
            for f in (decoder_path(old), old):
                f.unlink(missing_ok=True)


def _write_table(table: Path, models: list[dict]) -> None:
    """The table, current entries first in the declared order, each architecture's retired ones after them."""
    models = sorted(models, key=lambda m: (bool(m.get("retired")), ARCHITECTURES.index(m["architecture"])))
    write_text_atomic(table, json.dumps({"models": models}, indent=1) + "\n")
    _cached_codec.cache_clear()
    _cached_numpy_decoder.cache_clear()
