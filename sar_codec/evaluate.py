"""Rate-distortion evaluation on a folder of patches or scenes: every installed model and every baseline.

Images are read and mapped to [0, 1] by :mod:`sar_codec.training_data` exactly as training did (one mapping
per band of each file, fitted as the codec fits a scene), and the ``dev`` split is the one training held out
(every ``DEV_EVERY``-th file of the sorted folder). Scenes are cut into non-overlapping patches without nodata,
64x64 by default (the founding study's unit; a folder of 64x64 patches, EuroSAT-SAR's class folders of 2-band
VV/VH GeoTIFFs, gives one patch per band) or larger (``patch_size`` 128 or 256: crops that a model trained on
larger tiles codes in its own tile size, and that the baselines' mosaics join at fewer borders).

Learned rates count the real bytes of the tile streams that :meth:`TileCodec.compress` writes for the patches
of one 512 x 512 area (64 patches of 64, four of 256), as a 512-pixel container block holds; each patch is cut
into tiles of the model's tile size (``ModelEntry.tile_size``, at most the patch). A container adds per block
one mask flag byte per band, a 4-byte stream length and a 16-byte index entry, plus its preamble and header
once (see ``docs/metrics.md``). The baselines (:data:`sar_codec.baselines.CODECS`) code the same patches as
512 x 512 mosaics (one file per mosaic, so file headers are shared as the learned stream shares its own), each
mosaic as one whole image (JPEG 2000 as one tile; the 1024-tiled JPEG 2000 is left out, as a 512-pixel mosaic
fits in one of its tiles). A mosaic of unrelated patches costs JPEG 2000 and JPEG XL at its borders: 2-6
BD-rate points with 64-pixel patches (docs/models.md), fewer with 256-pixel ones. BD-rates are given for
every model against every baseline.
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
from .rate_control import check_allocation, db_quality
from .registry import load_codec
from .reporting import write_csv, write_json, write_rd_plot
from .tiling import scene_tile_size
from .training_data import (
    Source,
    dev_patches,
    list_images,
    normalised_images,
    split_files,
)

PATCH = 64  # the default patch side
PATCH_SIZES = (64, 128, 256)
MOSAIC = 512  # the side of the area one learned stream and one baseline file cover (a container block)
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
                 limit: int | None = None, mappings: list | None = None,
                 patch_size: int = PATCH) -> tuple[np.ndarray, dict]:
    """The ``patch_size`` x ``patch_size`` patches of ``data_dir`` in [0, 1], (N, 1, P, P) float64, and what
    was read.

    ``mappings``: a list that receives each patch's dB -> [0, 1] mapping (to measure errors in dB)."""
    data_dir = Path(data_dir)
    if split not in ("dev", "all"):
        raise InputError(f"Unknown split {split!r}: use dev or all.")
    if patch_size not in PATCH_SIZES:
        raise InputError(f"Patch size {patch_size} is not one of {', '.join(map(str, PATCH_SIZES))}.")
    if not data_dir.exists():
        raise InputError(f"{data_dir} does not exist; give a folder of GeoTIFF or PNG images.")
    files = split_files(list_images(data_dir), split)
    if not files:
        raise InputError(f"{data_dir} holds no .tif or .png images for the {split} split.")
    units = _units_of(files, units)
    image_maps: list = []
    images = normalised_images(Source(data_dir, units), split, np.random.default_rng(0), mappings=image_maps)
    size = f"{patch_size}x{patch_size}"
    if not any(im.shape[-2] >= patch_size and im.shape[-1] >= patch_size for im in images):
        raise InputError(f"No image of {data_dir} has a {size} area.")
    origins: list[int] = []
    try:
        patches = dev_patches(images, patch_size, origins).astype(np.float64)
    except ValueError as exc:  # np.stack of nothing
        raise InputError(f"No {size} patch of {data_dir} is free of nodata.") from exc
    total = len(patches)
    keep = np.arange(total)
    if limit is not None and limit < total:
        keep = np.linspace(0, total - 1, limit).round().astype(int)
        patches = patches[keep]
    if mappings is not None:
        mappings += [image_maps[origins[i]] for i in keep]
    return patches, {"data_dir": str(data_dir), "split": split, "units": units, "files": len(files),
                     "images": len(images), "patches_available": total, "patches": len(patches),
                     "patch_size": patch_size}


def _per_mosaic(patch: int) -> int:
    """Patches of side ``patch`` in one 512 x 512 area: one learned stream, one baseline file."""
    return (MOSAIC // patch) ** 2


def _mosaics(patches: np.ndarray) -> list[np.ndarray]:
    """Groups of patches laid out in 512 x 512 mosaics; empty places of the last mosaic hold its mean (no pixels
    count)."""
    p, side = patches.shape[-1], MOSAIC // patches.shape[-1]
    out = []
    for i in range(0, len(patches), side * side):
        group = patches[i : i + side * side, 0]
        cols = min(len(group), side)
        rows = -(-len(group) // cols)
        m = np.full((rows * p, cols * p), float(group.mean()))
        for k, x in enumerate(group):
            r, c = divmod(k, cols)
            m[r * p : (r + 1) * p, c * p : (c + 1) * p] = x
        out.append(m)
    return out


def _unmosaic(mosaics: Sequence[np.ndarray], n: int, patch: int = PATCH) -> np.ndarray:
    out = np.empty((n, 1, patch, patch))
    per = _per_mosaic(patch)
    for i, m in enumerate(mosaics):
        cols = m.shape[1] // patch
        for k in range(min(per, n - i * per)):
            r, c = divmod(k, cols)
            out[i * per + k, 0] = m[r * patch : (r + 1) * patch, c * patch : (c + 1) * patch]
    return out


def code_patches(codec, quality: int, patches: np.ndarray, tile: int, effort: int = 0,
                 lmbda: float = 0.0) -> tuple[int, np.ndarray]:
    """Bytes and exact decode of ``patches`` (N, 1, P, P) in [0, 1] at ``quality`` (1-9) by a TileCodec: one
    stream per 512 x 512 area of patches, each patch cut into ``tile`` x ``tile`` tiles (``tile`` divides P)."""
    from .models.exact import FRAC_BITS  # here, not at the top: importing this module needs no torch

    p = patches.shape[-1]
    k, per = p // tile, _per_mosaic(p)
    nbytes, dec = 0, np.empty_like(patches)
    for i in range(0, len(patches), per):
        part = patches[i : i + per]
        tiles = part.reshape(len(part), 1, k, tile, k, tile).transpose(0, 2, 4, 1, 3, 5).reshape(-1, 1, tile, tile)
        stream = codec.compress(tiles, quality - 1, effort=effort, lmbda=lmbda)
        nbytes += len(stream)
        codes = codec.decompress(stream, len(tiles), quality - 1, tile, exact=True) / float(2**FRAC_BITS)
        dec[i : i + per] = codes.reshape(len(part), k, k, 1, tile, tile).transpose(0, 3, 1, 4, 2, 5).reshape(part.shape)
    return nbytes, dec


def scores(ref: np.ndarray, dec: np.ndarray, maps: Sequence) -> dict:
    """PSNR and SSIM per patch in [0, 1], averaged; RMSE in dB and PSNR in dB (35 dB peak) over all samples."""
    sq = sum(float(np.sum((m.inverse(d[0]) - m.inverse(r[0])) ** 2)) for r, d, m in zip(ref, dec, maps))
    mse_db = sq / ref[:, 0].size
    return {"psnr": float(np.mean(metrics.patch_psnr(ref, dec))), "ssim": float(np.mean(metrics.ssim_batch(ref, dec))),
            "rmse_db": math.sqrt(mse_db), "psnr_db": metrics.psnr_from_mse(mse_db, metrics.DB_WINDOW)}


def _learned_curve(entries, patches: np.ndarray, maps: Sequence, device: str, tick, effort: int = 0,
                   allocation: str = "normalised") -> list[dict]:
    """Each model's rate and scores, decoded exactly (the model card's figures reproduce anywhere), in its own
    tile size (at most the patch); ``effort``: steps of encoder-side latent refinement (the curve is then named
    ``ARCH --effort N``); ``allocation="db"``: each patch coded at the quality ``compress --allocation db`` gives
    its image (``rate_control.db_quality``; the curve named ``ARCH --allocation db``, a point per asked quality)."""
    p = patches.shape[-1]
    rows = []
    for e in entries:
        if allocation == "db":  # one choice per image (its patches share its mapping), not per patch
            chosen = {m: db_quality(e, [m]) for m in set(maps)}
            rowed = [chosen[m] for m in maps]
        else:
            rowed = [e] * len(patches)
        tile = scene_tile_size(e.tile_size, p, p, p)
        nbytes, dec = 0, np.empty_like(patches)
        for q in sorted({r.quality for r in rowed}):  # the patches coded at each row, together
            idx = [i for i, r in enumerate(rowed) if r.quality == q]
            row = rowed[idx[0]]
            n, dec[idx] = code_patches(load_codec(row, device), row.quality, patches[idx], tile, effort, row.lmbda)
            nbytes += n
        name = e.architecture + (f" --effort {effort}" if effort else "") + (" --allocation db" if allocation == "db"
                                                                             else "")
        rows.append({"codec": name, "quality": e.quality, "param": e.lmbda, "tile": tile, "bytes": nbytes,
                     "bpp": nbytes * 8 / patches[:, 0].size, **scores(patches, dec, maps)})
        tick()
    return rows


def baseline_curve(codec: str, patches: np.ndarray, maps: Sequence, targets: Sequence[float],
                   tick=lambda: None) -> list[dict]:
    """A classical codec's points on ``patches``, coded as 512 x 512 mosaics, rate-matched to each target."""
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
                     **scores(patches, _unmosaic(c.decoded, len(patches), patches.shape[-1]), maps)})
    return rows


def _nearest(rows: list[dict], bpp: float) -> dict:
    return min(rows, key=lambda r: abs(math.log(r["bpp"] / bpp)))


def _bd_cells(bd: dict[str, float | None], codecs: Sequence[str]) -> str:
    return " | ".join("-" if bd.get(c) is None else f"{bd[c]:+.1f} %" for c in codecs)


def _table(curves: dict[str, list[dict]], bd: dict[str, dict[str, float | None]],
           bd_db: dict[str, dict[str, float | None]], codecs: Sequence[str]) -> str:
    head = ("| codec | bpp | PSNR [dB] | SSIM | PSNR in dB [dB] | RMSE [dB] | "
            + " | ".join(f"BD-rate vs {c}" for c in codecs) + " |")
    lines = [head, "|---|---:|---:|---:|---:|---:|" + "---:|" * len(codecs)]
    for name, rows in curves.items():
        r = _nearest(rows, TABLE_BPP)
        what = f"{name} q{r['quality']}" if r["quality"] is not None else f"{name} (parameter {r['param']:.3g})"
        lines.append(f"| {what} | {r['bpp']:.3f} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['psnr_db']:.2f} | "
                     f"{r['rmse_db']:.3f} | {_bd_cells(bd.get(name, {}), codecs)} |")
    lines.append(f"\nEach codec's point nearest {TABLE_BPP:g} bpp. BD-rate: Bjontegaard delta rate on PSNR against "
                 "each baseline (negative: fewer bits), learned models only; '-' when the PSNR ranges do not overlap "
                 "or a curve has under two points. Baselines code each 512x512 mosaic of patches as one image. PSNR "
                 "in the normalised domain; PSNR in dB has a fixed 35 dB peak (20 log10(35 / RMSE in dB)).\n")
    lines.append("| BD-rate on PSNR in dB | " + " | ".join(f"vs {c}" for c in codecs) + " |")
    lines.append("|---|" + "---:|" * len(codecs))
    lines += [f"| {name} | {_bd_cells(cells, codecs)} |" for name, cells in bd_db.items()]
    return "\n".join(lines) + "\n"


def evaluate_dir(data_dir: str | Path, out_dir: str | Path, *, models: Sequence[str] | None = None,
                 qualities: Sequence[int] | None = None, split: str = "dev", units: Units | None = None,
                 device: str = "auto", limit: int | None = None, targets: Sequence[float] = BASELINE_TARGETS,
                 overwrite: bool = False, effort: int = 0, patch_size: int = PATCH, allocation: str = "normalised",
                 progress: Progress | None = None, cancelled: Cancelled | None = None) -> dict:
    """Rate-distortion curves of every chosen model and quality and of every baseline on a folder's patches.

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
    patch_size: side of the patches (64, 128 or 256); each model codes them in its own tile size, at most this.
    allocation: ``db`` adds each model's curve with the quality read in dB, as ``compress --allocation db``.
    """
    out_dir = Path(out_dir)
    entries = learned_points(models, qualities)
    check_allocation(allocation)
    for architecture in dict.fromkeys(e.architecture for e in entries):
        check_effort(effort, architecture, reproducible=False)
    device = pick_device(device)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"{out_dir} is a file; give a folder for the evaluation outputs.")
    taken = [n for n in OUTPUT_FILES if (out_dir / n).exists()]
    if taken and not overwrite:
        raise OutputExistsError(f"{out_dir} already holds {taken[0]}; choose another folder or allow overwriting.")
    maps: list = []
    patches, source = load_patches(data_dir, split, units, limit, maps, patch_size)
    codecs = [c for c in baselines.CODECS if c != "jpeg2000-tiled"]  # a 512-pixel mosaic fits in one tile
    allocations = ["normalised"] + (["db"] if allocation == "db" else [])
    steps = Steps(len(entries) * len(allocations) + len(codecs) * len(targets), progress, cancelled,
                  "Cancelled; the evaluation was not finished.")
    rows = [r for a in allocations for r in _learned_curve(entries, patches, maps, device, steps.step, effort, a)]
    for codec in codecs:
        rows += baseline_curve(codec, patches, maps, targets, steps.step)
    curves: dict[str, list[dict]] = {}
    for r in rows:
        curves.setdefault(r["codec"], []).append(r)
    def bd_rates(key: str) -> dict:
        return {name: {c: metrics.bd_rate([r["bpp"] for r in curves[c]], [r[key] for r in curves[c]],
                                          [r["bpp"] for r in rs], [r[key] for r in rs]) for c in codecs}
                for name, rs in curves.items() if name not in codecs}

    bd, bd_db = bd_rates("psnr"), bd_rates("psnr_db")
    table = _table(curves, bd, bd_db, codecs)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "table.md", table)
    write_csv(out_dir / "rd.csv", ["codec", "quality", "param", "target_bpp", "bytes", "bpp", "psnr", "ssim",
                                   "psnr_db", "rmse_db", "rate_note", "tile"],
              ([r["codec"], r["quality"] or "", r["param"], r.get("target_bpp", ""), r["bytes"], r["bpp"], r["psnr"],
                r["ssim"], r["psnr_db"], r["rmse_db"], r.get("rate_note") or "", r.get("tile", "")] for r in rows))
    write_rd_plot(out_dir / "rd.png", {n: [(r["bpp"], r["psnr"], r["ssim"]) for r in rs] for n, rs in curves.items()},
                  f"{Path(data_dir).name} ({split}): {len(patches)} patches of {patch_size}x{patch_size}")
    report = {"source": source, "mosaic": MOSAIC, "anchor": ANCHOR, "baselines": codecs, "bd_rate_percent": bd,
              "bd_rate_percent_db": bd_db, "points": rows,
              "table_markdown": table,
              "outputs": {n: str(out_dir / n) for n in OUTPUT_FILES}}
    write_json(out_dir / "report.json", report)
    return report
