"""Whether a job will use a GPU on this machine, decided without importing torch.

The workflow asks this while the DAG is built (and again in every cluster job, which
re-parses the Snakefile), so it must cost a directory listing, not a CUDA initialisation.
Rules request ``resources: gpu=gpu_slots(<device setting>)``; with profiles/default's
``resources: gpu=1`` a GPU workstation then runs one GPU job at a time while a CPU-only
machine is not limited. docs/cluster.md explains the choice.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: Where the NVIDIA kernel driver lists one folder per GPU.
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


def nvidia_gpu_visible(
    environ: Mapping[str, str] | None = None, driver_dir: Path = NVIDIA_GPUS
) -> bool:
    """True when the NVIDIA driver lists a GPU and CUDA_VISIBLE_DEVICES does not hide all.

    A CPU-only torch build on such a machine would still run on the CPU: the answer is about
    the machine, not about torch (set the device setting to ``cpu`` there).
    """
    environ = os.environ if environ is None else environ
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    try:
        return any(driver_dir.iterdir())
    except OSError:  # no driver (or no /proc): no GPU
        return False


def gpu_slots(
    device: str, environ: Mapping[str, str] | None = None, driver_dir: Path = NVIDIA_GPUS
) -> int:
    """GPUs a job with this device setting (``auto``, ``cpu``, ``cuda``, ``cuda:N``) uses
    here: 0 or 1. ``auto`` resolves like :func:`facedyn.runtime.resolve_device`, by
    :func:`nvidia_gpu_visible` instead of ``torch.cuda.is_available()``."""
    if device == "cpu":
        return 0
    if device.startswith("cuda"):
        return 1
    return int(nvidia_gpu_visible(environ, driver_dir))
