"""What a shipped artifact records of the run that made it: the command, the library versions."""

from __future__ import annotations

import importlib.metadata
import shlex
import sys

LIBRARIES = ("h5py", "keras", "nibabel", "numpy", "scipy", "tensorflow", "tensorflow-cpu", "jax", "torch")


def library_versions() -> dict[str, str]:
    """Versions of the installed libraries that shape a model or its scores (absent ones left out), and Python's."""
    versions = {"python": sys.version.split()[0]}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def recorded_command(script: str, argv: list[str]) -> str:
    """``python <script> <argv>`` without ``--runs-root`` (a folder of the machine that ran it)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--runs-root":
            skip = True
        elif not arg.startswith("--runs-root="):
            kept.append(arg)
    return shlex.join(["python", script, *kept])
