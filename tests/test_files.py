"""Atomic writes leave no debris for long, and /vsi paths are seen as the files they read."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile

import pytest

from sar_codec.files import atomic_path, local_file, remove_stale_temps, same_file, temp_path, write_text_atomic


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temp_files_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    out = tmp_path / "scene.sarc"
    live = temp_path(out)  # this process is alive
    dead = tmp_path / live.name.replace(f"-{os.getpid()}-", f"-{_dead_pid()}-")
    dead_aux = dead.with_name(dead.name + ".aux.xml")
    other_output = temp_path(tmp_path / "other.sarc").with_name(dead.name.replace("scene.sarc", "other.sarc"))
    for p in (live, dead, dead_aux, other_output):
        p.write_bytes(b"x")
    assert sorted(remove_stale_temps(out)) == sorted([dead, dead_aux])
    assert live.exists() and other_output.exists()
    assert remove_stale_temps(tmp_path, any_name=True) == [other_output]
    assert live.exists()


def test_old_style_temp_files_go_once_a_day_old(tmp_path):
    out = tmp_path / "scene.sarc"
    old, fresh = tmp_path / ".scene.sarc.k2j4_x9q.tmp", tmp_path / ".scene.sarc.0123456789ab.part.tif"
    for p in (old, fresh):
        p.write_bytes(b"x")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    assert remove_stale_temps(out) == [old] and fresh.exists()


def test_a_later_write_removes_what_a_killed_one_left(tmp_path):
    out = tmp_path / "report.json"
    code = ("import os, sys; from sar_codec.files import atomic_path\n"
            f"with atomic_path({str(out)!r}) as tmp:\n"
            "    tmp.write_text('half'); os._exit(9)\n")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    assert len(list(tmp_path.iterdir())) == 1  # the killed writer's temporary file
    write_text_atomic(out, "{}")
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_files_get_the_permissions_of_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "a")
        os.umask(0o002)
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"b")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o664


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.csv") as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_vsizip_paths_are_their_zip(tmp_path):
    archive = tmp_path / "S1.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("S1.SAFE/measurement/vv.tiff", b"x")
    member = f"/vsizip/{archive}/S1.SAFE/measurement/vv.tiff"
    assert local_file(member) == archive
    assert local_file(f"/vsizip/{{{archive}}}/S1.SAFE/measurement/vv.tiff") == archive
    assert same_file(tmp_path / "." / "S1.zip", member)
    assert not same_file(tmp_path / "S1.sarc", member)
    assert local_file("/vsicurl/https://example.com/a.tif") is None
    assert same_file("/vsimem/a.tif", "/vsimem/a.tif") and not same_file("/vsimem/a.tif", "/vsimem/b.tif")
