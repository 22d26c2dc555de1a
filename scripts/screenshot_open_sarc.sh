#!/usr/bin/env bash
# Screenshot of the QGIS desktop showing a real Sentinel-1 scene read in place from a .sarc container.
#
#   scripts/screenshot_open_sarc.sh [OUT.png] [SCENE.sarc]   (default: docs/qgis-open-sarc.png; needs make setup)
#
# Without SCENE.sarc, compresses the real IW GRDH pair in ../shared/data/grd-uint16-gcps (VV + VH, uint16
# amplitude, 210 GCPs; decimated to 1280 x 837) at the default quality. Then starts the real QGIS (Debian's
# /usr/bin/qgis) in Xvfb with a throwaway profile holding the packaged plugin, runs "Open container as layer"
# (sarcodec:open), shows VV in grey with a 2-98 % stretch, waits for the map to render, grabs the main window
# and quits.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$repo/docs/qgis-open-sarc.png}")
python=${SAR_CODEC_PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || { echo "no $python: run make setup first" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "${2:-}" ]; then
  sarc=$(realpath "$2")
else
  data=$repo/../shared/data/grd-uint16-gcps
  [ -f "$data/S1A_IW_GRDH_20180716T004042_iw-vv.tiff" ] || { echo "no real scene in $data; give a .sarc" >&2; exit 1; }
  sarc=$work/S1A_IW_GRDH_20180716T004042.sarc
  "$python" -m sar_codec_cli.main compress -q "$data/S1A_IW_GRDH_20180716T004042_iw-vv.tiff" \
    "$data/S1A_IW_GRDH_20180716T004042_iw-vh.tiff" -o "$sarc" > /dev/null
fi
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

cat > "$work/grab.py" <<'EOF'
import os

import processing
from qgis.core import (QgsContrastEnhancement, QgsProject, QgsRasterMinMaxOrigin, QgsSingleBandGrayRenderer)
from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface


def open_container():
    try:
        show_layer()
    except Exception:
        import traceback

        traceback.print_exc()
        os._exit(3)


def show_layer():
    window = iface.mainWindow()
    window.resize(1280, 800)
    vrt = processing.run("sarcodec:open", {"INPUT": os.environ["SHOT_SARC"],
                                           "OUTPUT": os.environ["SHOT_VRT"]})["OUTPUT"]
    layer = iface.addRasterLayer(vrt, os.path.basename(os.environ["SHOT_SARC"]) + " (read in place)")
    layer.setRenderer(QgsSingleBandGrayRenderer(layer.dataProvider(), 1))  # VV
    layer.setContrastEnhancement(QgsContrastEnhancement.StretchToMinimumMaximum,
                                 QgsRasterMinMaxOrigin.CumulativeCut)
    canvas = iface.mapCanvas()
    canvas.mapCanvasRefreshed.connect(lambda: QTimer.singleShot(2000, grab))
    canvas.setExtent(layer.extent())
    canvas.refresh()


def grab():
    iface.mainWindow().grab().save(os.environ["SHOT_OUT"])
    QgsProject.instance().setDirty(False)
    os._exit(0 if os.path.exists(os.environ["SHOT_OUT"]) else 1)


QTimer.singleShot(4000, open_container)
QTimer.singleShot(900000, lambda: os._exit(2))  # never hang
EOF

SAR_CODEC_SITE_PACKAGES=${SAR_CODEC_SITE_PACKAGES:-$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')} \
SHOT_OUT=$out SHOT_SARC=$sarc SHOT_VRT=$work/scene.vrt QT_QPA_PLATFORM=xcb \
  xvfb-run -a -s "-screen 0 1280x800x24" \
  qgis --nologo --noversioncheck --profiles-path "$work/profiles" --code "$work/grab.py" \
  > "$work/qgis.log" 2>&1 || { cp "$work/qgis.log" "${SHOT_LOG:-/dev/null}" || true; tail -40 "$work/qgis.log" >&2; exit 1; }
echo "$out"
