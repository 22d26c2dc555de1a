#!/usr/bin/env bash
# Screenshot of the QGIS desktop with the SAR codec provider open in the Processing Toolbox.
#
#   scripts/screenshot_toolbox.sh [OUT.png]      (default: docs/qgis-toolbox.png; needs make setup first)
#
# Starts the real QGIS (Debian's /usr/bin/qgis) in Xvfb with a throwaway profile in which the plugin zip
# from scripts/package_qgis_plugin.sh is installed and enabled, loads the synthetic sample scene, expands
# the provider in the toolbox, grabs the main window and quits.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$repo/docs/qgis-toolbox.png}")
python=$repo/.venv/bin/python
[ -x "$python" ] || { echo "no $python: run make setup first" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
zip=$("$repo/scripts/package_qgis_plugin.sh" "$work/dist")
profile=$work/profiles/profiles/default
mkdir -p "$profile/python/plugins" "$profile/QGIS" "$(dirname "$out")"
"$python" -m zipfile -e "$zip" "$profile/python/plugins"
cat > "$profile/QGIS/QGIS3.ini" <<'EOF'
[PythonPlugins]
processing=true
sar_codec_qgis=true

[qgis]
showTips322=false
checkVersion=false
EOF
"$repo/.venv/bin/sar-codec" sample --kind grd --size 512 "$work/sample.tif" > /dev/null

cat > "$work/grab.py" <<'EOF'
import os

from qgis.core import (QgsContrastEnhancement, QgsProject, QgsRasterLayer, QgsRasterMinMaxOrigin,
                       QgsSingleBandGrayRenderer)
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtWidgets import QDockWidget
from qgis.utils import iface


def expand_provider():
    window = iface.mainWindow()
    window.resize(1280, 800)
    layer = QgsRasterLayer(os.environ["SHOT_LAYER"], "sample (synthetic GRD)", "gdal")
    renderer = QgsSingleBandGrayRenderer(layer.dataProvider(), 1)  # VV, stretched like a SAR quicklook
    layer.setRenderer(renderer)
    layer.setContrastEnhancement(QgsContrastEnhancement.StretchToMinimumMaximum, QgsRasterMinMaxOrigin.CumulativeCut)
    QgsProject.instance().addMapLayer(layer)
    iface.mapCanvas().setExtent(layer.extent())
    dock = window.findChild(QDockWidget, "ProcessingToolbox")
    dock.show()
    dock.raise_()
    tree = dock.algorithmTree
    model = tree.model()
    for row in range(model.rowCount()):
        index = model.index(row, 0)
        if model.data(index, Qt.DisplayRole) == "SAR codec":
            tree.expand(index)
            for child in range(model.rowCount(index)):
                if model.data(model.index(child, 0, index), Qt.DisplayRole) == "Compress scene":
                    tree.setCurrentIndex(model.index(child, 0, index))
    QTimer.singleShot(3000, grab)


def grab():
    iface.mainWindow().grab().save(os.environ["SHOT_OUT"])
    QgsProject.instance().setDirty(False)
    os._exit(0 if os.path.exists(os.environ["SHOT_OUT"]) else 1)


QTimer.singleShot(4000, expand_provider)
QTimer.singleShot(120000, lambda: os._exit(2))  # never hang
EOF

SAR_CODEC_SITE_PACKAGES=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
SHOT_OUT=$out SHOT_LAYER=$work/sample.tif QT_QPA_PLATFORM=xcb \
  xvfb-run -a -s "-screen 0 1280x800x24" \
  qgis --nologo --noversioncheck --profiles-path "$work/profiles" --code "$work/grab.py" \
  > "$work/qgis.log" 2>&1 || { tail -20 "$work/qgis.log" >&2; exit 1; }
echo "$out"
