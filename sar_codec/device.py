"""Where the model runs: the one place that turns the device option into ``"cpu"`` or ``"cuda"``."""

from __future__ import annotations

from typing import Literal, get_args

from .errors import InputError

Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = get_args(Device)


def check_device(device: str) -> Device:
    """Return ``device`` if it names a known device, else raise InputError (needs no torch)."""
    if device not in DEVICES:
        raise InputError(f"Unknown device {device!r}: use one of {', '.join(DEVICES)}.")
    return device  # type: ignore[return-value]


def pick_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is present, else ``cpu``; ``cuda`` without a GPU is an InputError."""
    import torch

    check_device(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("The device 'cuda' was asked for but no CUDA GPU is available; use the device 'cpu'.")
    return device
