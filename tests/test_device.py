"""The device option: one function, one type, messages that name the option and not a CLI flag."""

from __future__ import annotations

import pytest
import torch

from sar_codec.device import DEVICES, check_device, pick_device
from sar_codec.errors import InputError


def test_devices_resolve_to_cpu_or_cuda():
    assert DEVICES == ("auto", "cpu", "cuda")
    assert pick_device("cpu") == "cpu"
    assert pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


def test_an_unknown_device_is_one_sentence_naming_the_choices():
    with pytest.raises(InputError, match="auto, cpu, cuda") as info:
        check_device("tpu")
    assert "--" not in str(info.value)


def test_cuda_without_a_gpu_names_the_device_not_a_flag(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="The device 'cuda'") as info:
        pick_device("cuda")
    assert "--" not in str(info.value)


def test_the_cpu_and_auto_without_an_nvidia_driver_need_no_torch(monkeypatch):
    import subprocess
    import sys

    from sar_codec import device

    code = ("import sys; from sar_codec.device import pick_device, no_gpu_here; "
            "print(pick_device('cpu'), no_gpu_here() and pick_device('auto'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    cpu, auto, imported = out.stdout.split()
    assert cpu == "cpu" and auto in ("cpu", "False") and imported == "False"
    monkeypatch.setattr(device, "no_gpu_here", lambda: False)  # a driver is loaded: auto asks torch
    assert pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
