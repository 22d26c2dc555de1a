"""Telling a SAFE product from a raster, and finding its measurement files: the one place that knows what a
SAFE product looks like on disk (a ``*.SAFE`` folder, its ``manifest.safe``, or a ``.zip``).

:mod:`sar_codec.scene` opens the measurements it finds as the scene; :mod:`sar_codec.safe` stores the product's
other files in a container and writes the product back; :mod:`sar_codec.archive` finds products in an archive.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from .errors import InputError
from .scene_info import POL_ORDER, POL_RE

MANIFEST = "manifest.safe"
MEASUREMENT_RE = re.compile(r"(^|/)measurement/[^/]+\.tiff?$", re.IGNORECASE)


def is_safe_dir(path: str | Path) -> bool:
    """Whether a directory is a SAFE product: named ``*.SAFE`` or holding a ``manifest.safe``."""
    p = Path(path)
    return p.name.lower().endswith(".safe") or (p / MANIFEST).is_file()


def is_safe_input(path: str | Path) -> bool:
    """Whether an input names a SAFE product: its ``manifest.safe``, a directory or a ``.zip``."""
    p = Path(path)
    if p.name.lower() == MANIFEST:
        return True
    if p.is_dir():
        return True  # a directory can only be a SAFE product; measurement_files says if it is not
    return p.suffix.lower() == ".zip"


def safe_root(path: str | Path) -> Path:
    """The product itself (its folder or ``.zip``) for a path that may name its ``manifest.safe``."""
    p = Path(path)
    return p.parent if p.name.lower() == MANIFEST else p


def zip_names(archive: Path) -> list[str]:
    """The member names of a SAFE ``.zip``, or InputError when it is not a readable zip file."""
    try:
        with zipfile.ZipFile(archive) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{archive} is not a readable zip file; give a SAFE .zip or its unzipped "
                         "directory.") from exc


def measurement_files(path: str | Path) -> list[tuple[str, str]]:
    """GDAL paths and polarisations of a SAFE product's measurement files, VV before VH."""
    p = safe_root(path)
    if not p.exists():
        raise InputError(f"{p} does not exist; check the path.")
    if p.is_dir():
        members = [str(f) for f in sorted((p / "measurement").glob("*.tif*"))]
    else:
        names = sorted(n for n in zip_names(p) if MEASUREMENT_RE.search(n))
        members = [f"/vsizip/{p.resolve()}/{n}" for n in names]
    if not members:
        raise InputError(f"{p} has no measurement/*.tiff files; give a Sentinel-1 SAFE product "
                         "(GRD) or a raster file.")
    sources: list[tuple[str, str]] = []
    for m in members:
        match = POL_RE.search(Path(m).name)
        if match is None:
            raise InputError(f"Cannot tell the polarisation of {Path(m).name} from its name; give "
                             "the measurement files directly instead.")
        sources.append((m, match.group(1).upper()))
    sources.sort(key=lambda s: POL_ORDER.index(s[1]))
    pols = [pol for _, pol in sources]
    if len(set(pols)) != len(pols):
        raise InputError(f"{p} has several measurement files per polarisation (an SLC product?); "
                         "only GRD products are supported.")
    return sources
