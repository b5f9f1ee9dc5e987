"""Where torch computes: the device a stage asked for, and how many CPU threads it uses."""

from __future__ import annotations

import os
import platform

import torch

from animegen.errors import PipelineError


class DeviceError(PipelineError, RuntimeError):
    """A device this machine does not have (e.g. ``cuda`` without CUDA)."""


def select_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU; ``cpu``, ``cuda`` or ``cuda:N`` are taken as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} was asked for but CUDA is not available on this machine")
    return device


def set_cpu_threads(n: int) -> int:
    """Use ``n`` torch CPU threads (0: every CPU this process may use), whatever OMP_NUM_THREADS says.

    Snakemake exports OMP_NUM_THREADS=<job threads> and DVC exports nothing; since float sums depend on
    the thread count, leaving it to the environment would make the two tools compute different bits.
    """
    n = n or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    return n


def setup(settings: dict, section: str) -> torch.device:
    """A params section's ``device`` with its ``cpu_threads`` torch threads: the one device setup of every
    stage that computes with torch.  A missing device is a :class:`DeviceError` naming ``<section>.device``."""
    try:
        device = select_device(settings["device"])
    except DeviceError as e:
        raise DeviceError(f"{section}.device: {e}") from None
    set_cpu_threads(settings["cpu_threads"])
    return device


def set_tf32(enabled: bool) -> None:
    """TF32 for float32 matmuls and convolutions on Ampere+ GPUs (study A trains and samples with it on);
    no effect on the CPU."""
    mode = "tf32" if enabled else "ieee"
    torch.backends.cuda.matmul.fp32_precision = mode
    torch.backends.cudnn.conv.fp32_precision = mode


def device_name(device: torch.device) -> str:
    """What computed, for the records beside a wall time: the GPU's name, or the CPU's model and the
    torch threads used (study A's budgets are per GPU: an RTX 3080)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"CPU {model} ({torch.get_num_threads()} threads)"
