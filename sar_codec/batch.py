"""Compress an archive of scenes on dask.distributed: one task per scene, a manifest that makes re-runs resume.

The client finds the scenes and names their outputs (:mod:`sar_codec.archive`), and submits one task per scene
(:mod:`sar_codec.dask_client`); a task (:func:`process_scene`) compresses its scene atomically through
:func:`~sar_codec.codec.compress_scene`, optionally decodes it again to check it against its input
(:mod:`sar_codec.verification`), and returns one manifest row. The client records each row in the journal
``OUT_DIR/manifest.jsonl`` as it arrives (:mod:`sar_codec.manifest`) and reports progress
(:mod:`sar_codec.batch_progress`). A re-run skips scenes whose output still exists, matches its recorded SHA-256
and passes :func:`~sar_codec.codec.verify_container`, and redoes the others. Workers and client must see the
inputs and ``OUT_DIR`` at the same paths.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .archive import SceneJob, find_scenes, input_bytes, plan_outputs
from .batch_progress import BatchProgress, Tally
from .device import check_device
from .errors import CancelledError, InputError, SarCodecError
from .files import remove_stale_temps
from .manifest import MANIFEST_NAME, Manifest, Row, base_row, failed_row, now_iso
from .progress import Cancelled
from .rate_control import check_allocation
from .registry import DEFAULT_ARCHITECTURE, DEFAULT_QUALITY, file_sha256, lookup
from .verification import output_still_good, verify_against_input

__all__ = ["BatchReport", "compress_archive", "process_scene"]


@dataclass
class BatchReport:
    """What a batch did: the manifest rows of this run's scenes, in input order."""

    rows: list[Row]
    manifest: Path
    seconds: float
    skipped: int = 0  # already done and verified by an earlier run
    coded_pixels: int = field(default=0, repr=False)  # width x height x polarisations of the scenes coded now

    @property
    def ok(self) -> int:
        return sum(r["status"] == "ok" for r in self.rows)

    @property
    def failed_rows(self) -> list[Row]:
        return [r for r in self.rows if r["status"] != "ok"]

    @property
    def failed(self) -> int:
        return len(self.failed_rows)


def process_scene(job: SceneJob, out_dir: str, architecture: str, quality: int, verify: bool, device: str,
                  previous: Row | None, reproducible: bool = False, allocation: str = "normalised"
                  ) -> tuple[str, Row]:
    """Compress (or skip, or only check) one scene; return (``compressed``|``checked``|``skipped``|``failed``, row).

    Runs on a dask worker and never raises for a bad scene: its error becomes the row's reason.
    """
    from .codec import compress_scene

    start = time.monotonic()
    output = Path(out_dir) / job.output
    try:
        same_model = previous is not None and (  # rows from before allocation existed: the quality was the asked
            previous.get("model"), previous.get("asked_quality", previous.get("quality")),
            previous.get("allocation") or "normalised") == (architecture, quality, allocation)
        if same_model and previous.get("status") == "ok" and output_still_good(output, previous.get("sha256")):
            if not verify or previous.get("psnr") is not None:
                return "skipped", previous
            psnr = verify_against_input(job.inputs, output, device)
            return "checked", {**previous, "psnr": psnr}
        result = compress_scene(list(job.inputs), output, architecture=architecture, quality=quality,
                                device=device, overwrite=True, reproducible=reproducible, allocation=allocation)
        psnr = None
        if verify:
            try:
                psnr = verify_against_input(job.inputs, output, device)
            except BaseException:
                output.unlink(missing_ok=True)  # an output that does not match its input is not left behind
                raise
        row = base_row(job)
        row.update(status="ok", output_bytes=result.bytes, bpp=result.bpp, psnr=psnr, sha256=file_sha256(output),
                   ratio=row["input_bytes"] / result.bytes if result.bytes else None, model=result.architecture,
                   quality=result.quality, pixels=result.pixels, seconds=time.monotonic() - start,
                   reproducible=reproducible, allocation=allocation, asked_quality=quality, finished=now_iso())
        return "compressed", row
    except SarCodecError as exc:
        return "failed", failed_row(job, str(exc), time.monotonic() - start)
    except Exception as exc:  # noqa: BLE001 - one bad scene must not stop the batch
        return "failed", failed_row(job, f"Unexpected {type(exc).__name__}: {exc}", time.monotonic() - start)


def compress_archive(inputs: str | os.PathLike, out_dir: str | os.PathLike, *, scheduler: str | None = None,
                     workers: int | None = None, threads_per_worker: int = 1,
                     architecture: str = DEFAULT_ARCHITECTURE, quality: int | None = None, verify: bool = False,
                     device: str = "auto", reproducible: bool = False, allocation: str = "normalised",
                     progress: Callable[[BatchProgress], None] | None = None,
                     cancelled: Cancelled | None = None) -> BatchReport:
    """Compress every scene of a directory or list file into ``out_dir``, one dask task per scene.

    Parameters
    ----------
    inputs: a directory (searched recursively for *.tif, *.tiff, SAFE directories and zips) or a text file
        with one scene per line (``path`` or ``vv_path,vh_path``; relative to the file).
    out_dir: where ``<stem>.sarc`` files and ``manifest.jsonl`` go; created if missing.
    scheduler: address of a running dask scheduler; default a LocalCluster of ``workers`` processes
        (default one per core) with ``threads_per_worker`` threads each, on 127.0.0.1.
    architecture, quality: the model and quality level (default: the codec's, quality 6).
    verify: decode every output and check it against its input; the PSNR goes in the manifest.
    device: ``auto`` (each worker picks its GPU when it has one), ``cpu``, or ``cuda`` (tasks need workers
        with the dask resource ``GPU``).
    reproducible: a fixed-point encoder too, so that a scene gives the same container bytes on every worker
        and machine (slower; see ``compress_scene``).
    allocation: ``db`` reads ``quality`` as the same trade-off in dB for every scene (``compress_scene``), so the
        archive's bits go where they lower its error in dB most; the manifest's ``quality`` is then each scene's.
    progress: called with a :class:`~sar_codec.batch_progress.BatchProgress` after each scene.
    cancelled: asked after each scene; True stops the batch (CancelledError) after writing the manifest.

    A failed scene does not stop the others: it gets status ``failed`` and a reason in the manifest and
    the report. Running the same call again redoes only what is missing, failed or no longer verifies.
    """
    from distributed import as_completed

    from .dask_client import connect, task_failure

    start = time.monotonic()
    check_device(device)
    quality = DEFAULT_QUALITY if quality is None else quality
    lookup(architecture, quality)  # fails here, once, rather than in every task
    check_allocation(allocation)
    scenes, base = find_scenes(inputs)
    if not scenes:
        raise InputError(f"No scenes (*.tif, *.tiff, SAFE directories or zips) were found in {inputs}.")
    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise InputError(f"{out_dir} is a file; give a directory for the outputs.")
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out, any_name=True)  # what killed writers left (see sar_codec.files)
    manifest = Manifest(out / MANIFEST_NAME)
    rows: dict[str, Row] = {}
    try:
        jobs = plan_outputs(scenes, base, manifest.rows)
        tally = Tally(len(jobs), sum(input_bytes(j.inputs) for j in jobs))
        with connect(scheduler, workers, threads_per_worker, device) as client:
            resources = {"GPU": 1} if device == "cuda" else None
            futures = {client.submit(process_scene, job, str(out), architecture, quality, verify, device,
                                     manifest.rows.get(job.key), reproducible, allocation, pure=False,
                                     resources=resources,
                                     key=f"sar-codec-{job.output}-{os.urandom(4).hex()}"): job for job in jobs}
            pending = as_completed(futures)
            for future in pending:
                job = futures[future]
                try:
                    action, row = future.result()
                except Exception as exc:  # noqa: BLE001 - the worker died or the task was lost
                    action, row = "failed", failed_row(job, task_failure(exc))
                future.release()
                manifest.record(row)
                rows[job.key] = row
                state = tally.add(action, row)
                if progress is not None:
                    progress(state)
                if cancelled is not None and cancelled():
                    client.cancel(list(futures))
                    raise CancelledError(f"Cancelled after {state.done} of {state.total} scenes; the manifest "
                                         "lists them and a re-run goes on from there.")
    finally:
        manifest.close()
    return BatchReport([rows[j.key] for j in jobs], out / MANIFEST_NAME, time.monotonic() - start,
                       skipped=tally.skipped, coded_pixels=tally.pixels)
