"""Stage caches keyed by their parameters.

Each stage writes its artifacts to ``<run_dir>/<stage>/<key>/`` where ``key`` is a hash of the
stage's parameters and of the keys of the stages it reads. A changed parameter therefore gives a new
folder and never reuses stale data. ``<run_dir>/<stage>/current.json`` names the folder that the last
successful run of the stage produced or reused; the next stage reads it with :func:`current`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrsisr.study.atomic import atomic_path, save_json

COMPLETE_MARKER = "COMPLETE"


@dataclass(frozen=True)
class StageOutput:
    """Where one stage's artifacts live.

    Attributes
    ----------
    stage : str
        Stage name, e.g. ``"anatomy"`` or ``"dataset"``.
    key : str
        Hex digest of the parameters and upstream keys (16 characters).
    path : pathlib.Path
        The folder holding the artifacts.
    params : dict
        The parameters the key was computed from.
    """

    stage: str
    key: str
    path: Path
    params: dict

    @property
    def complete(self) -> bool:
        """True when the stage finished writing this folder."""
        return (self.path / COMPLETE_MARKER).is_file()

    def mark_complete(self) -> None:
        """Record that every artifact of this folder has been written."""
        save_json(self.path / "params.json", {"stage": self.stage, "key": self.key, "params": self.params})
        save_json(self.path / COMPLETE_MARKER, {"key": self.key})


def stage_key(params: Mapping[str, Any], upstream: Sequence[str] = ()) -> str:
    """Return a stable 16-character hash of ``params`` and the upstream keys."""
    blob = json.dumps({"params": params, "upstream": list(upstream)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def stage_output(
    run_dir: str | os.PathLike, stage: str, params: Mapping[str, Any], upstream: Sequence[str] = ()
) -> StageOutput:
    """Return the keyed output folder of ``stage`` for ``params`` (created if missing).

    Parameters
    ----------
    run_dir : path-like
        The profile's run folder, ``runs/<profile>``.
    stage : str
        Stage name.
    params : mapping
        Every parameter that changes the stage's artifacts (JSON-serialisable).
    upstream : sequence of str
        Keys of the stage outputs this stage reads.
    """
    key = stage_key(params, upstream)
    path = Path(run_dir) / stage / key
    path.mkdir(parents=True, exist_ok=True)
    return StageOutput(stage=stage, key=key, path=path, params=dict(params))


def publish(run_dir: str | os.PathLike, output: StageOutput, exports: Sequence[str] = ()) -> None:
    """Point ``<run_dir>/<stage>/current.json`` at a complete stage output.

    Parameters
    ----------
    run_dir : path-like
        The profile's run folder.
    output : StageOutput
        A complete stage output.
    exports : sequence of str
        File names inside the output folder to copy to ``<run_dir>/<stage>/`` as well, so that the
        headline artifacts have fixed paths (``runs/demo/model/model.keras``).
    """
    if not output.complete:
        raise RuntimeError(f"stage {output.stage!r} output {output.path} is not complete")
    for name in exports:
        with atomic_path(Path(run_dir) / output.stage / name, suffix=Path(name).suffix) as tmp:
            shutil.copyfile(output.path / name, tmp)
    save_json(Path(run_dir) / output.stage / "current.json", {"key": output.key})


def current(run_dir: str | os.PathLike, stage: str) -> StageOutput:
    """Return the output that the last successful run of ``stage`` published.

    Raises
    ------
    FileNotFoundError
        If the stage has not run for this profile, naming the stage to run first.
    """
    pointer = Path(run_dir) / stage / "current.json"
    if not pointer.is_file():
        raise FileNotFoundError(
            f"no output of stage {stage!r} under {Path(run_dir)}: run that stage first "
            f"(e.g. `mrsisr run --stage {stage}`)"
        )
    info = json.loads(pointer.read_text())
    path = Path(run_dir) / stage / info["key"]
    if not (path / COMPLETE_MARKER).is_file():
        raise FileNotFoundError(f"stage {stage!r} output {path} is incomplete: run that stage again")
    params = json.loads((path / "params.json").read_text())["params"]
    return StageOutput(stage=stage, key=info["key"], path=path, params=params)
