"""Writing results so that nothing is lost: never onto a source, never two winners, never a leftover.

- :func:`check_not_source` refuses an output that is one of the files it is made from (same path once
  resolved, or the same file by ``os.path.samefile``: a hard link or a symbolic link), whatever ``--force``.
- :func:`write_exclusively` writes to a hidden temporary beside the output and moves it into place; without
  ``force`` the move is a hard link, which fails if the output appeared meanwhile, so of two concurrent
  writers exactly one wins. The temporary is removed on every failure.
- :func:`remove_stale_temporaries` removes the hidden temporaries of an output left by earlier runs that
  were killed (their process is gone).
- Operating-system failures (no permission, a directory in the way, disk full) become one sentence naming
  the output (:class:`OutputError`).
"""

from __future__ import annotations

import errno
import glob
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

TEMPORARY_MARK = ".tmp-"


class OutputError(OSError):
    """An output could not be written; the message is one sentence naming it."""


def _suffix(path: Path) -> str:
    return ".nii.gz" if path.name.lower().endswith(".nii.gz") else path.suffix


def temporary_path(dest: Path) -> Path:
    """A hidden temporary beside ``dest``: ``.<name>.tmp-<pid>-<random><suffix>`` (same format suffix)."""
    return dest.parent / f".{dest.name}{TEMPORARY_MARK}{os.getpid()}-{secrets.token_hex(4)}{_suffix(dest)}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(dest: str | os.PathLike) -> list[Path]:
    """Remove the hidden temporaries of ``dest`` whose writing process is gone; return them.

    Temporaries of a live process (a concurrent writer on this machine) are kept. Names without a process
    id (written by older versions through ``tempfile``) count as stale.
    """
    dest = Path(dest)
    pattern = str(dest.parent / f".{glob.escape(dest.name)}{TEMPORARY_MARK}*")
    removed = []
    for candidate in map(Path, glob.glob(pattern)):
        match = re.match(rf"\.{re.escape(dest.name)}{re.escape(TEMPORARY_MARK)}(\d+)-", candidate.name)
        if match and _process_alive(int(match.group(1))):
            continue
        candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` resolve to the same path or are the same file on disk."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def check_not_source(output: str | os.PathLike, sources: dict[str, str | os.PathLike | None]) -> None:
    """Raise ValueError if ``output`` is one of ``sources`` (role -> path; None entries are ignored).

    This holds even with ``--force``: overwriting the input or the guide would destroy the data.
    """
    for role, source in sources.items():
        if source is not None and same_file(output, source):
            raise ValueError(
                f"{output} is the {role} {source}: refusing to overwrite it (even with --force); choose another output"
            )


def describe_os_error(path: str | os.PathLike, error: OSError) -> OutputError:
    """One sentence for a failed write of ``path``: what the operating system said, naming the path."""
    reason = error.strerror or str(error)
    if isinstance(error, IsADirectoryError) or Path(path).is_dir():
        reason = "it is a directory"
    elif Path(path).parent.exists() and not Path(path).parent.is_dir():
        reason = f"{Path(path).parent} is not a folder"
    elif error.errno == errno.ENOSPC:
        reason = "no space left on the device"
    return OutputError(f"cannot write {path}: {reason}")


def write_exclusively(dest: str | os.PathLike, write: Callable[[Path], None], force: bool = False) -> Path:
    """Write ``dest`` through ``write(temporary_path)`` and move it into place; exclusively unless ``force``.

    Parameters
    ----------
    dest : path-like
        The file to create (its folder is created when missing).
    write : callable
        Writes the content to the path it is given (a hidden temporary with ``dest``'s suffix).
    force : bool
        Replace an existing ``dest``; otherwise the call fails if ``dest`` exists, also when another
        process created it while ``write`` ran.

    Raises
    ------
    FileExistsError
        ``dest`` exists (or appeared meanwhile) and ``force`` is False.
    OutputError
        The operating system refused the write (permission, directory, disk full, ...).
    """
    dest = Path(dest)
    if dest.is_dir():
        raise OutputError(f"cannot write {dest}: it is a directory")
    if dest.exists() and not force:
        raise FileExistsError(f"{dest} exists: pass --force to overwrite it")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise describe_os_error(dest, error) from error
    tmp = temporary_path(dest)
    try:
        write(tmp)
        if force:
            os.replace(tmp, dest)
        else:
            _link_exclusively(tmp, dest)
    except OutputError:
        raise
    except OSError as error:
        if isinstance(error, FileExistsError) and not force and dest.exists():
            raise FileExistsError(
                f"{dest} was created by another process meanwhile: pass --force to overwrite it"
            ) from None
        raise describe_os_error(dest, error) from error
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _link_exclusively(tmp: Path, dest: Path) -> None:
    """Make ``tmp``'s content appear at ``dest`` only if ``dest`` does not exist (atomic)."""
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # a filesystem without hard links: reserve the name with O_EXCL, then move the content onto it
        os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.replace(tmp, dest)
