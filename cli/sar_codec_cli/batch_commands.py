"""batch."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sar_codec.batch_progress import BatchProgress

from .options import allocation_option, device_option, model_option, quality_option, reproducible_option


def _rate(mpix_per_s: float) -> str:
    return f"{mpix_per_s:.3g} MPix/s"


def _print_progress(p: BatchProgress) -> None:
    row = p.row
    what = f"{row['bpp']:.3f} bpp" if row["status"] == "ok" else row["reason"]
    if row["status"] == "ok" and row.get("psnr") is not None:
        what += f", {row['psnr']:.2f} dB"
    if p.action == "skipped":
        what += " (already done)"
    speed = [_rate(p.mpix_per_s)] if p.mpix_per_s is not None else []
    if p.eta_s is not None:
        speed.append(f"ETA {datetime.timedelta(seconds=round(p.eta_s))}")
    width = len(str(p.total))
    click.echo(f"[{p.done:{width}d}/{p.total}] {row['status']:6s} {row['output']}: {what}"
               + (f" | {', '.join(speed)}" if speed else ""), err=True)


@click.command()
@click.argument("source", metavar="IN_DIR_OR_LIST", type=click.Path(exists=True, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="A running dask scheduler, e.g. tcp://10.0.0.5:8786 (default: start local workers).")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Local worker processes (default: one per core); not with --scheduler.")
@click.option("--threads-per-worker", type=click.IntRange(1), default=None,
              help="Threads of each local worker (default 1); not with --scheduler.")
@model_option
@quality_option
@allocation_option
@click.option("--verify", is_flag=True,
              help="Decode each output and check it against its input (PSNR in the manifest).")
@device_option
@reproducible_option
@click.option("--quiet", "-q", is_flag=True, help="No line per scene.")
def batch(source, out_dir, scheduler, workers, threads_per_worker, architecture, quality, allocation, verify, device,
          reproducible, quiet):
    """Compress every scene of a directory or list file into OUT_DIR, one dask task per scene.

    IN_DIR_OR_LIST is a directory (searched recursively for *.tif, *.tiff, SAFE directories and zips) or a
    text file with one scene per line (PATH, or VV_PATH,VH_PATH). OUT_DIR/manifest.jsonl gets one row per
    scene; running the same command again redoes only what is missing, failed or no longer verifies.
    """
    if scheduler is not None and (workers is not None or threads_per_worker is not None):
        raise click.UsageError("--workers and --threads-per-worker size the local workers; with --scheduler, "
                               "size the workers where you start them (dask worker --nworkers --nthreads).")
    from sar_codec.batch import compress_archive

    report = compress_archive(source, out_dir, scheduler=scheduler, workers=workers,
                              threads_per_worker=threads_per_worker or 1, architecture=architecture,
                              quality=quality, verify=verify, device=device, reproducible=reproducible,
                              allocation=allocation,
                              progress=None if quiet else _print_progress)
    for row in report.failed_rows:
        click.echo(f"failed: {row['input']}: {row['reason']}", err=True)
    click.echo(f"{len(report.rows)} scenes: {report.ok} ok ({report.skipped} already done), {report.failed} failed, "
               f"in {report.seconds:.1f} s"
               + (f" ({_rate(report.coded_pixels / report.seconds / 1e6)})" if report.coded_pixels else "") + "; "
               f"manifest {report.manifest}")
    if report.failed:
        click.get_current_context().exit(1)


COMMANDS = [batch]
