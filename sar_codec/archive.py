"""An archive of scenes for a batch: finding its scenes (a directory, a list file or one scene) and giving each
an output name that never collides and stays stable from run to run."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

OUTPUT_SUFFIX = ".sarc"
SCENE_SUFFIXES = (".tif", ".tiff", ".zip")


@dataclass(frozen=True)
class SceneJob:
    """One scene of the archive: its input file(s), absolute, and its output's file name in ``OUT_DIR``."""

    inputs: tuple[str, ...]
    output: str

    @property
    def key(self) -> str:
        """The manifest key: the input paths joined by a comma, as in a list file."""
        return ",".join(self.inputs)


def input_bytes(inputs: Sequence[str]) -> int:
    """Bytes of a scene's input files (all files of a SAFE folder); what cannot be read counts 0."""
    total = 0
    for p in inputs:
        with contextlib.suppress(OSError):
            if os.path.isdir(p):
                total += sum(f.stat().st_size for f in Path(p).rglob("*") if f.is_file())
            else:
                total += os.path.getsize(p)
    return total


# --- finding scenes -------------------------------------------------------------------------------


def _scan(top: Path) -> list[tuple[str, ...]]:
    """Scenes under ``top``: rasters (*.tif, *.tiff), SAFE directories and zips; hidden names skipped."""
    from .safe_discovery import is_safe_dir  # rasterio, only when needed

    found: list[tuple[str, ...]] = []
    for root, dirs, files in os.walk(top):
        here = Path(root)
        keep = []
        for d in sorted(dirs):
            if d.startswith("."):
                continue
            if is_safe_dir(here / d):
                found.append((str(here / d),))
            else:
                keep.append(d)
        dirs[:] = keep
        found.extend((str(here / f),) for f in sorted(files)
                     if not f.startswith(".") and f.lower().endswith(SCENE_SUFFIXES))
    return found


def _read_list(path: Path) -> list[tuple[str, ...]]:
    """Scenes of a list file: one per line, ``A`` or ``VV,VH``; blank lines and ``#`` comments skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path} is neither a directory nor a text file listing scenes; give one of "
                         "those.") from None
    base = path.parent.resolve()
    scenes = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) > 2 or not all(parts):
            raise InputError(f"Line {n} of {path} does not hold one path or two comma-separated paths "
                             "(VV,VH); fix that line.")
        scenes.append(tuple(str(base / p) for p in parts))
    return scenes


def find_scenes(source: str | os.PathLike) -> tuple[list[tuple[str, ...]], Path]:
    """The scenes of a directory (searched recursively), a list file, or one scene; and the folder they are
    relative to."""
    from .safe_discovery import MANIFEST, is_safe_dir

    p = Path(source)
    if not p.exists():
        raise InputError(f"{p} does not exist; give a directory of scenes or a text file listing them.")
    if p.is_dir():
        if is_safe_dir(p):
            return [(str(p.resolve()),)], p.resolve().parent
        return _scan(p.resolve()), p.resolve()
    if p.name.lower().endswith(SCENE_SUFFIXES) or p.name.lower() == MANIFEST:
        return [(str(p.resolve()),)], p.resolve().parent
    scenes = _read_list(p)
    unique = list(dict.fromkeys(scenes))  # a scene listed twice is done once
    return unique, p.parent.resolve()


# --- naming outputs -------------------------------------------------------------------------------


def _stem(path: str) -> str:
    from .safe_discovery import safe_root

    name = safe_root(path).name
    for suffix in (".zip", ".safe", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or "scene"


def plan_outputs(scenes: Sequence[tuple[str, ...]], base: Path, previous: dict[str, dict] | None = None
                 ) -> list[SceneJob]:
    """Give each scene its output name: ``<stem>.sarc``, or ``<stem>-<hash>.sarc`` where stems collide.

    A scene keeps the name an earlier run recorded for it in ``previous`` (the manifest rows by input), so
    names stay stable when the archive grows; the hash is of the input's path relative to ``base``.
    """
    previous = previous or {}
    keys = [",".join(s) for s in scenes]
    stems = [_stem(s[0]) for s in scenes]
    stem_count: dict[str, int] = {}
    for s in stems:
        stem_count[s.casefold()] = stem_count.get(s.casefold(), 0) + 1
    taken: dict[str, str] = {}  # casefolded name -> key
    for key in keys:  # names recorded by earlier runs for scenes of this run come first
        name = (previous.get(key) or {}).get("output")
        if name and name.casefold() not in taken:
            taken[name.casefold()] = key
    others = {r["output"].casefold() for k, r in previous.items() if r.get("output") and k not in keys}
    names = {}
    for key, stem in zip(keys, stems):
        name = (previous.get(key) or {}).get("output")
        if name and taken.get(name.casefold()) == key:
            names[key] = name
            continue
        name = stem + OUTPUT_SUFFIX
        rel = ",".join(os.path.relpath(p, base) for p in key.split(","))
        digest = hashlib.sha1(rel.encode("utf-8")).hexdigest()
        width = 8
        while stem_count[stem.casefold()] > 1 or name.casefold() in taken or name.casefold() in others:
            name = f"{stem}-{digest[:width]}{OUTPUT_SUFFIX}"
            if name.casefold() not in taken and name.casefold() not in others:
                break
            width += 4
        taken[name.casefold()] = key
        names[key] = name
    return [SceneJob(tuple(s), names[k]) for s, k in zip(scenes, keys)]
