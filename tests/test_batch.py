"""Batch compression on dask.distributed: resuming after a killed worker or client, failures reported alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sar_codec.batch import compress_archive
from sar_codec.codec import verify_container
from sar_codec.errors import CancelledError, InputError
from sar_codec.files import temp_path
from sar_codec.manifest import MANIFEST_NAME, read_manifest
from sar_codec.registry import DEFAULT_ARCHITECTURE, file_sha256, lookup
from sar_codec.sample import write_sample
from sar_codec.verification import verify_against_input

distributed = pytest.importorskip("distributed")

CLI = [sys.executable, "-m", "sar_codec_cli.main", "batch"]


@pytest.fixture(scope="module")
def cluster():
    """Two single-thread worker processes on loopback, shared by the tests (their models stay loaded)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as c:
        yield c


def _archive(root: Path, n: int, size: int = 128) -> list[Path]:
    """``n`` generated scenes of both kinds, two of them with the same stem in different folders."""
    paths = []
    for i in range(n):
        folder = root / ("sub" if i == 1 else "")
        folder.mkdir(parents=True, exist_ok=True)
        name = "scene.tif" if i < 2 else f"scene{i}.tif"
        paths.append(write_sample(folder / name, "grd" if i % 2 == 0 else "db", size=size, seed=i))
    return paths


def _bad_scenes(root: Path, make_raster) -> None:
    (root / "notes.tif").write_text("not a raster\n")
    make_raster(root / "rgb.tif", np.ones((3, 96, 96), dtype="uint8"))


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _manifest_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]


def _assert_all_done(out: Path, ok_inputs: set[str], failed_inputs: set[str] = frozenset()) -> None:
    """Every scene listed once; each ok one present, matching its checksum and verifying; no temp files."""
    rows = _manifest_lines(out)
    assert sorted(r["input"] for r in rows) == sorted(ok_inputs | failed_inputs)
    for r in rows:
        if r["input"] in failed_inputs:
            assert r["status"] == "failed" and r["reason"]
            continue
        assert r["status"] == "ok", r
        path = out / r["output"]
        assert file_sha256(path) == r["sha256"]
        verify_container(path)
    assert not list(out.glob(".*"))  # no temporary file left
    assert len({r["output"] for r in rows}) == len(rows)


# --- the core ---------------------------------------------------------------------------------


def test_the_core_imports_neither_click_nor_dask():
    code = "import sys, sar_codec.batch; sys.exit(any(m in sys.modules for m in ('click', 'distributed', 'dask')))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- runs on a local cluster -------------------------------------------------------------------


def test_batch_verifies_reports_failures_and_resumes(tmp_path, cluster, make_raster):
    scenes = _archive(tmp_path / "in", 3)
    _bad_scenes(tmp_path / "in", make_raster)
    out = tmp_path / "out"
    seen = []
    report = compress_archive(tmp_path / "in", out, scheduler=cluster.scheduler_address, quality=1, verify=True,
                              progress=seen.append)
    assert (report.ok, report.failed, report.skipped) == (3, 2, 0)
    assert [p.done for p in seen] == [1, 2, 3, 4, 5] and seen[-1].total == 5 and seen[-1].eta_s == 0
    reasons = {Path(r["input"]).name: r["reason"] for r in report.failed_rows}
    assert "not a raster" in reasons["notes.tif"] and "band" in reasons["rgb.tif"]
    assert all("\n" not in r for r in reasons.values())
    for r in report.rows:
        if r["status"] == "ok":
            assert 5 < r["psnr"] < 100 and r["bpp"] > 0 and r["ratio"] > 1
    names = sorted(r["output"] for r in report.rows if r["status"] == "ok")
    assert names[-1] == "scene2.sarc" and all(n.startswith("scene-") for n in names[:2])  # stems collided
    ok_inputs = {str(p.resolve()) for p in scenes}
    failed_inputs = {str((tmp_path / "in" / n).resolve()) for n in ("notes.tif", "rgb.tif")}
    _assert_all_done(out, ok_inputs, failed_inputs)

    # damage: one output gone, one corrupted, a stray temp file of a killed writer
    by_input = {r["input"]: r for r in report.rows}
    gone, bad = (out / by_input[str(p.resolve())]["output"] for p in scenes[:2])
    gone.unlink()
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stray = temp_path(out / "scene2.sarc")  # what a killed writer left
    stray.with_name(stray.name.replace(f"-{os.getpid()}-", f"-{dead.pid}-")).write_bytes(b"half")
    again = compress_archive(tmp_path / "in", out, scheduler=cluster.scheduler_address, quality=1, verify=True)
    assert (again.ok, again.failed, again.skipped) == (3, 2, 1)
    _assert_all_done(out, ok_inputs, failed_inputs)
    assert verify_against_input([str(scenes[0])], gone) > 5


def test_a_killed_worker_loses_no_scene(tmp_path, cluster):
    scenes = _archive(tmp_path / "in", 6)
    out = tmp_path / "out"
    killed = []
    with distributed.Client(cluster) as client:
        def kill_a_busy_worker(progress):
            if killed:
                return
            busy = [w for w, keys in client.processing().items() if keys]
            pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(progress.done)

        report = compress_archive(tmp_path / "in", out, scheduler=cluster.scheduler_address, quality=1,
                                  progress=kill_a_busy_worker)
    assert killed and killed[0] < len(scenes)
    assert report.ok == len(scenes), report.failed_rows  # the lost task ran again on a live worker
    again = compress_archive(tmp_path / "in", out, scheduler=cluster.scheduler_address, quality=1)
    assert again.skipped == len(scenes)
    _assert_all_done(out, {str(p.resolve()) for p in scenes})


def test_cancelling_stops_after_the_current_scene_and_keeps_it(tmp_path, cluster):
    scenes = _archive(tmp_path / "in", 3)
    with pytest.raises(CancelledError, match="re-run"):
        compress_archive(tmp_path / "in", tmp_path / "out", scheduler=cluster.scheduler_address, workers=None,
                         quality=1, cancelled=lambda: True)
    assert len(_manifest_lines(tmp_path / "out")) == 1
    report = compress_archive(tmp_path / "in", tmp_path / "out", scheduler=cluster.scheduler_address, quality=1)
    assert (report.ok, report.skipped) == (3, 1)
    _assert_all_done(tmp_path / "out", {str(p.resolve()) for p in scenes})


def test_reproducible_batch_matches_compress_scene(tmp_path, cluster):
    from sar_codec.codec import compress_scene

    scenes = _archive(tmp_path / "in", 1)
    report = compress_archive(tmp_path / "in", tmp_path / "out", scheduler=cluster.scheduler_address, quality=1,
                              reproducible=True)
    assert report.ok == 1 and report.rows[0]["reproducible"] is True
    out = tmp_path / "out" / report.rows[0]["output"]
    ref = compress_scene(scenes[0], tmp_path / "ref.sarc", quality=1, device="cpu", reproducible=True).output
    assert out.read_bytes() == ref.read_bytes()


def test_an_archive_in_db_codes_each_scene_at_its_own_quality_and_reruns_by_what_was_asked(tmp_path, cluster):
    from sar_codec.rate_control import db_quality
    from sar_codec.scene_container import open_container

    _archive(tmp_path / "in", 2)
    args = dict(scheduler=cluster.scheduler_address, quality=4)
    report = compress_archive(tmp_path / "in", tmp_path / "out", allocation="db", **args)
    assert report.ok == 2
    for row in report.rows:
        opened = open_container(tmp_path / "out" / row["output"])
        expected = db_quality(lookup(DEFAULT_ARCHITECTURE, 4), opened.mappings).quality
        opened.container.close()
        assert (row["allocation"], row["asked_quality"], row["quality"]) == ("db", 4, expected)
    assert {r["quality"] for r in report.rows} != {4}  # these scenes span far more dB per unit than the reference
    again = compress_archive(tmp_path / "in", tmp_path / "out", allocation="db", **args)
    assert again.skipped == 2  # asked the same: nothing redone, whatever quality each scene got
    plain = compress_archive(tmp_path / "in", tmp_path / "out", **args)
    assert plain.skipped == 0 and {r["quality"] for r in plain.rows} == {4}
    with pytest.raises(InputError, match="Unknown allocation"):
        compress_archive(tmp_path / "in", tmp_path / "out", allocation="dB", **args)


def test_a_killed_client_resumes_with_the_cli(tmp_path, cluster, make_raster):
    scenes = _archive(tmp_path / "in", 4)
    _bad_scenes(tmp_path / "in", make_raster)
    out = tmp_path / "out"
    args = [str(tmp_path / "in"), str(out), "--quality", "1"]
    client = subprocess.Popen(CLI + args + ["--workers", "1"], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and client.poll() is None:
            if any(r["status"] == "ok" for r in read_manifest(out / MANIFEST_NAME).values()):
                break
            time.sleep(0.05)
        assert client.poll() is None, "the batch ended before it could be killed"
        os.kill(client.pid, signal.SIGKILL)
        client.wait(30)
        assert len(read_manifest(out / MANIFEST_NAME)) < 6
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _group_alive(client.pid):
            time.sleep(0.2)
        assert not _group_alive(client.pid), "the killed client's local workers outlived it"
    finally:
        if _group_alive(client.pid):
            os.killpg(client.pid, signal.SIGKILL)

    rerun = subprocess.run(CLI + args + ["--scheduler", cluster.scheduler_address, "-q"], capture_output=True,
                           text=True, timeout=300, check=False)
    assert rerun.returncode == 1, rerun.stderr
    assert "6 scenes: 4 ok" in rerun.stdout and "2 failed" in rerun.stdout
    assert "rgb.tif" in rerun.stderr and "notes.tif" in rerun.stderr
    failed = {str((tmp_path / "in" / n).resolve()) for n in ("notes.tif", "rgb.tif")}
    _assert_all_done(out, {str(p.resolve()) for p in scenes}, failed)


def test_real_chips_and_a_vv_vh_pair_from_a_list(tmp_path, cluster, shared_data):
    import rasterio

    chips = sorted((shared_data / "sen1floods11-dualpol-db").glob("*.tif"))[:2]
    sample = write_sample(tmp_path / "sample.tif", "db", size=128, seed=7)
    with rasterio.open(sample) as src:
        profile = {**src.profile, "count": 1}
        for band, pol in ((1, "vv"), (2, "vh")):
            with rasterio.open(tmp_path / f"pair_{pol}.tif", "w", **profile) as dst:
                dst.write(src.read(band), 1)
    listing = tmp_path / "scenes.txt"
    listing.write_text("".join(f"{c}\n" for c in chips) + "pair_vv.tif,pair_vh.tif\n")
    report = compress_archive(listing, tmp_path / "out", scheduler=cluster.scheduler_address, quality=1,
                              verify=True)
    assert report.ok == 3, report.failed_rows
    assert all(r["psnr"] > 5 for r in report.rows)
    pair = f"{tmp_path / 'pair_vv.tif'},{tmp_path / 'pair_vh.tif'}"
    _assert_all_done(tmp_path / "out", {str(c) for c in chips} | {pair})


@pytest.mark.slow  # 85 s on the shared 2-core machine
def test_safe_folders_and_zips_each_give_one_container_with_every_file(cluster, test_safe, tmp_path):
    import shutil

    from sar_codec.codec import container_info

    (tmp_path / "in").mkdir()
    shutil.copytree(test_safe, tmp_path / "in" / test_safe.name)
    shutil.make_archive(str(tmp_path / "in" / "zipped" / test_safe.stem), "zip", test_safe.parent, test_safe.name)
    report = compress_archive(tmp_path / "in", tmp_path / "out", scheduler=cluster.scheduler_address, quality=1,
                              verify=True)
    assert report.ok == 2 and report.failed == 0
    stored = {f.relative_to(test_safe.parent).as_posix() for f in test_safe.rglob("*")
              if f.is_file() and f.parent.name != "measurement"}
    for row in report.rows:
        header = container_info(tmp_path / "out" / row["output"])
        assert {f["path"] for f in header["files"]} == stored
        assert len(header["safe"]["measurements"]) == 2 and row["psnr"] > 10
