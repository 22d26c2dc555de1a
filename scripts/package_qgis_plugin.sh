#!/usr/bin/env bash
# Make the QGIS plugin zip with qgis-plugin-ci, at the version in sar_codec/_version.py.
#
#   scripts/package_qgis_plugin.sh [OUT_DIR]     -> OUT_DIR/sar_codec_qgis.VERSION.zip (default: dist/)
#
# qgis-plugin-ci edits metadata.txt in place and then resets the git work tree it runs in
# (`git checkout -- .`), so it never runs in this repository: the plugin's files as they are in the work
# tree (tracked and untracked, minus what .gitignore drops) are committed to a throwaway repository first.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$repo/dist}" && cd "${1:-$repo/dist}" && pwd)
qpc=${QGIS_PLUGIN_CI:-$repo/.venv/bin/qgis-plugin-ci}
[ -x "$qpc" ] || qpc=$(command -v qgis-plugin-ci) || {
  echo "qgis-plugin-ci is not installed: run make setup (it comes with the test extra)." >&2; exit 1; }
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$repo/sar_codec/_version.py")
[ -n "$version" ] || { echo "no __version__ in sar_codec/_version.py" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$repo"
git ls-files -z --cached --others --exclude-standard -- qgis_plugin/sar_codec_qgis .qgis-plugin-ci CHANGELOG.md LICENSE \
  | while IFS= read -r -d '' f; do [ -f "$f" ] && install -D -m 644 "$f" "$work/$f"; done
cd "$work"
git init -q
git add -A
git -c user.name=package -c user.email=package@localhost commit -q -m "sar_codec_qgis $version"
"$qpc" package "$version" >&2
mv "qgis_plugin/sar_codec_qgis.$version.zip" "$out/"
echo "$out/sar_codec_qgis.$version.zip"
