"""Options shared by several commands, and the progress bar wiring."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import click

from sar_codec.device import DEVICES
from sar_codec.rate_control import ALLOCATIONS
from sar_codec.registry import ARCHITECTURES, DEFAULT_ARCHITECTURE, DEFAULT_QUALITY, quality_range

LOWEST_QUALITY, TOP_QUALITY = quality_range()

model_option = click.option("--model", "architecture", type=click.Choice(ARCHITECTURES), default=DEFAULT_ARCHITECTURE,
                            show_default=True, help="Model architecture.")
quality_option = click.option("--quality", type=click.IntRange(LOWEST_QUALITY, TOP_QUALITY), default=None,
                              help=f"Quality level, {LOWEST_QUALITY} (smallest file) to {TOP_QUALITY} (best); "
                                   f"default {DEFAULT_QUALITY}. See `sar-codec models`.")
device_option = click.option("--device", type=click.Choice(DEVICES), default="auto",
                             show_default=True, help="Where the model runs.")
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace an existing output (never an input).")
allocation_option = click.option(
    "--allocation", type=click.Choice(ALLOCATIONS), default="normalised", show_default=True,
    help="db: read the quality as the same trade-off in dB for every scene (a band spanning many dB gets a higher "
         "quality, a flat one a lower): fewer bits for the same error in dB over many scenes.")
reproducible_option = click.option(
    "--reproducible", is_flag=True,
    help="Same input, same bytes on every machine: a fixed-point encoder too (slower).")


def file_not_stdout(ctx: click.Context, param: click.Parameter, value):
    """Refuse ``-`` as an output: the outputs are seekable files, built beside their final path."""
    if value is not None and str(value) == "-":
        raise click.BadParameter("writing to standard output is not supported; give a file name.")
    return value


@contextlib.contextmanager
def progress_bar(label: str, enabled: bool = True) -> Iterator:
    """A click progress bar driven by a ``progress(fraction)`` callable; silent when not a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=1000, label=label, file=sys.stderr) as bar:
        state = {"done": 0}

        def update(fraction: float) -> None:
            n = int(fraction * 1000)
            if n > state["done"]:
                bar.update(n - state["done"])
                state["done"] = n

        yield update
