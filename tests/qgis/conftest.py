"""QGIS fixtures: a headless QgsApplication with a fresh profile, and the packaged plugin installed in it.

The plugin is tested as users get it: the zip that scripts/package_qgis_plugin.sh makes with qgis-plugin-ci
is unzipped into the temporary profile's python/plugins folder and started with qgis.utils, as QGIS does.
Every test here is marked ``qgis``; they skip where QGIS's Python bindings are missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from qgis_env import PLUGIN, PROCESSING_PLUGINS, REPO_ROOT


@pytest.fixture(scope="session")
def plugin_zip(tmp_path_factory) -> Path:
    """The plugin zip made by qgis-plugin-ci (through scripts/package_qgis_plugin.sh)."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "package_qgis_plugin.sh"), str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


@pytest.fixture(scope="session")
def profile_dir(tmp_path_factory, plugin_zip) -> Path:
    """A fresh QGIS profile folder with the zip installed in python/plugins, as the Plugin Manager does."""
    profile = tmp_path_factory.mktemp("qgis-profile")
    plugins = profile / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(plugin_zip) as zf:
        zf.extractall(plugins)
    return profile


@pytest.fixture(scope="session")
def qgis_app(profile_dir):
    """One headless QgsApplication for the session, using ``profile_dir``, with Processing initialised."""
    pytest.importorskip("qgis.core", reason="QGIS's Python bindings (python3-qgis) are not installed")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication

    app = QgsApplication([], False, str(profile_dir))
    app.initQgis()
    if PROCESSING_PLUGINS not in sys.path:
        sys.path.append(PROCESSING_PLUGINS)
    from processing.core.Processing import Processing

    Processing.initialize()
    yield app
    # no exitQgis(): it tears down GDAL state that later tests in this process still use


@pytest.fixture(scope="session")
def plugin(qgis_app, profile_dir):
    """The installed plugin, started as QGIS starts a Processing plugin; unloaded at the end."""
    import qgis.utils

    plugins_dir = str(profile_dir / "python" / "plugins")
    sys.path.insert(0, plugins_dir)
    qgis.utils.plugin_paths = [plugins_dir]
    qgis.utils.updateAvailablePlugins()
    assert PLUGIN in qgis.utils.available_plugins
    assert qgis.utils.loadPlugin(PLUGIN)
    assert qgis.utils.startProcessingPlugin(PLUGIN)
    yield qgis.utils.plugins[PLUGIN]
    qgis.utils.unloadPlugin(PLUGIN)
    sys.path.remove(plugins_dir)


@pytest.fixture(scope="session")
def run(plugin):
    """``processing.run`` for this provider's algorithms: ``run("compress", {...}, feedback=...)``."""
    import processing

    def _run(name: str, parameters: dict, feedback=None) -> dict:
        return processing.run(f"sarcodec:{name}", parameters, feedback=feedback)

    return _run


@pytest.fixture(scope="session")
def sample_grd(tmp_path_factory) -> Path:
    """The built-in synthetic scene, 256 px, as a GRD measurement file: uint16 amplitude, GCPs in EPSG:4326."""
    from sar_codec.sample import write_sample

    return write_sample(tmp_path_factory.mktemp("sample") / "grd.tif", "grd", 256)


@pytest.fixture(scope="session")
def sample_pols(tmp_path_factory) -> tuple[Path, Path]:
    """VV and VH of the synthetic scene (sigma0 dB, UTM) as two single-polarisation files."""
    import rasterio

    from sar_codec.sample import write_sample

    folder = tmp_path_factory.mktemp("pols")
    both = write_sample(folder / "both.tif", "db", 256)
    paths = []
    with rasterio.open(both) as src:
        profile = {**src.profile, "count": 1}
        for band, pol in ((1, "VV"), (2, "VH")):
            path = folder / f"{pol}.tif"
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(src.read(band), 1)
                dst.set_band_description(1, pol)
            paths.append(path)
    return paths[0], paths[1]


@pytest.fixture(scope="session")
def real_chip(shared_data) -> Path:
    """One real Sen1Floods11 chip: 512x512 sigma0 dB, VV and VH, EPSG:4326 (skipped when absent)."""
    chips = sorted((shared_data / "sen1floods11-dualpol-db").glob("*.tif"))
    if not chips:
        pytest.skip("no Sen1Floods11 chips in ../shared/data/sen1floods11-dualpol-db")
    return chips[0]
