"""compare, evaluate (the library is imported inside each command: the CLI starts without it)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sar_codec.radiometry import UNITS
from sar_codec.rate_control import ALLOCATIONS
from sar_codec.tiling import DEFAULT_CROP

from .options import device_option, overwrite_option, progress_bar


def _split_list(ctx, param, value: str | None):
    if not value:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if param.name == "qualities":
        try:
            return [int(v) for v in items]
        except ValueError:
            raise click.BadParameter("give whole numbers separated by commas, e.g. 2,4,6") from None
    return items


models_option = click.option("--models", callback=_split_list, default=None, metavar="ARCH[,ARCH...]",
                             help="Architectures to run (default: every installed one).")
qualities_option = click.option("--qualities", callback=_split_list, default=None, metavar="Q[,Q...]",
                                help="Quality levels to run (default: all).")


def _f(value, spec: str) -> str:
    return "-" if value is None or isinstance(value, str) else format(value, spec)


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out-dir", type=click.Path(path_type=Path), required=True, help="Folder for the report.")
@models_option
@qualities_option
@click.option("--crop", type=int, default=DEFAULT_CROP, show_default=True,
              help="Evaluate the centred crop of at most this many pixels a side.")
@device_option
@overwrite_option
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def compare(inputs, out_dir, models, qualities, crop, device, overwrite, as_json, quiet):
    """Compare the learned models with JPEG, JPEG 2000, JPEG XL, LERC and lossless ZSTD on a scene (file or VV + VH)."""
    if len(inputs) > 2:
        raise click.UsageError("Give one input, or two single-polarisation inputs (VV and VH).")
    from sar_codec.compare import compare_scene
    from sar_codec.reporting import json_safe

    with progress_bar("comparing", not quiet and not as_json) as progress:
        report = compare_scene(list(inputs), out_dir, models=models, qualities=qualities, device=device,
                               crop=crop, overwrite=overwrite, progress=progress)
    if as_json:
        click.echo(json.dumps(json_safe(report), indent=1))
        return
    ref, c = report["reference"], report["crop"]
    click.echo(f"{c['width']}x{c['height']} px at row {c['row_off']} col {c['col_off']}; lossless ZSTD COG "
               f"{ref['lossless_bpp']:.2f} bpp, original file {_f(ref['original_bpp'], '.2f')} bpp")
    click.echo(f"{'codec':34s} {'bpp':>7s} {'x lossl.':>8s} {'PSNR':>6s} {'SSIM':>6s} {'MS-SSIM':>7s} "
               f"{'RMSE dB':>7s} {'bias dB':>7s} {'ENL dec/orig':>12s}")
    for p in report["points"]:
        m = p["metrics"]["all"]
        note = "  (rate not matched)" if p.get("rate_note") else ""
        click.echo(f"{p['label']:34s} {p['bpp']:7.3f} {p['ratio_vs_lossless']:8.1f} {_f(m['psnr'], '6.2f')} "
                   f"{_f(m['ssim'], '6.3f')} {_f(m['ms_ssim'], '7.3f')} {_f(m['rmse_db'], '7.2f')} "
                   f"{_f(m['bias_db'], '+7.2f')} {_f(m['enl_ratio'], '12.2f')}{note}")
    click.echo(f"report: {report['outputs']['json']}")


@click.command()
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.option("-o", "--out-dir", type=click.Path(path_type=Path), required=True, help="Folder for the results.")
@models_option
@qualities_option
@click.option("--split", type=click.Choice(["dev", "all"]), default="dev", show_default=True,
              help="dev: only the files training held out.")
@click.option("--units", type=click.Choice(UNITS), default=None,
              help="Units of the images (detected for GeoTIFF; needed for PNG).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Evaluate at most this many patches.")
@click.option("--patch-size", type=click.Choice(["64", "128", "256"]), default="64", show_default=True,
              help="Side of the patches; each model codes them in its own tile size, at most this.")
@click.option("--effort", type=int, default=0, show_default=True, metavar="STEPS",
              help="Steps of encoder-side latent refinement, as compress --effort (slow).")
@click.option("--allocation", type=click.Choice(ALLOCATIONS), default="normalised", show_default=True,
              help="db: also each model's curve with the quality read in dB, as compress --allocation db.")
@device_option
@overwrite_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def evaluate(data_dir, out_dir, models, qualities, split, units, limit, patch_size, effort, allocation, device,
             overwrite, quiet):
    """Rate-distortion curves and BD-rates of every model and every baseline on a folder's patches."""
    from sar_codec.evaluate import evaluate_dir

    with progress_bar("evaluating", not quiet) as progress:
        report = evaluate_dir(data_dir, out_dir, models=models, qualities=qualities, split=split, units=units,
                              limit=limit, device=device, overwrite=overwrite, effort=effort,
                              patch_size=int(patch_size), allocation=allocation, progress=progress)
    s, n = report["source"], report["source"]["patch_size"]
    click.echo(f"{s['patches']} patches of {n}x{n} from {s['files']} files ({s['split']} split)\n")
    click.echo(report["table_markdown"])
    click.echo(f"curves: {report['outputs']['rd.csv']}")


COMMANDS = [compare, evaluate]
