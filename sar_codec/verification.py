"""Checking a batch output: that it is still the file the manifest recorded, and that it decodes to its input."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import ContainerError, SarCodecError
from .registry import file_sha256

MAX_PSNR = 100.0  # reported when a decode is identical to its input (JSON has no infinity)


def verify_against_input(inputs: Sequence[str], container: str | os.PathLike, device: str = "auto") -> float:
    """Decode ``container`` block by block and check it against its input; return the PSNR in the [0, 1] domain.

    Size, band count, georeferencing and the nodata mask must match exactly (else ContainerError); the PSNR
    is over valid samples, each mapped to [0, 1] with the container's own radiometric mapping.
    """
    from .device import pick_device
    from .metrics import psnr_from_mse
    from .radiometry import to_db
    from .scene import open_scene
    from .scene_container import decode_blocks, open_container
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


def output_still_good(output: Path, sha256: str | None) -> bool:
    """Whether an earlier run's output exists, has the SHA-256 recorded for it and passes ``verify_container``."""
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
