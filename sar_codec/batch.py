"""Compress an archive of scenes on dask.distributed: one task per scene, a manifest that makes re-runs resume.

The client finds the scenes, gives each an output name and submits one task per scene; a task compresses its
scene (atomically, through :func:`~sar_codec.codec.compress_scene`), optionally decodes it again to check it
against its input, and returns one manifest row. The client appends each row to ``OUT_DIR/manifest.jsonl`` as
it arrives (an append-only journal, fsynced; a torn last line left by a killed client is ignored) and rewrites
the file with one row per scene, atomically, at the start and at the end of every run. A re-run skips scenes
whose output still exists, matches its recorded SHA-256 and passes :func:`~sar_codec.codec.verify_container`,
and redoes the others. Workers and client must see the inputs and ``OUT_DIR`` at the same paths.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .device import check_device
from .errors import CancelledError, ContainerError, InputError, SarCodecError
from .files import remove_stale_temps, write_text_atomic
from .registry import DEFAULT_ARCHITECTURE, DEFAULT_QUALITY, file_sha256, lookup

__all__ = ["MANIFEST_NAME", "BatchProgress", "BatchReport", "SceneJob", "compress_archive", "find_scenes",
           "plan_outputs", "process_scene", "read_manifest", "verify_against_input"]

MANIFEST_NAME = "manifest.jsonl"
OUTPUT_SUFFIX = ".sarc"
SCENE_SUFFIXES = (".tif", ".tiff", ".zip")
MAX_PSNR = 100.0  # reported when a decode is identical to its input (JSON has no infinity)

Row = dict


@dataclass(frozen=True)
class SceneJob:
    """One scene of the archive: its input file(s), absolute, and its output's file name in ``OUT_DIR``."""

    inputs: tuple[str, ...]
    output: str

    @property
    def key(self) -> str:
        """The manifest key: the input paths joined by a comma, as in a list file."""
        return ",".join(self.inputs)


@dataclass(frozen=True)
class BatchProgress:
    """Where the whole batch stands, passed to ``progress`` after each scene."""

    done: int
    total: int
    ok: int
    failed: int
    skipped: int  # already done and verified by an earlier run
    mpix_per_s: float | None  # pixels of the scenes coded in this run per second of their wall time (None: none yet)
    eta_s: float | None  # from the input bytes left and the bytes per second so far (None: nothing coded yet)
    row: Row  # the manifest row of the scene just finished
    action: str = "compressed"  # what happened to it: compressed, checked, skipped or failed


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


# --- finding scenes and naming outputs ------------------------------------------------------------


def _scan(top: Path) -> list[tuple[str, ...]]:
    """Scenes under ``top``: rasters (*.tif, *.tiff), SAFE directories and zips; hidden names skipped."""
    from .safe_discovery import is_safe_dir  # rasterio, only when needed

    found: list[tuple[str, ...]] = []
    for root, dirs, files in os.walk(top):
        here = Path(root)
        keep = []
        for d in sorted(dirs):
            if d.startswith("."):
                continue
            if is_safe_dir(here / d):
                found.append((str(here / d),))
            else:
                keep.append(d)
        dirs[:] = keep
        found.extend((str(here / f),) for f in sorted(files)
                     if not f.startswith(".") and f.lower().endswith(SCENE_SUFFIXES))
    return found


def _read_list(path: Path) -> list[tuple[str, ...]]:
    """Scenes of a list file: one per line, ``A`` or ``VV,VH``; blank lines and ``#`` comments skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path} is neither a directory nor a text file listing scenes; give one of "
                         "those.") from None
    base = path.parent.resolve()
    scenes = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) > 2 or not all(parts):
            raise InputError(f"Line {n} of {path} does not hold one path or two comma-separated paths "
                             "(VV,VH); fix that line.")
        scenes.append(tuple(str(base / p) for p in parts))
    return scenes


def find_scenes(source: str | os.PathLike) -> tuple[list[tuple[str, ...]], Path]:
    """The scenes of a directory (searched recursively), a list file, or one scene; and the folder they are
    relative to."""
    from .safe_discovery import is_safe_dir

    p = Path(source)
    if not p.exists():
        raise InputError(f"{p} does not exist; give a directory of scenes or a text file listing them.")
    if p.is_dir():
        if is_safe_dir(p):
            return [(str(p.resolve()),)], p.resolve().parent
        return _scan(p.resolve()), p.resolve()
    if p.name.lower().endswith(SCENE_SUFFIXES) or p.name.lower() == "manifest.safe":
        return [(str(p.resolve()),)], p.resolve().parent
    scenes = _read_list(p)
    unique = list(dict.fromkeys(scenes))  # a scene listed twice is done once
    return unique, p.parent.resolve()


def _stem(path: str) -> str:
    p = Path(path)
    if p.name.lower() == "manifest.safe":
        p = p.parent
    name = p.name
    for suffix in (".zip", ".safe", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or "scene"


def plan_outputs(scenes: Sequence[tuple[str, ...]], base: Path, previous: dict[str, Row] | None = None
                 ) -> list[SceneJob]:
    """Give each scene its output name: ``<stem>.sarc``, or ``<stem>-<hash>.sarc`` where stems collide.

    A scene keeps the name an earlier run recorded for it in ``previous`` (the manifest), so names stay
    stable when the archive grows; the hash is of the input's path relative to ``base``.
    """
    previous = previous or {}
    keys = [",".join(s) for s in scenes]
    stems = [_stem(s[0]) for s in scenes]
    stem_count: dict[str, int] = {}
    for s in stems:
        stem_count[s.casefold()] = stem_count.get(s.casefold(), 0) + 1
    taken: dict[str, str] = {}  # casefolded name -> key
    for key in keys:  # names recorded by earlier runs for scenes of this run come first
        name = (previous.get(key) or {}).get("output")
        if name and name.casefold() not in taken:
            taken[name.casefold()] = key
    others = {r["output"].casefold() for k, r in previous.items() if r.get("output") and k not in keys}
    names = {}
    for key, stem in zip(keys, stems):
        name = (previous.get(key) or {}).get("output")
        if name and taken.get(name.casefold()) == key:
            names[key] = name
            continue
        name = stem + OUTPUT_SUFFIX
        rel = ",".join(os.path.relpath(p, base) for p in key.split(","))
        digest = hashlib.sha1(rel.encode("utf-8")).hexdigest()
        width = 8
        while stem_count[stem.casefold()] > 1 or name.casefold() in taken or name.casefold() in others:
            name = f"{stem}-{digest[:width]}{OUTPUT_SUFFIX}"
            if name.casefold() not in taken and name.casefold() not in others:
                break
            width += 4
        taken[name.casefold()] = key
        names[key] = name
    return [SceneJob(tuple(s), names[k]) for s, k in zip(scenes, keys)]


# --- the manifest ---------------------------------------------------------------------------------


def read_manifest(path: str | os.PathLike) -> dict[str, Row]:
    """Rows of a manifest by input, the last row of an input winning; unreadable (torn) lines are ignored."""
    rows: dict[str, Row] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict) and isinstance(row.get("input"), str):
                    rows[row["input"]] = row
    except FileNotFoundError:
        pass
    return rows


class _Manifest:
    """The journal: loaded and rewritten (one row per scene) on open, appended per scene, rewritten on close."""

    def __init__(self, path: Path):
        self.path = path
        self.rows = read_manifest(path)
        self._rewrite()  # drops a torn last line before anything is appended after it

    def record(self, row: Row) -> None:
        self.rows[row["input"]] = row
        with open(self.path, "a", encoding="utf-8") as journal:
            journal.write(json.dumps(row, allow_nan=False) + "\n")
            journal.flush()
            os.fsync(journal.fileno())

    def close(self) -> None:
        self._rewrite()

    def _rewrite(self) -> None:
        write_text_atomic(self.path, "".join(json.dumps(self.rows[key], allow_nan=False) + "\n"
                                             for key in sorted(self.rows)))


# --- one scene, on a worker -----------------------------------------------------------------------


def _input_bytes(inputs: Sequence[str]) -> int:
    total = 0
    for p in inputs:
        with contextlib.suppress(OSError):
            if os.path.isdir(p):
                total += sum(f.stat().st_size for f in Path(p).rglob("*") if f.is_file())
            else:
                total += os.path.getsize(p)
    return total


def verify_against_input(inputs: Sequence[str], container: str | os.PathLike, device: str = "auto") -> float:
    """Decode ``container`` block by block and check it against its input; return the PSNR in the [0, 1] domain.

    Size, band count, georeferencing and the nodata mask must match exactly (else ContainerError); the PSNR
    is over valid samples, each mapped to [0, 1] with the container's own radiometric mapping.
    """
    from .codec import decode_blocks, open_container
    from .device import pick_device
    from .metrics import psnr_from_mse
    from .radiometry import to_db
    from .scene import open_scene
    from .tiling import Window

    name = Path(container).name
    opened = open_container(container)
    try:
        info = opened.info
        with open_scene(list(inputs)) as scene:
            src = scene.info
            if (src.width, src.height, src.count) != (info.width, info.height, info.count):
                raise ContainerError(f"{name} holds {info.count} band(s) of {info.width}x{info.height} but its input "
                                     f"has {src.count} of {src.width}x{src.height}; compress it again.")
            if src.to_json()["georef"] != info.to_json()["georef"]:
                raise ContainerError(f"The georeferencing of {name} differs from its input's; compress it again.")
            sse, count = 0.0, 0
            full = Window(0, 0, info.height, info.width)
            for part, decoded in decode_blocks(opened, full, pick_device(device)):
                raw = scene.read(part.row_off, part.col_off, part.height, part.width)
                valid = scene.valid_mask(raw)
                if not np.array_equal(valid, scene.valid_mask(decoded)):
                    raise ContainerError(f"The nodata mask of {name} differs from its input's near row "
                                         f"{part.row_off}, column {part.col_off}; compress it again.")
                for b, mapping in enumerate(opened.mappings):
                    v = valid[b]
                    a = mapping.forward(to_db(raw[b][v], info.units))
                    d = mapping.forward(to_db(decoded[b][v], info.units))
                    sse += float(np.sum((a - d) ** 2))
                    count += int(v.sum())
    finally:
        opened.container.close()
    return MAX_PSNR if count == 0 else min(MAX_PSNR, psnr_from_mse(sse / count))


def _output_still_good(output: Path, sha256: str | None) -> bool:
    from .codec import verify_container

    if not sha256 or not output.is_file():
        return False
    try:
        if file_sha256(output) != sha256:
            return False
        verify_container(output)
    except (SarCodecError, OSError):
        return False
    return True


def _base_row(job: SceneJob) -> Row:
    return {"input": job.key, "output": job.output, "status": "failed", "reason": "",
            "input_bytes": _input_bytes(job.inputs), "output_bytes": None, "ratio": None, "bpp": None,
            "psnr": None, "seconds": None, "sha256": None, "model": None, "quality": None, "pixels": None,
            "reproducible": None, "finished": None}


def failed_row(job: SceneJob, reason: str, seconds: float | None = None) -> Row:
    """The manifest row of a scene that failed, with its one-sentence reason."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return {**_base_row(job), "reason": reason, "seconds": seconds, "finished": now}


def process_scene(job: SceneJob, out_dir: str, architecture: str, quality: int, verify: bool, device: str,
                  previous: Row | None, reproducible: bool = False) -> tuple[str, Row]:
    """Compress (or skip, or only check) one scene; return (``compressed``|``checked``|``skipped``|``failed``, row).

    Runs on a dask worker and never raises for a bad scene: its error becomes the row's reason.
    """
    from .codec import compress_scene

    start = time.monotonic()
    output = Path(out_dir) / job.output
    try:
        same_model = previous is not None and (previous.get("model"), previous.get("quality")) == (architecture,
                                                                                                     quality)
        if same_model and previous.get("status") == "ok" and _output_still_good(output, previous.get("sha256")):
            if not verify or previous.get("psnr") is not None:
                return "skipped", previous
            psnr = verify_against_input(job.inputs, output, device)
            return "checked", {**previous, "psnr": psnr}
        result = compress_scene(list(job.inputs), output, architecture=architecture, quality=quality,
                                device=device, overwrite=True, reproducible=reproducible)
        psnr = None
        if verify:
            try:
                psnr = verify_against_input(job.inputs, output, device)
            except BaseException:
                output.unlink(missing_ok=True)  # an output that does not match its input is not left behind
                raise
        row = _base_row(job)
        row.update(status="ok", output_bytes=result.bytes, bpp=result.bpp, psnr=psnr, sha256=file_sha256(output),
                   ratio=row["input_bytes"] / result.bytes if result.bytes else None, model=result.architecture,
                   quality=result.quality, pixels=result.pixels, seconds=time.monotonic() - start,
                   reproducible=reproducible,
                   finished=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
        return "compressed", row
    except SarCodecError as exc:
        return "failed", failed_row(job, str(exc), time.monotonic() - start)
    except Exception as exc:  # noqa: BLE001 - one bad scene must not stop the batch
        return "failed", failed_row(job, f"Unexpected {type(exc).__name__}: {exc}", time.monotonic() - start)


# --- the client -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _connect(scheduler: str | None, workers: int | None, threads_per_worker: int, device: str) -> Iterator:
    """A dask Client: to ``scheduler`` when given, else to a LocalCluster of processes on loopback."""
    import logging

    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise InputError(f"Could not reach the dask scheduler at {scheduler} ({exc}); start one with "
                             "`dask scheduler`, or give no scheduler to use local workers.") from None
        with client:
            if device == "cuda" and not any(w.get("resources", {}).get("GPU")
                                            for w in client.scheduler_info()["workers"].values()):
                raise InputError(f"The device 'cuda' needs workers started with `--resources GPU=1`; none of the "
                                 f"workers of {scheduler} has it.")
            yield client
        return
    if device == "cuda":
        from .device import pick_device

        pick_device(device)  # local workers share this machine's GPUs: fail once, here, when it has none
    if workers is None:
        workers = 1 if device == "cuda" else max(1, (os.cpu_count() or 1) // threads_per_worker)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                           host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR,
                           resources={"GPU": 1} if device == "cuda" else None)
    with cluster, Client(cluster) as client:
        yield client


def _task_failure(exc: BaseException) -> str:
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        return ("The workers running it died several times (out of memory, or a crash); see the worker logs and "
                "give workers more memory.")
    return f"The task could not run: {type(exc).__name__}: {exc}"


class _Tally:
    """Counts and rates for the progress callback."""

    def __init__(self, total: int, total_bytes: int):
        self.start = time.monotonic()
        self.total, self.bytes_left = total, total_bytes
        self.done = self.ok = self.failed = self.skipped = 0
        self.pixels = self.bytes_done = 0

    def add(self, action: str, row: Row) -> BatchProgress:
        self.done += 1
        self.bytes_left -= row.get("input_bytes") or 0
        self.ok += row["status"] == "ok"
        self.failed += row["status"] != "ok"
        self.skipped += action == "skipped"
        if action in ("compressed", "checked"):  # skipped and failed scenes take no time worth counting
            self.bytes_done += row.get("input_bytes") or 0
        if action == "compressed":
            self.pixels += row.get("pixels") or 0
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.bytes_done / elapsed  # unknown (None) below until this run has coded something
        eta = 0.0 if self.done == self.total else (self.bytes_left / rate if rate > 0 else None)
        return BatchProgress(self.done, self.total, self.ok, self.failed, self.skipped,
                             self.pixels / elapsed / 1e6 if self.pixels else None, eta, row, action)


def compress_archive(inputs: str | os.PathLike, out_dir: str | os.PathLike, *, scheduler: str | None = None,
                     workers: int | None = None, threads_per_worker: int = 1,
                     architecture: str = DEFAULT_ARCHITECTURE, quality: int | None = None, verify: bool = False,
                     device: str = "auto", reproducible: bool = False,
                     progress: Callable[[BatchProgress], None] | None = None,
                     cancelled: Callable[[], bool] | None = None) -> BatchReport:
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
    progress: called with a :class:`BatchProgress` after each scene.
    cancelled: asked after each scene; True stops the batch (CancelledError) after writing the manifest.

    A failed scene does not stop the others: it gets status ``failed`` and a reason in the manifest and
    the report. Running the same call again redoes only what is missing, failed or no longer verifies.
    """
    from distributed import as_completed

    start = time.monotonic()
    check_device(device)
    quality = DEFAULT_QUALITY if quality is None else quality
    lookup(architecture, quality)  # fails here, once, rather than in every task
    scenes, base = find_scenes(inputs)
    if not scenes:
        raise InputError(f"No scenes (*.tif, *.tiff, SAFE directories or zips) were found in {inputs}.")
    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise InputError(f"{out_dir} is a file; give a directory for the outputs.")
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out, any_name=True)  # what killed writers left (see sar_codec.files)
    manifest = _Manifest(out / MANIFEST_NAME)
    rows: dict[str, Row] = {}
    try:
        jobs = plan_outputs(scenes, base, manifest.rows)
        tally = _Tally(len(jobs), sum(_input_bytes(j.inputs) for j in jobs))
        with _connect(scheduler, workers, threads_per_worker, device) as client:
            resources = {"GPU": 1} if device == "cuda" else None
            futures = {client.submit(process_scene, job, str(out), architecture, quality, verify, device,
                                     manifest.rows.get(job.key), reproducible, pure=False, resources=resources,
                                     key=f"sar-codec-{job.output}-{os.urandom(4).hex()}"): job for job in jobs}
            pending = as_completed(futures)
            for future in pending:
                job = futures[future]
                try:
                    action, row = future.result()
                except Exception as exc:  # noqa: BLE001 - the worker died or the task was lost
                    action, row = "failed", failed_row(job, _task_failure(exc))
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
