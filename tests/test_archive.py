"""A batch's archive: scenes found in a directory or a list file, and output names that never collide."""

from __future__ import annotations

from pathlib import Path

import pytest

from sar_codec.archive import find_scenes, plan_outputs


def test_find_scenes_in_a_directory_and_a_list(tmp_path, safe_dir):
    root = safe_dir.parent
    (root / "deep" / "er").mkdir(parents=True)
    for name in ("deep/er/x.TIFF", "y.tif", "S1A_IW_GRDH_1SDV_X.zip", ".hidden.tif", "readme.txt"):
        (root / name).write_bytes(b"")
    scenes, base = find_scenes(root)
    names = sorted(Path(s[0]).name for s in scenes)
    assert names == sorted(["x.TIFF", "y.tif", "S1A_IW_GRDH_1SDV_X.zip", safe_dir.name])  # SAFE not entered
    assert base == root.resolve()

    listing = tmp_path / "list.txt"
    listing.write_text("# VV and VH of one scene, then one file\n a_vv.tif , a_vh.tif\n\n/abs/b.tif\n/abs/b.tif\n")
    scenes, base = find_scenes(listing)
    assert scenes == [(str(tmp_path / "a_vv.tif"), str(tmp_path / "a_vh.tif")), ("/abs/b.tif",)]
    listing.write_text("a.tif,b.tif,c.tif\n")
    with pytest.raises(ValueError, match="Line 1"):
        find_scenes(listing)


def test_output_names_collide_never_and_stay_stable(tmp_path):
    scenes = [(str(tmp_path / "a" / "s.tif"),), (str(tmp_path / "b" / "s.tif"),), (str(tmp_path / "t.SAFE.zip"),),
              (str(tmp_path / "S.tiff"),)]
    jobs = plan_outputs(scenes, tmp_path)
    names = [j.output for j in jobs]
    assert names[2] == "t.sarc"
    assert len({n.casefold() for n in names}) == 4 and all(n.startswith(("s-", "S-")) for n in names[:2] + names[3:])
    # a later run over a subset keeps the recorded names, and a new scene does not take a recorded one
    previous = {j.key: {"input": j.key, "output": j.output} for j in jobs}
    again = plan_outputs(scenes[:1] + [(str(tmp_path / "c" / "t.tif"),)], tmp_path, previous)
    assert again[0].output == names[0] and again[1].output not in names
