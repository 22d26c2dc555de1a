"""Writing files atomically, and telling whether two paths (GDAL ``/vsi`` paths included) are one file.

Every writer of sar_codec builds its output under a temporary name beside it and renames it onto the
destination only when complete, so readers never see half a file. Temporary names say whose they are,
``.NAME.HOST-PID-TOKEN.KIND.SUFFIX``: a later writer of the same output removes the ones whose process is
gone (same host, no such process) or that nothing has touched for ``STALE_AFTER_S`` (another host), so a
killed run leaves no debris for long. Files are created with the permissions any new file gets under
the umask.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STALE_AFTER_S = 24 * 3600.0  # a temporary file of another host untouched this long is debris


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname()) or "host"


def temp_path(path: str | os.PathLike, kind: str = "part") -> Path:
    """A fresh temporary name beside ``path``, ending in its suffix (format-by-extension writers work)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{_host()}-{os.getpid()}-{secrets.token_hex(6)}.{kind}{path.suffix}")


def _temp_pattern(name_regex: str) -> re.Pattern:
    """What :func:`temp_path` makes for a name matching ``name_regex`` (and GDAL's ``.aux.xml`` beside it), and
    what sar-codec 0.1's writers made (``.NAME.XXXXXXXX.tmp``, ``.NAME.HEX.part.tif``: no host, no process)."""
    return re.compile(rf"\.(?:{name_regex})\.(?:(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[0-9a-f]{{12}}\.[a-z]+"
                      r"(?:\.[^./]+)?|[a-z0-9_]{8}\.tmp|[0-9a-f]{12}\.(?:part|cog)\.tif)(?:\.aux\.xml)?")


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists but belongs to someone else
        return False
    return False


def _is_stale(match: re.Match, path: Path) -> bool:
    """Its writer is gone (this host) or it was not touched for ``STALE_AFTER_S`` (another host, or an old name)."""
    if match["host"] == _host():
        return _process_gone(int(match["pid"]))
    try:
        return time.time() - path.stat().st_mtime > STALE_AFTER_S
    except OSError:
        return False


def remove_stale_temps(path: str | os.PathLike, *, any_name: bool = False) -> list[Path]:
    """Remove the temporary files that killed writers of ``path`` left beside it (with ``any_name``: of any
    output in ``path``, a directory); return them. Files of live writers are left alone."""
    path = Path(path)
    folder = path if any_name else path.parent
    pattern = _temp_pattern(".+" if any_name else re.escape(path.name))
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        match = pattern.fullmatch(p.name)
        if match and _is_stale(match, p):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


def fsync_directory(directory: str | os.PathLike) -> None:
    """Make a rename in ``directory`` durable where the platform allows it (POSIX); best effort elsewhere."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Make a finished temporary file durable and rename it onto ``path``."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_directory(Path(path).resolve().parent)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; published onto ``path`` when the block succeeds and
    removed when it fails (or when what wrote it was killed: see :func:`remove_stale_temps`)."""
    path = Path(path)
    remove_stale_temps(path)
    tmp = temp_path(path)
    try:
        yield tmp
        publish(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """``Path(path).write_text(text)``, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# --- which file a path names ----------------------------------------------------------------------

_ARCHIVE_VSI = ("/vsizip/", "/vsitar/", "/vsigzip/", "/vsi7z/", "/vsirar/")


def local_file(path: str | os.PathLike) -> Path | None:
    """The local file a path reads: itself, or the archive of a GDAL ``/vsizip/``-style path; None for a
    remote or in-memory ``/vsi`` path."""
    text = os.fspath(path)
    if not text.startswith("/vsi"):
        return Path(text)
    for prefix in _ARCHIVE_VSI:
        if text.startswith(prefix):
            inner = text[len(prefix):]
            if inner.startswith("{"):  # /vsizip/{archive}/member
                inner = inner[1:].split("}", 1)[0]
            candidate = Path(inner)
            for p in (candidate, *candidate.parents):  # the archive is the longest prefix that is a file
                if p.is_file():
                    return p
            return local_file(inner) if inner.startswith("/vsi") else candidate
    return None


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths (GDAL ``/vsizip/`` paths resolved to their archive) name one file."""
    if os.fspath(a) == os.fspath(b):
        return True
    fa, fb = local_file(a), local_file(b)
    if fa is None or fb is None:
        return False
    try:
        if fa.exists() and fb.exists():
            return os.path.samefile(fa, fb)
    except OSError:
        pass
    return fa.resolve() == fb.resolve()
