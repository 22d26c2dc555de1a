"""Entry point: the `sar-codec` group; every error of ours becomes one line and a non-zero exit."""

from __future__ import annotations

import sys

import click

from sar_codec import __version__
from sar_codec.errors import SarCodecError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SarCodecError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        except OSError as exc:  # disk full, permission denied...
            where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
            click.echo(f"Error: {exc.strerror or exc}{where}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted; no output was written.", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sar-codec")
def cli() -> None:
    """Learned compression of Sentinel-1 SAR GRD scenes into georeferenced .sarc containers."""


def _register() -> None:
    from . import batch_commands, codec_commands, model_commands, quality_commands

    for module in (codec_commands, model_commands, batch_commands, quality_commands):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


if __name__ == "__main__":
    cli()
