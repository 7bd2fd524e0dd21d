"""Remove the cache folders of a run that its current outputs no longer use (``mrsisr clean``).

Every changed parameter gives a stage a new cache folder (:mod:`mrsisr.study.cache`), and the old ones stay
so that going back to a setting reuses them. Students who try many settings therefore collect gigabytes
under ``runs/<profile>/``. :func:`clean_run` keeps what the run uses and removes the rest:

- kept: each stage's current output (``current.json``), the output each page of the book shows
  (``run.json``), and every output these were built from (the ``upstream`` keys of their ``params.json``,
  followed to the first stage);
- kept: a stage's own sub-caches (e.g. ``beyond/variants/<key>/``) built only on kept outputs;
- kept: incomplete folders, since a killed training resumes from their checkpoints;
- removed: every other complete cache folder.

Do not clean a profile while ``mrsisr run`` is running on it.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mrsisr.study import cache
from mrsisr.study.runner import RUN_RECORD

#: A cache folder's name: the 16 hex characters of :func:`mrsisr.study.cache.stage_key`.
KEY_PATTERN = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class CacheFolder:
    """One keyed cache folder of a run.

    Attributes
    ----------
    stage : str
        The cache it belongs to, relative to the run folder: ``"training"`` or ``"beyond/variants"``.
    key : str
        Its key (the folder's name).
    path : pathlib.Path
        The folder.
    upstream : dict
        The keys of the outputs it was built from, by stage name (empty when it has no ``params.json``).
    complete : bool
        Whether its ``COMPLETE`` mark exists.
    size_bytes : int
        The total size of its files when it was found.
    """

    stage: str
    key: str
    path: Path
    upstream: dict
    complete: bool
    size_bytes: int


@dataclass(frozen=True)
class CleanReport:
    """What :func:`clean_run` removed (or, in a dry run, would remove) and kept.

    Attributes
    ----------
    removed : list of CacheFolder
        The unused complete folders.
    kept : list of CacheFolder
        The folders the run uses, and the incomplete ones.
    """

    removed: list[CacheFolder]
    kept: list[CacheFolder]

    @property
    def removed_bytes(self) -> int:
        """The size of the removed folders."""
        return sum(folder.size_bytes for folder in self.removed)


def cache_folders(run_dir: str | os.PathLike) -> Iterator[CacheFolder]:
    """Yield every keyed cache folder of ``run_dir``: ``<stage>/<key>/`` and ``<stage>/<cache>/<key>/``."""
    run_dir = Path(run_dir)
    for stage_dir in sorted(path for path in run_dir.iterdir() if path.is_dir()):
        for candidate in sorted(stage_dir.iterdir()):
            if not candidate.is_dir():
                continue
            if KEY_PATTERN.fullmatch(candidate.name):
                yield _cache_folder(run_dir, candidate)
            else:
                for sub in sorted(candidate.iterdir()):
                    if sub.is_dir() and KEY_PATTERN.fullmatch(sub.name):
                        yield _cache_folder(run_dir, sub)


def _cache_folder(run_dir: Path, path: Path) -> CacheFolder:
    params = path / cache.PARAMS_FILE
    upstream = cache.read_json(params).get("upstream", {}) if params.is_file() else {}
    return CacheFolder(
        stage=path.parent.relative_to(run_dir).as_posix(),
        key=path.name,
        path=path,
        upstream=upstream,
        complete=(path / cache.COMPLETE_MARKER).is_file(),
        size_bytes=sum(file.stat().st_size for file in path.rglob("*") if file.is_file()),
    )


def used_outputs(run_dir: str | os.PathLike, folders: list[CacheFolder]) -> set[tuple[str, str]]:
    """The (stage, key) pairs the run uses: current and shown outputs, what they were built from, their sub-caches.

    Parameters
    ----------
    run_dir : path-like
        The profile's run folder.
    folders : list of CacheFolder
        Its cache folders (:func:`cache_folders`).
    """
    run_dir = Path(run_dir)
    used = set()
    for pointer in run_dir.glob(f"*/{cache.POINTER}"):
        used.add((pointer.parent.name, cache.read_json(pointer)["key"]))
    record = run_dir / RUN_RECORD
    if record.is_file():
        for stage, entry in cache.read_json(record).get("stages", {}).items():
            if entry.get("key"):
                used.add((stage, entry["key"]))
    by_id = {(folder.stage, folder.key): folder for folder in folders}
    pending = list(used)
    while pending:  # what the used outputs were built from, back to the first stage
        folder = by_id.get(pending.pop())
        for upstream in folder.upstream.items() if folder else ():
            if upstream not in used:
                used.add(upstream)
                pending.append(upstream)
    for folder in folders:  # sub-caches built only on used outputs
        if "/" in folder.stage and folder.upstream and set(folder.upstream.items()) <= used:
            used.add((folder.stage, folder.key))
    return used


def clean_run(run_dir: str | os.PathLike, dry_run: bool = False) -> CleanReport:
    """Remove the complete cache folders of ``run_dir`` that its current outputs do not use.

    Parameters
    ----------
    run_dir : path-like
        The profile's run folder, ``runs/<profile>``.
    dry_run : bool
        Only report what would be removed.

    Returns
    -------
    CleanReport
        The removed (or removable) and the kept folders.

    Raises
    ------
    FileNotFoundError
        If ``run_dir`` is not a folder.
    ValueError
        If a ``current.json``, ``run.json`` or ``params.json`` cannot be read, naming the file.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run folder (run `mrsisr run` first, or check --runs-root)")
    folders = list(cache_folders(run_dir))
    used = used_outputs(run_dir, folders)
    removed = [f for f in folders if f.complete and (f.stage, f.key) not in used]
    kept = [f for f in folders if f not in removed]
    report = CleanReport(removed=removed, kept=kept)
    if not dry_run:
        for folder in removed:
            _remove(folder.path)
    return report


def _remove(path: Path) -> None:
    """Remove a folder so that an interruption never leaves it looking complete: its mark goes first."""
    (path / cache.COMPLETE_MARKER).unlink(missing_ok=True)
    shutil.rmtree(path)


def describe(report: CleanReport, dry_run: bool) -> str:
    """The lines ``mrsisr clean`` prints: each removed folder with its size, then the total."""
    verb = "would remove" if dry_run else "removed"
    lines = [f"{verb} {folder.path} ({_megabytes(folder.size_bytes)})" for folder in report.removed]
    incomplete = sum(not folder.complete for folder in report.kept)
    lines.append(
        f"{verb} {len(report.removed)} unused cache folder(s), {_megabytes(report.removed_bytes)}; "
        f"kept {len(report.kept)} ({incomplete} incomplete, kept so that a killed run resumes)"
    )
    return "\n".join(lines)


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
