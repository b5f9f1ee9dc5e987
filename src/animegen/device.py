"""Where torch computes: the device a stage asked for, and how many CPU threads it uses."""

from __future__ import annotations

import os

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
