"""Make the sar_codec library importable in QGIS's Python, or say how to install it.

QGIS runs its own Python (on Debian, /usr/bin/python3) and loads its own GDAL. sar_codec and torch live in
a virtual environment made with ``--system-site-packages`` on that same Python, with rasterio built against
the same libgdal (``make setup`` in the sar-codec repository). The plugin puts that environment's
site-packages first on ``sys.path``, as the Makefile's ``check-gdal`` does. It finds the folder in, first,
the environment variable ``SAR_CODEC_SITE_PACKAGES`` (several folders separated by ``os.pathsep``), then
the QGIS setting ``sar_codec/site_packages`` (Settings > Options > Advanced). Without either, sar_codec
must already be importable.
"""

from __future__ import annotations

import importlib
import os
import site
import sys
from types import ModuleType

ENV_VAR = "SAR_CODEC_SITE_PACKAGES"
SETTINGS_KEY = "sar_codec/site_packages"

INSTALL_HELP = (
    "Install sar-codec with `make setup` in its repository, then point QGIS at the environment: set "
    f"{ENV_VAR} (or the QGIS setting {SETTINGS_KEY} under Settings > Options > Advanced) to its "
    "site-packages folder, e.g. /path/to/sar-codec/.venv/lib/python3.11/site-packages, and restart QGIS."
)


class MissingLibraryError(ImportError):
    """sar_codec (or torch, which it needs) cannot be imported in this QGIS."""


def configured_site_packages() -> list[str]:
    """The folders named by the environment variable, then by the QGIS setting."""
    folders = [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    try:
        from qgis.core import QgsSettings

        value = QgsSettings().value(SETTINGS_KEY, "")
    except ImportError:  # outside QGIS
        value = ""
    if isinstance(value, str):
        folders += [p for p in value.split(os.pathsep) if p]
    return folders


def add_site_packages(folders: list[str]) -> list[str]:
    """Put each existing folder at the front of ``sys.path``, running its ``.pth`` files (editable installs).

    Returns the folders that did not exist.
    """
    missing = [f for f in folders if not os.path.isdir(f)]
    for folder in reversed([f for f in folders if os.path.isdir(f)]):
        folder = os.path.abspath(folder)
        before = list(sys.path)
        site.addsitedir(folder)  # appends the folder and what its .pth files name
        added = [p for p in sys.path if p not in before] or [folder]
        sys.path[:] = added + [p for p in sys.path if p not in added]
    importlib.invalidate_caches()
    return missing


def keep_triton_out() -> None:
    """Hide triton from this process. torch imports it only to ask whether it is there (sar_codec never compiles
    kernels), and in the QGIS desktop its bundled LLVM crashes while loading beside Mesa's (llvmpipe): QGIS died
    on signal 11 in libtriton.so's static initialisers the first time a container was decoded."""
    if "triton" not in sys.modules:
        sys.modules["triton"] = None  # ``import triton`` now raises ImportError, which torch handles


def _import(name: str, *, with_torch: bool) -> ModuleType:
    keep_triton_out()
    missing = add_site_packages(configured_site_packages())
    try:
        if with_torch:
            import torch  # noqa: F401 (imported here so that a missing torch is reported now, by name)
        return importlib.import_module(name)
    except ImportError as exc:
        where = f" ({', '.join(missing)} does not exist)" if missing else ""
        raise MissingLibraryError(f"The sar_codec library or torch cannot be imported in QGIS's Python "
                                  f"[{exc}]{where}. {INSTALL_HELP}") from exc


def load_library() -> ModuleType:
    """``sar_codec.codec``, with torch checked; MissingLibraryError says how to fix a missing one."""
    return _import("sar_codec.codec", with_torch=True)


def library_module(name: str) -> ModuleType:
    """A light submodule of sar_codec (``errors``, ``registry``...) without importing torch."""
    return _import(f"sar_codec.{name}", with_torch=False)
