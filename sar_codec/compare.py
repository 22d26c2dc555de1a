"""Compare codecs on the user's own scene: learned models through the real .sarc path, the baselines, lossless.

Each chosen model x quality is compressed with :func:`~sar_codec.codec.compress_scene` into a temporary
container and decoded with :func:`~sar_codec.codec.decompress_scene`; its rate is every byte of the container.
The baselines (:data:`sar_codec.baselines.CODECS`: JPEG, JPEG 2000 on the whole image and in 1024-pixel tiles,
JPEG XL, LERC) code the same normalised values at rates matched to each learned point, and the lossless
reference is the ZSTD COG of the original samples. Large scenes are evaluated on a centred crop of at most
``crop`` pixels a side so the comparison stays interactive. See ``docs/metrics.md``.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import baselines, metrics
from .codec import compress_scene, decompress_scene, fit_mappings
from .device import pick_device
from .errors import InputError, OutputExistsError
from .files import atomic_path
from .progress import Cancelled, Progress, Steps
from .radiometry import Mapping, Units, from_db, to_db
from .registry import ModelEntry, lookup, model_table
from .reporting import write_csv, write_json, write_rd_plot
from .scene import open_scene
from .scene_info import SceneInfo
from .tiling import DEFAULT_BLOCK_SIZE, DEFAULT_CROP, DEFAULT_TILE_SIZE, BlockGrid, Window

QUICKLOOK_SIZE = 256  # side of the quicklook crops
REPORT_FILES = ("report.json", "report.csv", "rd.png", "error_db.tif")


# --- choosing what to run ------------------------------------------------------------------------


def learned_points(models: Sequence[str] | None, qualities: Sequence[int] | None) -> list[ModelEntry]:
    """Table rows for ``models`` (default: every installed architecture) at ``qualities`` (default: all)."""
    table = model_table()
    if not table:
        raise InputError("No model weights are installed; install or train a model first (see docs/models.md).")
    archs = list(dict.fromkeys(models)) if models else list(dict.fromkeys(e.architecture for e in table))
    rows = []
    for arch in archs:
        wanted = qualities or [e.quality for e in table if e.architecture == arch] or [1]
        rows += [lookup(arch, int(q)) for q in dict.fromkeys(wanted)]  # lookup raises the clear error
    return rows


def crop_window(info: SceneInfo, crop: int) -> Window:
    """The centred window of at most ``crop`` x ``crop`` pixels that is evaluated."""
    if crop < DEFAULT_TILE_SIZE:
        raise InputError(f"Crop size {crop} is smaller than one {DEFAULT_TILE_SIZE}-pixel tile.")
    h, w = min(info.height, crop), min(info.width, crop)
    return Window((info.height - h) // 2, (info.width - w) // 2, h, w)


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"{out_dir} is a file; give a folder for the comparison outputs.")
    out_dir.mkdir(parents=True, exist_ok=True)
    taken = [n for n in REPORT_FILES if (out_dir / n).exists()]
    if taken and not overwrite:
        raise OutputExistsError(f"{out_dir} already holds {taken[0]}; choose another folder or allow overwriting.")


def codecs_for(height: int, width: int) -> tuple[str, ...]:
    """The baselines to run: all, less the 1024-tiled JPEG 2000 when the image fits in one tile (it is then
    the same file as the whole-image JPEG 2000)."""
    fits = max(height, width) <= baselines.ARCHIVE_TILE
    return tuple(c for c in baselines.CODECS if not (fits and c == "jpeg2000-tiled"))


def bd_rates(points: Sequence[dict]) -> dict:
    """BD-rate (%) of each learned model against each baseline, on PSNR ([0, 1] domain) and on PSNR in dB.

    ``{model: {baseline: {"psnr": %, "psnr_db": %}}}``; None where the curves do not overlap.
    """
    curves: dict[str, dict[str, list]] = {}
    for p in points:
        curves.setdefault(p["kind"], {}).setdefault(p["codec"], []).append(p)
    out: dict = {}
    for model, mine in curves.get("learned", {}).items():
        out[model] = {}
        for base, theirs in curves.get("baseline", {}).items():
            out[model][base] = {key: metrics.bd_rate([q["bpp"] for q in theirs],
                                                     [q["metrics"]["all"][key] for q in theirs],
                                                     [q["bpp"] for q in mine], [q["metrics"]["all"][key] for q in mine])
                                for key in ("psnr", "psnr_db")}
    return out


# --- decoded values, in the codec's own output format --------------------------------------------


def _norm_filled(db: np.ndarray, valid: np.ndarray, mapping: Mapping) -> np.ndarray:
    """A band in [0, 1] with nodata filled by the mean of the valid samples (as the learned codec fills)."""
    norm = mapping.forward(db)
    norm[~valid] = norm[valid].mean() if valid.any() else 0.0
    return norm


def _native_from_norm(norm: Sequence[np.ndarray], raw: np.ndarray, valid: np.ndarray, mappings: Sequence[Mapping],
                      units: Units) -> np.ndarray:
    """Decoded [0, 1] bands back to the scene's units and dtype, nodata kept exactly, as decode_block does."""
    out = np.stack([from_db(m.inverse(n), units, raw.dtype) for n, m in zip(norm, mappings)])
    out[~valid] = raw[~valid]
    return out


def _db(native: np.ndarray, valid: np.ndarray, units: Units) -> np.ndarray:
    db = to_db(native, units)
    db[~valid] = np.nan
    return db


# --- the run -------------------------------------------------------------------------------------


def _point(label: str, kind: str, coded_bytes: int, pixels: int, refs: dict, scores: dict, **extra) -> dict:
    bpp = coded_bytes * 8 / pixels
    return {"label": label, "kind": kind, **extra, "bytes": coded_bytes, "bpp": bpp,
            "ratio_vs_uncompressed": refs["uncompressed_bpp"] / bpp,
            "ratio_vs_original": refs["original_bpp"] / bpp if refs["original_bpp"] else None,
            "ratio_vs_lossless": refs["lossless_bpp"] / bpp, "metrics": scores}


def _original_bytes(paths: Sequence[str]) -> int | None:
    """Bytes of the input files on disk (None when one is inside an archive)."""
    sizes = [Path(p).stat().st_size if not str(p).startswith("/vsi") and Path(p).is_file() else None for p in paths]
    return None if None in sizes else sum(sizes)


def compare_scene(inputs: str | Path | Sequence[str | Path], out_dir: str | Path, *,
                  models: Sequence[str] | None = None, qualities: Sequence[int] | None = None,
                  device: str = "auto", crop: int = DEFAULT_CROP, units: Units | None = None,
                  pols: Sequence[str] | None = None, overwrite: bool = False, progress: Progress | None = None,
                  cancelled: Cancelled | None = None) -> dict:
    """Compare learned models, the baselines and the lossless reference on a scene; write the report files.

    Parameters
    ----------
    inputs: a raster, a SAFE product, or two single-polarisation rasters (as for compress_scene).
    out_dir: folder for report.json, report.csv, rd.png, quicklook_*.png and error_db.tif (made if missing).
    models, qualities: architectures and quality levels to run (default: every installed one).
    crop: the largest side of the centred area evaluated.
    progress, cancelled: called with the fraction done / asked whether to stop, between codec runs.

    Returns the report (also written to report.json).
    """
    out_dir = Path(out_dir)
    entries = learned_points(models, qualities)
    device = pick_device(device)
    _prepare_out_dir(out_dir, overwrite)
    steps = Steps(2 * len(entries) + 2, progress, cancelled,  # mapping, (learned, baselines) per point, outputs
                  "Cancelled; the comparison was not finished.")  # mapping, (learned, baselines) per point, outputs
    with open_scene(inputs, units=units, pols=pols) as scene:
        info, win = scene.info, crop_window(scene.info, crop)
        raw = scene.read(win.row_off, win.col_off, win.height, win.width)
        valid = scene.valid_mask(raw)
        original_bytes = _original_bytes(scene.paths)
    if not valid.any():
        raise InputError("The evaluated crop holds only nodata; give a scene with valid samples in its centre.")
    crop_info = info.for_window(win.row_off, win.col_off, win.height, win.width)
    pixels = raw.size
    refs = {"uncompressed_bpp": raw.dtype.itemsize * 8,
            "original_file_bytes": original_bytes,
            "original_bpp": original_bytes * 8 / (info.width * info.height * info.count) if original_bytes else None}
    refs["lossless_cog_bytes"] = baselines.lossless_cog_bytes(raw, info.nodata)
    refs["lossless_bpp"] = refs["lossless_cog_bytes"] * 8 / pixels
    ref_db = _db(raw, valid, info.units)
    q_win = crop_window(crop_info, QUICKLOOK_SIZE)
    q_slice = (slice(None), slice(q_win.row_off, q_win.row_off + q_win.height),
               slice(q_win.col_off, q_win.col_off + q_win.width))
    looks: dict[str, np.ndarray] = {"original": ref_db[q_slice]}
    points: list[dict] = []
    best: tuple[float, str, np.ndarray] | None = None
    names = list(crop_info.band_names)
    baseline_codecs = codecs_for(win.height, win.width)
    with tempfile.TemporaryDirectory(prefix="sar-codec-compare-") as tmp_name:
        tmp = Path(tmp_name)
        crop_path = tmp / "crop.tif"
        _write(crop_path, crop_info, raw)
        with open_scene(crop_path, units=info.units) as cs:
            mappings = fit_mappings(cs, BlockGrid(win.height, win.width, DEFAULT_BLOCK_SIZE, DEFAULT_TILE_SIZE))
        norm = [_norm_filled(ref_db[b], valid[b], mappings[b]) for b in range(info.count)]
        steps.step()
        for e in entries:
            label = f"{e.architecture} q{e.quality}"
            sarc, dec_path = tmp / "point.sarc", tmp / "point.tif"
            res = compress_scene(crop_path, sarc, architecture=e.architecture, quality=e.quality, device=device,
                                 units=info.units, overwrite=True, cancelled=cancelled,
                                 progress=lambda f: steps.partial(0.6 * f))
            decompress_scene(sarc, dec_path, device=device, overwrite=True, cancelled=cancelled,
                             progress=lambda f: steps.partial(0.6 + 0.4 * f))
            with open_scene(dec_path, units=info.units) as ds:
                dec_db = _db(ds.read(0, 0, win.height, win.width), valid, info.units)
            scores = metrics.scene_metrics(ref_db, dec_db, valid, mappings, names)
            points.append(_point(label, "learned", res.bytes, pixels, refs, scores, codec=e.architecture,
                                 quality=e.quality))
            looks[label] = dec_db[q_slice]
            if best is None or scores["all"]["psnr"] > best[0]:
                best = (scores["all"]["psnr"], label, (dec_db - ref_db).astype(np.float32))
            steps.step()
            for codec in baseline_codecs:
                coded = baselines.match_rate(codec, norm, res.bpp)
                b_db = _db(_native_from_norm(coded.decoded, raw, valid, mappings, info.units), valid, info.units)
                b_label = f"{codec} @ {label}"
                points.append(_point(b_label, "baseline", coded.nbytes, pixels, refs,
                                     metrics.scene_metrics(ref_db, b_db, valid, mappings, names), codec=codec,
                                     param=coded.param, target_bpp=res.bpp, rate_note=coded.note))
                looks[b_label] = b_db[q_slice]
            steps.step()
    report = {
        "scene": {"inputs": [str(p) for p in ([inputs] if isinstance(inputs, (str, Path)) else inputs)],
                  "width": info.width, "height": info.height, "bands": names, "units": info.units,
                  "dtype": info.dtype},
        "crop": {"row_off": win.row_off, "col_off": win.col_off, "height": win.height, "width": win.width,
                 "whole_scene": (win.height, win.width) == (info.height, info.width), "max_side": crop},
        "reference": refs,
        "points": points,
        "best_learned": best[1] if best else None,
        "baselines": list(baseline_codecs),
        "bd_rate_percent": bd_rates(points),
    }
    report["outputs"] = _write_outputs(out_dir, report, looks, crop_info, best, overwrite)
    steps.step()
    return report


def _write(path: Path, info: SceneInfo, array: np.ndarray, overwrite: bool = False) -> None:
    from .raster_out import SceneWriter

    with SceneWriter(path, info, overwrite=overwrite) as w:
        w.write(0, 0, array)


# --- outputs -------------------------------------------------------------------------------------


CSV_METRICS = ("psnr", "psnr_db", "ssim", "ms_ssim", "rmse_db", "bias_db", "enl_original", "enl_decoded", "enl_ratio",
               "ratio_mean", "ratio_var")


def _write_csv(path: Path, points: Sequence[dict]) -> None:
    head = ["label", "kind", "codec", "quality", "param", "target_bpp", "bytes", "bpp", "ratio_vs_original",
            "ratio_vs_lossless", "band", *CSV_METRICS, "bright_rmse_db", "bright_bias_db", "dark_rmse_db",
            "dark_bias_db", "rate_note"]
    write_csv(path, head, ([p["label"], p["kind"], p["codec"], p.get("quality", ""), p.get("param", ""),
                            p.get("target_bpp", ""), p["bytes"], p["bpp"], p["ratio_vs_original"],
                            p["ratio_vs_lossless"], band, *(m.get(k) for k in CSV_METRICS),
                            m["bright"]["rmse_db"], m["bright"]["bias_db"], m["dark"]["rmse_db"],
                            m["dark"]["bias_db"], p.get("rate_note") or ""]
                           for p in points for band, m in p["metrics"].items()))


def _quicklook(path: Path, looks: dict[str, np.ndarray], names: Sequence[str], titles: dict[str, str]) -> None:
    """Rows = bands, columns = the given images; one grey stretch per band (original's 2-98 % in dB)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = list(looks)
    fig = Figure(figsize=(3.2 * len(cols), 3.4 * len(names)))
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(len(names), len(cols), squeeze=False))
    for b, name in enumerate(names):
        ref = looks["original"][b]
        finite = ref[np.isfinite(ref)]
        lo, hi = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
        for j, key in enumerate(cols):
            ax = axes[b, j]
            ax.imshow(looks[key][b], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_title(f"{name}: {titles.get(key, key)}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _write_outputs(out_dir: Path, report: dict, looks: dict[str, np.ndarray], crop_info: SceneInfo,
                   best: tuple | None, overwrite: bool) -> dict:
    points, names = report["points"], report["scene"]["bands"]
    outputs = {"json": str(out_dir / "report.json"), "csv": str(out_dir / "report.csv"),
               "rd_plot": str(out_dir / "rd.png"), "quicklooks": []}
    _write_csv(out_dir / "report.csv", points)
    curves: dict[str, list] = {}
    for p in points:
        m = p["metrics"]["all"]
        curves.setdefault(p["codec"], []).append((p["bpp"], m["psnr"], m["ssim"]))
    crop = report["crop"]
    write_rd_plot(out_dir / "rd.png", curves,
                  f"{Path(report['scene']['inputs'][0]).name}: {crop['width']}x{crop['height']} px, "
                  f"lossless ZSTD COG {report['reference']['lossless_bpp']:.2f} bpp")
    titles = {p["label"]: f"{p['label']}\n{p['bpp']:.3f} bpp, {_fmt(p['metrics']['all']['psnr'], '.2f')} dB"
              for p in points}
    for p in points:
        if p["kind"] != "learned":
            continue
        keys = ["original", p["label"], *(f"{c} @ {p['label']}" for c in report["baselines"])]
        path = out_dir / f"quicklook_{p['codec']}_q{p['quality']}.png"
        _quicklook(path, {k: looks[k] for k in keys}, names, titles)
        outputs["quicklooks"].append(str(path))
    if best is not None:
        err_info = dataclasses.replace(
            crop_info, dtype="float32", nodata=math.nan, units="db",
            tags={"TIFFTAG_IMAGEDESCRIPTION": f"sar-codec dB error (decoded - original) of {best[1]}"},
            band_descriptions=tuple(f"{n} dB error" for n in names))
        _write(out_dir / "error_db.tif", err_info, best[2], overwrite=True)
        outputs["error_map"] = str(out_dir / "error_db.tif")
    write_json(out_dir / "report.json", {**report, "outputs": outputs})
    return outputs
