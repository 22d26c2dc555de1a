"""The packaged plugin: zip layout and metadata, provider registration, and loading inside QGIS's own Python."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest
from qgis_env import PLUGIN, PROCESSING_PLUGINS, REPO_ROOT

import sar_codec

pytestmark = pytest.mark.qgis

ALGORITHMS = {"compress", "decompress", "compare", "open"}
QGIS_PYTHON = "/usr/bin/python3"  # the interpreter QGIS embeds on Debian


def test_zip_holds_the_plugin_package_with_its_version_stamped(plugin_zip):
    with zipfile.ZipFile(plugin_zip) as zf:
        names = zf.namelist()
        meta = configparser.ConfigParser()
        meta.read_string(zf.read(f"{PLUGIN}/metadata.txt").decode())
    assert plugin_zip.name == f"{PLUGIN}.{sar_codec.__version__}.zip"
    assert {n.split("/")[0] for n in names} == {PLUGIN}
    for module in ("__init__", "plugin", "provider", "compress_algorithm", "decompress_algorithm",
                   "compare_algorithm", "open_algorithm"):
        assert f"{PLUGIN}/{module}.py" in names
    assert not [n for n in names if "__pycache__" in n]
    general = meta["general"]
    assert general["version"] == sar_codec.__version__
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["category"] == "Raster"
    assert general["hasProcessingProvider"] == "yes"
    for key in ("name", "description", "about", "author", "email", "repository"):
        assert general[key].strip(), key
    assert f"{PLUGIN}/{general['icon']}" in names


def test_root_metadata_is_the_plugin_metadata():
    assert (REPO_ROOT / "metadata.txt").resolve() == REPO_ROOT / "qgis_plugin" / PLUGIN / "metadata.txt"


def test_provider_registers_its_algorithms(plugin):
    from qgis.core import QgsApplication

    provider = QgsApplication.processingRegistry().providerById("sarcodec")
    assert provider is not None and provider.name() == "SAR codec"
    assert {a.name() for a in provider.algorithms()} == ALGORITHMS
    assert not provider.icon().isNull()


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_algorithms_have_help_and_uppercase_parameters(plugin, name):
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById(f"sarcodec:{name}")
    assert alg.shortHelpString().strip()
    names = [p.name() for p in alg.parameterDefinitions()] + [o.name() for o in alg.outputDefinitions()]
    assert names and all(n == n.upper() for n in names), names
    assert {"INPUT", "OUTPUT"} <= set(names)


def test_quality_parameter_spans_the_installed_qualities(plugin):
    from qgis.core import QgsApplication

    from sar_codec.registry import quality_range

    quality = QgsApplication.processingRegistry().algorithmById("sarcodec:compress").parameterDefinition("QUALITY")
    assert (quality.minimum(), quality.maximum()) == quality_range()


def test_unload_removes_the_provider_and_start_adds_it_back(plugin):
    from qgis.core import QgsApplication

    registry = QgsApplication.processingRegistry()
    plugin.unload()
    assert registry.providerById("sarcodec") is None
    plugin.initProcessing()
    assert registry.providerById("sarcodec") is not None


# --- inside QGIS's own Python, as the QGIS desktop runs it -------------------------------------

STARTUP = textwrap.dedent("""
    import json, os, sys
    from qgis.core import QgsApplication, QgsProcessingException
    app = QgsApplication([], False, sys.argv[1])
    app.initQgis()
    sys.path.append({processing!r})
    from processing.core.Processing import Processing
    Processing.initialize()
    import processing, qgis.utils
    plugins = os.path.join(sys.argv[1], "python", "plugins")
    sys.path.insert(0, plugins)
    qgis.utils.plugin_paths = [plugins]
    qgis.utils.updateAvailablePlugins()
    started = qgis.utils.loadPlugin({plugin!r}) and qgis.utils.startProcessingPlugin({plugin!r})
    provider = QgsApplication.processingRegistry().providerById("sarcodec")
    out = {{"started": bool(started), "algorithms": len(provider.algorithms()) if provider else 0}}
    try:
        out["result"] = processing.run("sarcodec:compress", {{"INPUT": sys.argv[2], "QUALITY": 1,
                                                            "OUTPUT": sys.argv[3]}})
    except QgsProcessingException as exc:
        out["error"] = str(exc)
    try:
        import sar_codec  # importable by now only when the plugin found it
        out["sar_codec"] = sar_codec.__file__
    except ImportError:
        out["sar_codec"] = None
    print("RESULT " + json.dumps(out))
""").format(processing=PROCESSING_PLUGINS, plugin=PLUGIN)


def _run_in_qgis_python(profile_dir: Path, source: Path, output: Path, tmp_path: Path, site_packages: str | None):
    if not Path(QGIS_PYTHON).exists():
        pytest.skip(f"{QGIS_PYTHON} is missing")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "SAR_CODEC_SITE_PACKAGES")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    if site_packages:
        env["SAR_CODEC_SITE_PACKAGES"] = site_packages
    script = tmp_path / "startup.py"
    script.write_text(STARTUP)
    done = subprocess.run([QGIS_PYTHON, "-I", str(script), str(profile_dir), str(source),
                           str(output)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
                          check=False)
    if "No module named 'qgis'" in done.stderr:
        pytest.skip(f"{QGIS_PYTHON} has no QGIS bindings (python3-qgis)")
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    return done, (json.loads(lines[-1][7:]) if lines else None)


def _venv_site_packages() -> str:
    if sys.prefix == sys.base_prefix:
        pytest.skip("tests are not running in a virtual environment whose site-packages QGIS could use")
    return sysconfig.get_paths()["purelib"]


def test_qgis_python_uses_the_venv_named_by_the_environment_variable(profile_dir, sample_grd, tmp_path):
    site_packages = _venv_site_packages()
    output = tmp_path / "scene.sarc"
    done, out = _run_in_qgis_python(profile_dir, sample_grd, output, tmp_path, site_packages)
    assert out is not None, done.stderr[-3000:]
    assert out["started"] and out["algorithms"] == len(ALGORITHMS)
    assert "error" not in out, out["error"]
    assert out["result"]["OUTPUT"] == str(output) and output.stat().st_size > 0
    assert out["sar_codec"].startswith(str(REPO_ROOT))  # the editable install, found through the venv's .pth


def test_without_the_library_the_plugin_loads_and_says_how_to_install(profile_dir, sample_grd, tmp_path):
    output = tmp_path / "scene.sarc"
    done, out = _run_in_qgis_python(profile_dir, sample_grd, output, tmp_path, None)
    assert out is not None, done.stderr[-3000:]
    if out["sar_codec"] is not None:
        pytest.skip(f"sar_codec is importable in QGIS's Python without the plugin's help ({out['sar_codec']})")
    assert out["started"] and out["algorithms"] == len(ALGORITHMS)
    assert "SAR_CODEC_SITE_PACKAGES" in out["error"] and "make setup" in out["error"]
    assert not output.exists()


QGIS_PROCESS = "/usr/bin/qgis_process.bin"  # Debian 12's /usr/bin/qgis_process wrapper adds an option 3.22 rejects


def _qgis_process(profile_dir: Path, tmp_path: Path, site_packages: str | None, *args: str):
    """``qgis_process.bin`` as README documents it: the plugin enabled in a profile, the venv named or not."""
    if not Path(QGIS_PROCESS).exists():
        pytest.skip(f"{QGIS_PROCESS} is missing")
    profile = tmp_path / "config" / "profiles" / "default"
    (profile / "python" / "plugins").mkdir(parents=True)
    (profile / "python" / "plugins" / PLUGIN).symlink_to(profile_dir / "python" / "plugins" / PLUGIN)
    (profile / "QGIS").mkdir()
    (profile / "QGIS" / "QGIS3.ini").write_text(f"[PythonPlugins]\n{PLUGIN}=true\n")  # what enabling it writes
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "SAR_CODEC_SITE_PACKAGES")}
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "config"))
    if site_packages:
        env["SAR_CODEC_SITE_PACKAGES"] = site_packages
    return subprocess.run([QGIS_PROCESS, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240, check=False)


def test_qgis_process_runs_the_documented_line(profile_dir, sample_grd, tmp_path):
    site_packages = _venv_site_packages()
    output = tmp_path / "scene.sarc"
    done = _qgis_process(profile_dir, tmp_path, site_packages, "run", "sarcodec:compress", "--",
                         f"INPUT={sample_grd}", "QUALITY=1", "DEVICE=cpu", f"OUTPUT={output}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert output.stat().st_size > 0 and "QUALITY_USED:\t1" in done.stdout


def test_qgis_process_without_the_library_gives_the_install_message(profile_dir, sample_grd, tmp_path):
    done = _qgis_process(profile_dir, tmp_path, None, "run", "sarcodec:compress", "--",
                         f"INPUT={sample_grd}", "QUALITY=1", f"OUTPUT={tmp_path / 'scene.sarc'}")
    if "SAR_CODEC_SITE_PACKAGES" not in done.stdout + done.stderr and "not specified" not in done.stdout:
        pytest.skip("sar_codec is importable in QGIS's Python without the plugin's help")
    assert "MODEL" not in done.stdout + done.stderr and "make setup" in done.stdout + done.stderr
    assert not (tmp_path / "scene.sarc").exists()
