"""models, train."""

from __future__ import annotations

from pathlib import Path

import click

from sar_codec.registry import ARCHITECTURES, model_table

from .options import device_option


@click.command()
def models():
    """List the installed models and qualities (the model table)."""
    rows = model_table()
    if not rows:
        click.echo("No model weights are installed.")
    for e in rows:
        est = f"dev ~{e.dev_bpp:.3f} bpp, {e.dev_psnr:.2f} dB" if e.dev_bpp is not None else ""
        click.echo(f"{e.architecture:22s} quality {e.quality}  lambda {e.lmbda:<8g} {est}  {e.weights}, "
                   f"{e.tile_size}-px tiles")


@click.command()
@click.argument("architecture", type=click.Choice(ARCHITECTURES))
@click.argument("sources", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Weights file to write.")
@click.option("--run-dir", type=click.Path(path_type=Path), default=None,
              help="Checkpoints and logs (default: runs/ARCH); an existing checkpoint is resumed.")
@click.option("--minutes", type=float, default=20.0, show_default=True, help="Wall-clock training budget.")
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--channels", type=click.IntRange(1, 2), default=1, show_default=True,
              help="2: one model for VV+VH, trained on files with two bands (research only: the codec installs "
                   "one-channel models).")
@click.option("--N", "n", type=click.IntRange(8, 512), default=64, show_default=True, help="Transform channels.")
@click.option("--M", "m", type=click.IntRange(8, 512), default=192, show_default=True, help="Latent channels.")
@click.option("--L", "light", type=click.IntRange(4, 512), default=None,
              help="Channels of the light synthesis (light architectures only; default 48).")
@click.option("--patch-size", type=click.IntRange(64, 1024), default=64, show_default=True,
              help="Side of the training crops, a multiple of 64; the weights then code scenes in tiles of this "
                   "side.")
@click.option("--init-from", type=click.Path(path_type=Path), default=None,
              help="Start from these weights (a smaller latent M is grown into the new one; qualities the "
                   "weights lack get gain vectors interpolated in log lambda).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=5e-4, show_default=True,
              help="Peak learning rate (cosine decay).")
@click.option("--lr-per-quality", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Peak learning rate of the per-quality gains and densities (default: --lr).")
@click.option("--register", is_flag=True, help="Add the result to the installed model table.")
@device_option
def train(architecture, sources, output, run_dir, minutes, batch_size, channels, n, m, light, patch_size, init_from, lr,
          lr_per_quality, register, device):
    """Train ARCHITECTURE on SOURCES (folders of GeoTIFF/PNG as PATH[:UNITS[:LOOKS]], LOOKS adds speckle)."""
    from sar_codec.registry import register_weights
    from sar_codec.train import TrainConfig
    from sar_codec.train import train as run
    from sar_codec.training_data import Source

    cfg = TrainConfig(architecture, [Source.parse(s) for s in sources], output,
                      run_dir or Path("runs") / architecture, minutes=minutes, batch_size=batch_size,
                      patch_size=patch_size, in_channels=channels, N=n, M=m, L=light, device=device,
                      init_from=init_from, lr=lr, lr_per_quality=lr_per_quality)
    run(cfg, log=click.echo)
    if register:
        register_weights(output)
        click.echo(f"registered {output.name}")


COMMANDS = [models, train]
