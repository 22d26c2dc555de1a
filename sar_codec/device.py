"""Where the model runs: the one place that turns the device option into ``"cpu"`` or ``"cuda"``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, get_args

from .errors import InputError

Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = get_args(Device)


def check_device(device: str) -> Device:
    """Return ``device`` if it names a known device, else raise InputError (needs no torch)."""
    if device not in DEVICES:
        raise InputError(f"Unknown device {device!r}: use one of {', '.join(DEVICES)}.")
    return device  # type: ignore[return-value]


def no_gpu_here() -> bool:
    """True where this machine has certainly no CUDA GPU: on Linux, no NVIDIA driver is loaded (neither
    ``/proc/driver/nvidia`` nor ``/dev/nvidiactl``, which GPU containers also carry). Lets ``auto`` mean the CPU
    without importing torch (1-2 s and about 500 MB), so that a decode can stay torch-free."""
    return sys.platform.startswith("linux") and not any(
        Path(p).exists() for p in ("/proc/driver/nvidia", "/dev/nvidiactl"))


def pick_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is present, else ``cpu``; ``cuda`` without a GPU is an InputError."""
    check_device(device)
    if device == "cpu" or (device == "auto" and no_gpu_here()):
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("The device 'cuda' was asked for but no CUDA GPU is available; use the device 'cpu'.")
    return device
