"""Writing quality reports: strict JSON, CSV tables and rate-distortion plots, each written atomically.

``compare`` (one scene) and ``evaluate`` (a folder of patches) both report through these; what their rows hold is
documented in ``docs/metrics.md``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .files import atomic_path, write_text_atomic


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as the strings "inf", "-inf", "nan" (strict JSON has no literal)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: Path, report: Any) -> None:
    """``report`` as indented strict JSON (:func:`json_safe`) at ``path``."""
    write_text_atomic(path, json.dumps(json_safe(report), indent=1) + "\n")


def write_csv(path: Path, head: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A CSV table at ``path``: the ``head`` row, then ``rows``."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(head)
        w.writerows(rows)


def write_rd_plot(path: Path, curves: dict[str, list[tuple[float, float, float | None]]], title: str) -> None:
    """PSNR and SSIM against bpp, one line per codec (baselines dashed): ``curves[name] = [(bpp, psnr, ssim), ...]``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .baselines import CODECS

    fig = Figure(figsize=(11, 4.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    for name, pts in curves.items():
        pts = sorted(pts)
        style = "--" if name in CODECS else "-"
        axes[0].plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", ms=4, label=name)
        with_ssim = [p for p in pts if p[2] is not None]
        axes[1].plot([p[0] for p in with_ssim], [p[2] for p in with_ssim], style, marker="o", ms=4, label=name)
    for ax, ylabel in zip(axes, ("PSNR [dB], [0, 1] domain", "SSIM, [0, 1] domain")):
        ax.set_xlabel("bits per pixel (per polarisation)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
