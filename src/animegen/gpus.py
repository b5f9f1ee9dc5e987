"""One GPU per GPU stage on a machine with several.

Snakemake's ``--resources gpu=N`` counts GPUs but does not say which one a job gets, and DVC's queue
(``dvc queue start --jobs N``) runs experiments side by side in copies of the workspace: without help,
every GPU stage would use ``cuda`` (device 0).  So each GPU stage (the rules that declare ``gpu=1``)
claims a free GPU before torch starts and keeps it for its whole run:

* the GPUs are those ``CUDA_VISIBLE_DEVICES`` lists, else those ``nvidia-smi -L`` lists (nothing is
  imported that could start CUDA); ``ANIMEGEN_GPUS=N`` declares N instead (the tests' fake GPUs);
* with one GPU or none there is nothing to choose: nothing is claimed and the environment is left as
  it is.  That is also the SLURM path: the scheduler sets ``CUDA_VISIBLE_DEVICES`` to the one GPU it
  allocated;
* a GPU is claimed by an exclusive ``flock`` on ``gpu-<id>.lock`` in a lock folder shared by every
  workspace of the user on this machine (``ANIMEGEN_GPU_LOCKS``, default
  ``<tmp>/animegen-gpus-<uid>``), since GPUs belong to the machine, not to a workspace (DVC's queue
  runs each experiment in its own copy).  The lock file stays open until the process ends, so the
  kernel releases it however the process ends, SIGKILL included: a lock never outlives its holder;
* the claimed GPU becomes the process's only visible one (``CUDA_VISIBLE_DEVICES=<id>``, so ``cuda``
  means it) and its id goes into the stage's run record (``logs/runs/<stage>/<target>.json``, never
  into an output: outputs must be the same bytes on any GPU);
* when every GPU is taken (another workspace's jobs), the stage waits for one and says so.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Callable

from animegen.errors import PipelineError

ENV_COUNT = "ANIMEGEN_GPUS"
ENV_LOCKS = "ANIMEGEN_GPU_LOCKS"
_held: tuple[str, IO[str]] | None = None  # this process's GPU and its open lock file


class GpuError(PipelineError):
    """The GPU setting of the environment cannot be used (the message names the variable)."""


def visible_gpus() -> list[str]:
    """The ids of the GPUs a stage may claim, in order (see the module docstring)."""
    declared = os.environ.get(ENV_COUNT)
    if declared is not None:
        if not declared.strip().isdigit():
            raise GpuError(f"{ENV_COUNT}={declared!r}: expected the number of GPUs (a whole number >= 0)")
        return [str(i) for i in range(int(declared))]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip()]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(line for line in out.splitlines() if line.startswith("GPU "))]


def lock_folder() -> Path:
    return Path(os.environ.get(ENV_LOCKS) or Path(tempfile.gettempdir()) / f"animegen-gpus-{os.getuid()}")


def claim(log: Callable[[str], None] | None = None, poll_s: float = 0.5) -> str | None:
    """Claim a free GPU for the rest of this process and make it the only visible one; its id, or None
    (and nothing changed) with one GPU or none.  Waits while every GPU is taken.  Call it before torch
    starts CUDA."""
    global _held
    if _held is not None:
        return _held[0]
    gpus = visible_gpus()
    if len(gpus) <= 1:
        return None
    folder = lock_folder()
    folder.mkdir(parents=True, exist_ok=True)
    said = False
    while True:
        for gpu in gpus:
            f = open(folder / f"gpu-{gpu}.lock", "a+", encoding="utf-8")  # noqa: SIM115 - held until the process ends
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()} {' '.join(sys.argv[1:])}\n")  # who holds it, for a person looking
            f.flush()
            _held = (gpu, f)
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
            return gpu
        if not said and log is not None:
            log(f"all {len(gpus)} GPUs ({', '.join(gpus)}) are in use by other stages; waiting for one")
            said = True
        time.sleep(poll_s)
