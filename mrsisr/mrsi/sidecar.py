"""The JSON sidecar written beside every upscaled map: where it came from and how far to trust it.

``NAA.nii.gz`` gets ``NAA.json`` (BIDS style): the mrsisr version and git commit, the input, guide and model
files with their sha256, the command line, the data-consistency error, the voxels clipped at 0, the
orientation, and a sentence saying that the values are derived by a network, not measured. It holds no
date, so the same inputs give the same sidecar.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import subprocess
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
DERIVED_NOTICE = (
    "These values are derived by a neural network from the input map (four-fold in-plane super-resolution); "
    "they are not measured, and detail finer than the input's voxels is the network's estimate."
)


def mrsisr_version() -> str:
    """The installed mrsisr version (package metadata), or ``"unknown"`` when it is not installed."""
    try:
        return importlib.metadata.version("mrsisr")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@functools.lru_cache(maxsize=4)
def git_commit(folder: str | os.PathLike = PACKAGE_ROOT) -> str | None:
    """The commit of the git checkout holding ``folder`` (with ``-dirty`` if it has changes), or None."""
    if not (Path(folder) / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if changes else commit


def sidecar_path(output: str | os.PathLike) -> Path:
    """The sidecar of an output map: ``NAA.nii.gz`` -> ``NAA.json``, ``NAA.nii`` -> ``NAA.json``."""
    output = Path(output)
    name = output.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return output.with_name(f"{name}.json")


def provenance() -> dict[str, Any]:
    """The mrsisr version and commit (``None`` when not run from a git checkout)."""
    return {"mrsisr_version": mrsisr_version(), "mrsisr_commit": git_commit()}
