"""SAFE discovery: what counts as a SAFE product, and its measurement files found in a folder and in a zip."""

from __future__ import annotations

import shutil

import pytest

from sar_codec.errors import InputError
from sar_codec.safe_discovery import is_safe_dir, is_safe_input, measurement_files, safe_root


def test_what_counts_as_a_safe_product(safe_dir, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    renamed = tmp_path / "renamed"
    shutil.copytree(safe_dir, renamed)
    assert is_safe_dir(safe_dir) and is_safe_dir(renamed)  # by its name, or by its manifest
    assert not is_safe_dir(plain)
    for path in (safe_dir, safe_dir / "manifest.safe", tmp_path / "S1.ZIP", plain):
        assert is_safe_input(path), path
    assert not is_safe_input(tmp_path / "scene.tif")
    assert safe_root(safe_dir / "MANIFEST.SAFE") == safe_dir and safe_root(tmp_path / "a.tif") == tmp_path / "a.tif"


def test_measurements_come_vv_first_from_a_folder_and_its_zip(safe_dir, tmp_path):
    found = measurement_files(safe_dir / "manifest.safe")
    assert [pol for _, pol in found] == ["VV", "VH"]  # VH is listed first on disk
    assert all(path.startswith(str(safe_dir / "measurement")) for path, _ in found)
    archive = shutil.make_archive(str(tmp_path / "zipped"), "zip", safe_dir.parent, safe_dir.name)
    zipped = measurement_files(archive)
    assert [pol for _, pol in zipped] == ["VV", "VH"]
    assert all(path.startswith("/vsizip/") and path.endswith(p.rsplit("/", 1)[-1])
               for (path, _), (p, _) in zip(zipped, found))


def test_what_is_not_a_grd_product_says_so(safe_dir, tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable zip"):
        measurement_files(tmp_path / "bad.zip")
    vv = next((safe_dir / "measurement").glob("*-vv-*"))
    shutil.copy(vv, vv.with_name(vv.name.replace("-001", "-003")))  # a second VV file, as in an SLC product
    with pytest.raises(InputError, match="several measurement files per polarisation"):
        measurement_files(safe_dir)
    for f in (safe_dir / "measurement").iterdir():
        f.unlink()
    with pytest.raises(InputError, match="no measurement"):
        measurement_files(safe_dir)
