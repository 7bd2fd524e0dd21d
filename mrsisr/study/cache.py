"""Stage caches keyed by their parameters.

Each stage writes its artifacts to ``<run_dir>/<stage>/<key>/``, where ``key`` hashes the stage's
parameters, its cache version and the keys of the upstream outputs it read. A changed parameter therefore
gives a new folder and never reuses stale data. When a stage finishes, ``COMPLETE`` records the sha256 of
every file it wrote (sub-folders included); a reused folder is checked against them, and one whose files
changed on disk is rebuilt. ``<run_dir>/<stage>/current.json`` names the folder that the last successful
run of the stage produced or reused; the next stage reads it with :func:`current`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mrsisr.study.atomic import atomic_path, file_sha256, save_json

COMPLETE_MARKER = "COMPLETE"
PARAMS_FILE = "params.json"
POINTER = "current.json"

#: Folders whose files this process already checked against their ``COMPLETE`` record, with the files'
#: (size, modification time) at that check: an unchanged folder is not hashed again by the next stage.
_VERIFIED: dict[Path, tuple] = {}
#: How old (ns) a verified folder's newest file must be before its signature is trusted.
SETTLE_NS = 2_000_000_000


@dataclass(frozen=True)
class StageOutput:
    """Where one stage's artifacts live.

    Attributes
    ----------
    stage : str
        Stage name, e.g. ``"segmentation"``.
    key : str
        Hex digest of the parameters, the cache version and the upstream keys (16 characters).
    path : pathlib.Path
        The folder holding the artifacts.
    params : dict
        The parameters the key was computed from.
    upstream : dict
        The key of each upstream stage output this one was built from, by stage name.
    """

    stage: str
    key: str
    path: Path
    params: dict
    upstream: dict = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True when the stage finished writing this folder and none of its files changed since."""
        marker = self.path / COMPLETE_MARKER
        if not marker.is_file():
            return False
        recorded = json.loads(marker.read_text()).get("files", {})
        signature = _signature(marker, [self.path / name for name in recorded])
        if signature is not None and _VERIFIED.get(self.path) == signature:
            return True
        changed = [name for name, digest in recorded.items() if not _matches(self.path / name, digest)]
        if changed:
            print(
                f"cache {self.path}: {', '.join(changed)} changed on disk since the stage wrote it; rebuilding",
                flush=True,
            )
            marker.unlink()
            return False
        if signature is not None and _settled(signature):
            _VERIFIED[self.path] = signature
        return True

    def mark_complete(self) -> None:
        """Record the parameters and the sha256 of every file written: the folder is complete."""
        save_json(
            self.path / PARAMS_FILE,
            {"stage": self.stage, "key": self.key, "params": self.params, "upstream": self.upstream},
        )
        files = {
            p.relative_to(self.path).as_posix(): file_sha256(p)
            for p in sorted(self.path.rglob("*"))
            if p.is_file() and p.name != COMPLETE_MARKER
        }
        save_json(self.path / COMPLETE_MARKER, {"key": self.key, "files": files})


def _signature(marker: Path, files: list[Path]) -> tuple | None:
    """Size and modification time of the marker and of every recorded file (None when one is missing).

    A file rewritten in place with the same size within one tick of the file system's clock keeps its
    signature, so only signatures older than :data:`SETTLE_NS` are remembered (git's "racy clean" rule).
    """
    try:
        stats = [(str(path), path.stat()) for path in (marker, *files)]
        return tuple((name, stat.st_size, stat.st_mtime_ns, stat.st_ino) for name, stat in stats)
    except FileNotFoundError:
        return None


def _settled(signature: tuple) -> bool:
    """True when every file of ``signature`` was last modified more than :data:`SETTLE_NS` ago."""
    return max(mtime for _, _, mtime, _ in signature) < time.time_ns() - SETTLE_NS


def _matches(path: Path, digest: str) -> bool:
    return path.is_file() and file_sha256(path) == digest


def stage_key(params: Mapping[str, Any], upstream: Mapping[str, str]) -> str:
    """Return a stable 16-character hash of ``params`` and the upstream keys."""
    blob = json.dumps({"params": params, "upstream": dict(upstream)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def stage_output(
    run_dir: str | os.PathLike, stage: str, params: Mapping[str, Any], upstream: Mapping[str, StageOutput] = {}
) -> StageOutput:
    """Return the keyed output folder of ``stage`` for ``params`` (created if missing).

    Parameters
    ----------
    run_dir : path-like
        The profile's run folder, ``runs/<profile>``.
    stage : str
        Stage name.
    params : mapping
        Every parameter that changes the stage's artifacts (JSON-serialisable), with its cache version.
    upstream : mapping of str to StageOutput
        The upstream outputs this stage reads, by stage name.
    """
    upstream_keys = {name: output.key for name, output in upstream.items()}
    key = stage_key(params, upstream_keys)
    path = Path(run_dir) / stage / key
    path.mkdir(parents=True, exist_ok=True)
    as_recorded = json.loads(json.dumps(dict(params), default=str))  # as current() reads them back
    return StageOutput(stage=stage, key=key, path=path, params=as_recorded, upstream=upstream_keys)


def open_stage(run_dir: str | os.PathLike, stage: Any, params: Mapping[str, Any], version: int) -> StageOutput:
    """Return the output folder of ``stage`` for ``params``, keyed with the current outputs of its upstream stages.

    Parameters
    ----------
    run_dir : path-like
        The profile's run folder.
    stage : mrsisr.stages.Stage
        The stage (its ``name`` and ``upstream``).
    params : mapping
        The stage's effective parameters.
    version : int
        The stage's cache version, bumped when its code makes different artifacts from the same parameters.
    """
    upstream = {name: current(run_dir, name) for name in stage.upstream}
    return stage_output(run_dir, stage.name, {**params, "cache_version": version}, upstream)


def publish(run_dir: str | os.PathLike, output: StageOutput, exports: tuple[str, ...] = ()) -> None:
    """Point ``<run_dir>/<stage>/current.json`` at a complete stage output.

    Parameters
    ----------
    run_dir : path-like
        The profile's run folder.
    output : StageOutput
        A complete stage output.
    exports : tuple of str
        File names inside the output folder to copy to ``<run_dir>/<stage>/`` as well, so that the
        headline artifacts have fixed paths (``runs/demo/training/model.keras``).
    """
    if not output.complete:
        raise RuntimeError(f"stage {output.stage!r} output {output.path} is not complete")
    for name in exports:
        with atomic_path(Path(run_dir) / output.stage / name, suffix=Path(name).suffix) as tmp:
            shutil.copyfile(output.path / name, tmp)
    save_json(Path(run_dir) / output.stage / POINTER, {"key": output.key})


def current(run_dir: str | os.PathLike, stage: str) -> StageOutput:
    """Return the output that the last successful run of ``stage`` published.

    Raises
    ------
    FileNotFoundError
        If the stage has not run for this profile, naming the stage to run first.
    ValueError
        If the stage's ``current.json`` or ``params.json`` cannot be read, naming the file.
    """
    pointer = Path(run_dir) / stage / POINTER
    if not pointer.is_file():
        raise FileNotFoundError(
            f"no output of stage {stage!r} under {Path(run_dir)}: run that stage first "
            f"(e.g. `mrsisr run --stage {stage}`)"
        )
    key = read_json(pointer)["key"]
    path = Path(run_dir) / stage / key
    if not (path / COMPLETE_MARKER).is_file():
        raise FileNotFoundError(f"stage {stage!r} output {path} is incomplete: run that stage again")
    record = read_json(path / PARAMS_FILE)
    output = StageOutput(stage=stage, key=key, path=path, params=record["params"], upstream=record.get("upstream", {}))
    if not output.complete:
        raise FileNotFoundError(f"stage {stage!r} output {path} changed on disk: run that stage again")
    return output


def read_json(path: Path) -> dict:
    """Read a JSON record of the study; a damaged file is a ValueError naming it."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a readable JSON record ({error}); delete it and run the stage again") from None
