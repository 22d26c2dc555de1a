"""Rate-distortion evaluation on a folder of patches or scenes: every installed model and every baseline.

Images are read and mapped to [0, 1] by :mod:`sar_codec.training_data` exactly as training did (one mapping
per band of each file, fitted as the codec fits a scene), and the ``dev`` split is the one training held out
(every ``DEV_EVERY``-th file of the sorted folder). Scenes are cut into non-overlapping 64x64 patches; a
folder of 64x64 patches (EuroSAT-SAR: class folders of 2-band VV/VH GeoTIFFs) gives one patch per band.

Learned rates count the real bytes of the tile streams that :meth:`TileCodec.compress` writes for batches
of 64 patches, as a 512-pixel container block holds; a container adds per block one mask flag byte per band,
a 4-byte stream length and a 16-byte index entry, plus its preamble and header once (see ``docs/metrics.md``).
The baselines (:data:`sar_codec.baselines.CODECS`) code the same patches as mosaics of 8x8 patches (one
file per 64 patches, so file headers are shared as the learned stream shares its own), each mosaic as one
whole image (JPEG 2000 as one tile; the 1024-tiled JPEG 2000 is left out, as a 512-pixel mosaic fits in one
of its tiles). BD-rates are given for every model against every baseline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import baselines, metrics
from .codec import check_effort
from .compare import learned_points
from .device import pick_device
from .errors import InputError, OutputExistsError
from .files import write_text_atomic
from .progress import Cancelled, Progress, Steps
from .radiometry import Units, check_units
from .registry import load_codec
from .reporting import write_csv, write_json, write_rd_plot
from .training_data import (
    Source,
    dev_patches,
    list_images,
    normalised_images,
    split_files,
)

PATCH = 64
BATCH = 64  # patches per learned stream and per baseline file
MOSAIC_SIDE = 8  # a baseline file is a mosaic of 8 x 8 patches
BASELINE_TARGETS = (0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)  # bpp the baselines are rate-matched to
ANCHOR = "jpeg2000"  # the headline baseline (whole-image JPEG 2000); BD-rates are given against every baseline
TABLE_BPP = 1.0  # the table shows each codec's point nearest this rate
OUTPUT_FILES = ("table.md", "rd.csv", "rd.png", "report.json")


def _units_of(files: Sequence[Path], units: Units | None) -> Units:
    """The forced units, else those open_scene detects on the first GeoTIFF."""
    if units is not None:
        return check_units(units)
    if files[0].suffix.lower() == ".png":
        raise InputError(f"{files[0].parent} holds PNG images, whose units cannot be detected; give the units "
                         "(amplitude, power or db).")
    from .scene import open_scene

    with open_scene(files[0]) as scene:
        return scene.info.units


def load_patches(data_dir: str | Path, split: str = "dev", units: Units | None = None,
                 limit: int | None = None, mappings: list | None = None) -> tuple[np.ndarray, dict]:
    """The 64x64 patches of ``data_dir`` in [0, 1], (N, 1, 64, 64) float64, and what was read.

    ``mappings``: a list that receives each patch's dB -> [0, 1] mapping (to measure errors in dB)."""
    data_dir = Path(data_dir)
    if split not in ("dev", "all"):
        raise InputError(f"Unknown split {split!r}: use dev or all.")
    if not data_dir.exists():
        raise InputError(f"{data_dir} does not exist; give a folder of GeoTIFF or PNG images.")
    files = split_files(list_images(data_dir), split)
    if not files:
        raise InputError(f"{data_dir} holds no .tif or .png images for the {split} split.")
    units = _units_of(files, units)
    image_maps: list = []
    images = normalised_images(Source(data_dir, units), split, np.random.default_rng(0), mappings=image_maps)
    if not any(im.shape[0] >= PATCH and im.shape[1] >= PATCH for im in images):
        raise InputError(f"No image of {data_dir} has a {PATCH}x{PATCH} area without nodata.")
    origins: list[int] = []
    try:
        patches = dev_patches(images, PATCH, origins).astype(np.float64)
    except ValueError as exc:  # np.stack of nothing
        raise InputError(f"No {PATCH}x{PATCH} patch of {data_dir} is free of nodata.") from exc
    total = len(patches)
    keep = np.arange(total)
    if limit is not None and limit < total:
        keep = np.linspace(0, total - 1, limit).round().astype(int)
        patches = patches[keep]
    if mappings is not None:
        mappings += [image_maps[origins[i]] for i in keep]
    return patches, {"data_dir": str(data_dir), "split": split, "units": units, "files": len(files),
                     "images": len(images), "patches_available": total, "patches": len(patches)}


def _mosaics(patches: np.ndarray) -> list[np.ndarray]:
    """Groups of 64 patches laid out 8 across; empty places of the last mosaic hold its mean (no pixels count)."""
    out = []
    for i in range(0, len(patches), BATCH):
        group = patches[i : i + BATCH, 0]
        cols = min(len(group), MOSAIC_SIDE)
        rows = -(-len(group) // cols)
        m = np.full((rows * PATCH, cols * PATCH), float(group.mean()))
        for k, p in enumerate(group):
            r, c = divmod(k, cols)
            m[r * PATCH : (r + 1) * PATCH, c * PATCH : (c + 1) * PATCH] = p
        out.append(m)
    return out


def _unmosaic(mosaics: Sequence[np.ndarray], n: int) -> np.ndarray:
    out = np.empty((n, 1, PATCH, PATCH))
    for i, m in enumerate(mosaics):
        cols = m.shape[1] // PATCH
        for k in range(min(BATCH, n - i * BATCH)):
            r, c = divmod(k, cols)
            out[i * BATCH + k, 0] = m[r * PATCH : (r + 1) * PATCH, c * PATCH : (c + 1) * PATCH]
    return out


def _scores(ref: np.ndarray, dec: np.ndarray, maps: Sequence) -> dict:
    """PSNR and SSIM per patch in [0, 1], averaged; RMSE in dB and PSNR in dB (35 dB peak) over all samples."""
    sq = sum(float(np.sum((m.inverse(d[0]) - m.inverse(r[0])) ** 2)) for r, d, m in zip(ref, dec, maps))
    mse_db = sq / ref[:, 0].size
    return {"psnr": float(np.mean(metrics.patch_psnr(ref, dec))), "ssim": float(np.mean(metrics.ssim_batch(ref, dec))),
            "rmse_db": math.sqrt(mse_db), "psnr_db": metrics.psnr_from_mse(mse_db, metrics.DB_WINDOW)}


def _learned_curve(entries, patches: np.ndarray, maps: Sequence, device: str, tick, effort: int = 0) -> list[dict]:
    """Each model's rate and scores, decoded exactly (the model card's figures reproduce anywhere); ``effort``:
    steps of encoder-side latent refinement (the curve is then named ``ARCH --effort N``)."""
    from .models.exact import FRAC_BITS  # here, not at the top: importing this module needs no torch

    rows = []
    for e in entries:
        codec = load_codec(e, device)
        nbytes, dec = 0, np.empty_like(patches)
        for i in range(0, len(patches), BATCH):
            x = patches[i : i + BATCH]
            stream = codec.compress(x, e.quality - 1, effort=effort, lmbda=e.lmbda)
            nbytes += len(stream)
            codes = codec.decompress(stream, len(x), e.quality - 1, PATCH, exact=True)
            dec[i : i + len(x)] = codes / float(2**FRAC_BITS)
        name = f"{e.architecture} --effort {effort}" if effort else e.architecture
        rows.append({"codec": name, "quality": e.quality, "param": e.lmbda, "bytes": nbytes,
                     "bpp": nbytes * 8 / patches[:, 0].size, **_scores(patches, dec, maps)})
        tick()
    return rows


def _baseline_curve(codec: str, patches: np.ndarray, maps: Sequence, targets: Sequence[float], tick) -> list[dict]:
    mosaics = _mosaics(patches)
    rows, seen = [], set()
    for t in targets:
        c = baselines.match_rate(codec, mosaics, t)
        tick()
        if c.param in seen:  # the same parameter twice (a target out of reach): one point
            continue
        seen.add(c.param)
        nbytes = c.nbytes  # the padding of the last mosaic is coded but its pixels are not counted
        rows.append({"codec": codec, "quality": None, "param": c.param, "bytes": nbytes, "target_bpp": t,
                     "bpp": nbytes * 8 / patches[:, 0].size, "rate_note": c.note,
                     **_scores(patches, _unmosaic(c.decoded, len(patches)), maps)})
    return rows


def _nearest(rows: list[dict], bpp: float) -> dict:
    return min(rows, key=lambda r: abs(math.log(r["bpp"] / bpp)))


def _table(curves: dict[str, list[dict]], bd: dict[str, dict[str, float | None]], codecs: Sequence[str]) -> str:
    head = ("| codec | bpp | PSNR [dB] | SSIM | PSNR in dB [dB] | RMSE [dB] | "
            + " | ".join(f"BD-rate vs {c}" for c in codecs) + " |")
    lines = [head, "|---|---:|---:|---:|---:|---:|" + "---:|" * len(codecs)]
    for name, rows in curves.items():
        r = _nearest(rows, TABLE_BPP)
        what = f"{name} q{r['quality']}" if r["quality"] is not None else f"{name} (parameter {r['param']:.3g})"
        cells = [bd.get(name, {}).get(c) for c in codecs]
        lines.append(f"| {what} | {r['bpp']:.3f} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['psnr_db']:.2f} | "
                     f"{r['rmse_db']:.3f} | "
                     + " | ".join("-" if b is None else f"{b:+.1f} %" for b in cells) + " |")
    lines.append(f"\nEach codec's point nearest {TABLE_BPP:g} bpp. BD-rate: Bjontegaard delta rate on PSNR against "
                 "each baseline (negative: fewer bits), learned models only; '-' when the PSNR ranges do not overlap "
                 "or a curve has under two points. Baselines code each 512x512 mosaic of patches as one image. PSNR "
                 "in the normalised domain; PSNR in dB has a fixed 35 dB peak (20 log10(35 / RMSE in dB)).")
    return "\n".join(lines) + "\n"


def evaluate_dir(data_dir: str | Path, out_dir: str | Path, *, models: Sequence[str] | None = None,
                 qualities: Sequence[int] | None = None, split: str = "dev", units: Units | None = None,
                 device: str = "auto", limit: int | None = None, targets: Sequence[float] = BASELINE_TARGETS,
                 overwrite: bool = False, effort: int = 0, progress: Progress | None = None,
                 cancelled: Cancelled | None = None) -> dict:
    """Rate-distortion curves of every chosen model and quality, JPEG and JPEG 2000 on a folder's patches.

    Parameters
    ----------
    data_dir: a folder (searched recursively) of GeoTIFF or PNG images or 64x64 patches, or one image.
    out_dir: folder for table.md, rd.csv, rd.png and report.json (made if missing).
    models, qualities: architectures and quality levels (default: every installed one).
    split: ``dev`` (the files training held out) or ``all``.
    units: force the units of the images instead of detecting them (needed for PNG).
    limit: evaluate at most this many patches, evenly spread over the folder.
    targets: the rates (bpp) JPEG and JPEG 2000 are matched to.
    effort: steps of encoder-side latent refinement for every model (as ``compress --effort``; 0: none).
    """
    out_dir = Path(out_dir)
    entries = learned_points(models, qualities)
    for architecture in dict.fromkeys(e.architecture for e in entries):
        check_effort(effort, architecture, reproducible=False)
    device = pick_device(device)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"{out_dir} is a file; give a folder for the evaluation outputs.")
    taken = [n for n in OUTPUT_FILES if (out_dir / n).exists()]
    if taken and not overwrite:
        raise OutputExistsError(f"{out_dir} already holds {taken[0]}; choose another folder or allow overwriting.")
    maps: list = []
    patches, source = load_patches(data_dir, split, units, limit, maps)
    codecs = [c for c in baselines.CODECS if c != "jpeg2000-tiled"]  # a 512-pixel mosaic fits in one tile
    steps = Steps(len(entries) + len(codecs) * len(targets), progress, cancelled,
                  "Cancelled; the evaluation was not finished.")
    rows = _learned_curve(entries, patches, maps, device, steps.step, effort)
    for codec in codecs:
        rows += _baseline_curve(codec, patches, maps, targets, steps.step)
    curves: dict[str, list[dict]] = {}
    for r in rows:
        curves.setdefault(r["codec"], []).append(r)
    def bd_rates(key: str) -> dict:
        return {name: {c: metrics.bd_rate([r["bpp"] for r in curves[c]], [r[key] for r in curves[c]],
                                          [r["bpp"] for r in rs], [r[key] for r in rs]) for c in codecs}
                for name, rs in curves.items() if name not in codecs}

    bd, bd_db = bd_rates("psnr"), bd_rates("psnr_db")
    table = _table(curves, bd, codecs)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "table.md", table)
    write_csv(out_dir / "rd.csv", ["codec", "quality", "param", "target_bpp", "bytes", "bpp", "psnr", "ssim",
                                   "psnr_db", "rmse_db", "rate_note"],
              ([r["codec"], r["quality"] or "", r["param"], r.get("target_bpp", ""), r["bytes"], r["bpp"], r["psnr"],
                r["ssim"], r["psnr_db"], r["rmse_db"], r.get("rate_note") or ""] for r in rows))
    write_rd_plot(out_dir / "rd.png", {n: [(r["bpp"], r["psnr"], r["ssim"]) for r in rs] for n, rs in curves.items()},
                  f"{Path(data_dir).name} ({split}): {len(patches)} patches of {PATCH}x{PATCH}")
    report = {"source": source, "batch": BATCH, "anchor": ANCHOR, "baselines": codecs, "bd_rate_percent": bd,
              "bd_rate_percent_db": bd_db, "points": rows,
              "table_markdown": table,
              "outputs": {n: str(out_dir / n) for n in OUTPUT_FILES}}
    write_json(out_dir / "report.json", report)
    return report
