"""compress, decompress, info, verify, sample.

The library is imported inside each command, not here: ``--help``, ``info`` and ``verify`` must answer at once,
without importing torch (or rasterio, for ``--help``).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from sar_codec.calibration import KINDS
from sar_codec.radiometry import UNITS
from sar_codec.tiling import DEFAULT_BLOCK_SIZE

from .options import (
    allocation_option,
    device_option,
    file_not_stdout,
    model_option,
    overwrite_option,
    progress_bar,
    quality_option,
    reproducible_option,
)


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), callback=file_not_stdout,
              help="Output .sarc (default: INPUT.sarc).")
@model_option
@quality_option
@click.option("--target-bpp", type=float, default=None, help="Pick the highest quality at or below this rate.")
@allocation_option
@device_option
@click.option("--tile-size", type=int, default=None,
              help="Model input in pixels, a multiple of 64 [default: the size the model was trained for, halved "
                   "while larger than the scene's shorter side or not dividing the block size].")
@click.option("--block-size", type=int, default=DEFAULT_BLOCK_SIZE, show_default=True,
              help="Random-access unit, in pixels.")
@click.option("--units", type=click.Choice(UNITS), default=None,
              help="Force the units instead of detecting them.")
@click.option("--pols", default=None, help="Polarisations to take from a SAFE product, e.g. VV,VH.")
@reproducible_option
@click.option("--max-error-db", type=float, default=None, metavar="E",
              help="Guarantee |decoded - original| <= E dB on every valid sample (adds a residual layer).")
@click.option("--no-overviews", "no_overviews", is_flag=True,
              help="Leave out the reduced-resolution pyramid (smaller file; zoomed-out reads decode everything).")
@click.option("--effort", type=int, default=0, show_default=True, metavar="STEPS",
              help="Refine each block's latent for STEPS steps: about 5 % fewer bits at 100, encoding far "
                   "slower (hyperprior models; not with --reproducible).")
@overwrite_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def compress(inputs, output, architecture, quality, target_bpp, allocation, device, tile_size, block_size, units,
             pols, reproducible, max_error_db, no_overviews, effort, overwrite, quiet):
    """Compress a scene (one file, a SAFE product, or a VV and a VH file) into a .sarc container."""
    if len(inputs) > 2:
        raise click.UsageError("Give one input, or two single-polarisation inputs (VV and VH).")
    from sar_codec.codec import compress_scene

    output = output or inputs[0].with_suffix(".sarc")
    with progress_bar("compressing", not quiet) as progress:
        r = compress_scene(list(inputs), output, architecture=architecture, quality=quality,
                                 target_bpp=target_bpp, device=device, tile_size=tile_size, block_size=block_size,
                                 units=units, pols=pols.split(",") if pols else None, overwrite=overwrite,
                           reproducible=reproducible, max_error_db=max_error_db, overviews=not no_overviews,
                           effort=effort, allocation=allocation, progress=progress)
    if r.note:
        click.echo(f"Note: {r.note}", err=True)
    click.echo(f"{r.output}: {r.bytes} bytes, {r.bpp:.3f} bpp ({r.architecture} quality {r.quality}), "
               f"{r.pixels / r.seconds / 1e6:.2f} MPix/s")


@click.command()
@click.argument("container", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, callback=file_not_stdout,
              help="Output GeoTIFF.")
@click.option("--safe", "safe_output", type=click.Path(path_type=Path), default=None, callback=file_not_stdout,
              help="Rebuild the SAFE product the container was made from: a folder, or a .zip.")
@click.option("--calibrate", type=click.Choice(list(KINDS)), default=None,
              help="Write calibrated backscatter (linear) with the product's own calibration LUTs.")
@click.option("--window", nargs=4, type=int, default=None, metavar="COL ROW WIDTH HEIGHT",
              help="Decode only this pixel window.")
@click.option("--bbox", nargs=4, type=float, default=None, metavar="MINX MINY MAXX MAXY",
              help="Decode only this box, in the scene's CRS.")
@click.option("--cog", is_flag=True, help="Write a Cloud Optimized GeoTIFF.")
@click.option("--exact", is_flag=True,
              help="Same output bytes on every machine: a fixed-point synthesis too (slower).")
@device_option
@overwrite_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def decompress(container, output, safe_output, calibrate, window, bbox, cog, exact, device, overwrite, quiet):
    """Decode a .sarc container (or a window of it) to a GeoTIFF with its georeferencing, or rebuild its SAFE."""
    if (output is None) == (safe_output is None):
        raise click.UsageError("Give either -o/--output (a GeoTIFF) or --safe (a SAFE folder or .zip).")
    if safe_output is not None and (calibrate or window or bbox or cog):
        raise click.UsageError("--safe rebuilds the whole product; --calibrate, --window, --bbox and --cog "
                               "apply to -o/--output.")
    with progress_bar("decoding", not quiet) as progress:
        if safe_output is not None:
            from sar_codec.safe import rebuild_product

            output = rebuild_product(container, safe_output, device=device, overwrite=overwrite, progress=progress)
        elif calibrate is not None:
            from sar_codec.calibration import decompress_calibrated

            decompress_calibrated(container, output, calibrate, window=window, bbox=bbox, cog=cog, device=device,
                                  overwrite=overwrite, progress=progress)
        else:
            from sar_codec.codec import decompress_scene

            decompress_scene(container, output, window=window, bbox=bbox, cog=cog, device=device,
                             overwrite=overwrite, exact=exact, progress=progress)
    click.echo(str(output))


@click.command()
@click.argument("container", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the whole header as JSON.")
def info(container, as_json):
    """Describe a container (reads the header only)."""
    from sar_codec.codec import container_info

    d = container_info(container)
    if as_json:
        click.echo(json.dumps(d, indent=1))
        return
    s, m = d["scene"], d["model"]
    georef = s["georef"]
    if georef.get("gcps"):
        geo = f"{len(georef['gcps'])} GCPs"
    else:
        geo = "transform + CRS" if georef.get("transform") else "none"
    click.echo(f"{d['path']}: {d['bytes']} bytes, {d['bpp']:.3f} bpp\n"
               f"scene: {s['width']} x {s['height']}, bands {', '.join(s['band_names'])}, {s['dtype']} {s['units']}, "
               f"nodata {s['nodata']}\ngeoreferencing: {geo}\n"
               f"model: {m['architecture']} quality {m['quality']} (weights {m['sha256'][:12]})\n"
               f"tiles {d['tile_size']} px, blocks {d['block_size']} px; {d['software']}")
    if d.get("safe"):
        files = d.get("files", [])
        click.echo(f"SAFE product {d['safe']['root']}: {len(d['safe']['measurements'])} measurement(s) coded, "
                   f"{len(files)} file(s) stored losslessly ({sum(f['size'] for f in files)} bytes)")
        for f in files:
            click.echo(f"  {f['path']}  {f['size']} bytes  sha256 {f['sha256'][:16]}")
    levels = d.get("overviews") or []
    if levels:
        sizes = ", ".join(f"{lv['width']}x{lv['height']}" for lv in levels)
        plural = "s" if len(levels) > 1 else ""
        click.echo(f"overviews: {len(levels)} level{plural} ({sizes}), {d['overview_bytes']} bytes "
                   f"({100 * d['overview_bytes'] / d['bytes']:.1f} % of the file)")
    else:
        click.echo("overviews: none")


@click.command()
@click.argument("container", type=click.Path(path_type=Path))
@click.option("--decode", is_flag=True, help="Also decode every block.")
@device_option
def verify(container, decode, device):
    """Check a container's checksums and structure; exit 1 on any problem."""
    from sar_codec.codec import verify_container

    r = verify_container(container, decode=decode, device=device)
    click.echo(f"{container}: OK ({r['blocks']} blocks{', decoded' if decode else ''})")


@click.command()
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--kind", type=click.Choice(["grd", "db"]), default="grd", show_default=True,
              help="grd: uint16 amplitude with GCPs; db: float32 sigma0 dB with a UTM transform.")
@click.option("--size", type=int, default=1024, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def sample(output, kind, size, seed):
    """Write the built-in synthetic dual-pol sample scene (generated, not real data)."""
    from sar_codec.sample import write_sample

    click.echo(str(write_sample(output, kind, size, seed)))


@click.command("vrt")
@click.argument("container", type=click.Path(path_type=Path), required=False)
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Output VRT (default: CONTAINER with .vrt).")
@click.option("--env", "show_env", is_flag=True,
              help="Print the shell lines (export ...) that let GDAL's tools read such VRTs, and exit.")
@overwrite_option
def vrt_command(container, output, show_env, overwrite):
    """Write a GDAL VRT that reads a .sarc in place (gdalinfo, gdal_translate, gdalwarp, QGIS, rasterio)."""
    from sar_codec import vrt

    if show_env:
        click.echo(vrt.env_lines(), nl=False)
        return
    if container is None:
        raise click.UsageError("Give a CONTAINER, or --env.")
    click.echo(str(vrt.write_vrt(container, output, overwrite=overwrite)))


COMMANDS = [compress, decompress, info, verify, sample, vrt_command]
