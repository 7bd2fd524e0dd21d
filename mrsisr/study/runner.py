"""Execute the study's notebooks with papermill, stage by stage, into ``runs/<profile>/notebooks/``.

Every parameter is validated before the first stage starts. Each notebook receives ``profile``,
``run_dir`` and ``figures_dir`` (absolute paths) and the ``--set`` values of its own stage's parameters;
the notebook reads the rest from the profile (:class:`mrsisr.study.notebook.StagePage`). ``run.json``
records, per stage, the overrides it ran with, its effective parameters and the key of the cache output it
published. A failing cell stops the run with that cell's error.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import papermill
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from papermill.exceptions import PapermillExecutionError

from mrsisr.stages import STAGES, Stage, select_stages
from mrsisr.study.atomic import atomic_path, save_json
from mrsisr.study.cache import current, read_json
from mrsisr.study.profiles import load_profile, parse_overrides, stage_parameter_names

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
KERNEL_NAME = "python3"
CELL_TIMEOUT_S = 12 * 3600  # the paper profile trains for hours inside one cell
INJECTED = ("profile", "run_dir", "figures_dir")
RUN_RECORD = "run.json"


class _StageParametersAreDeclared(logging.Filter):
    """Drop papermill's "Passed unknown parameter" warning: a stage's parameters are declared in profiles.yaml,
    not in its notebook's parameters cell, and the notebook's StagePage reads them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Passed unknown parameter")


logging.getLogger("papermill").addFilter(_StageParametersAreDeclared())


def ensure_kernel() -> None:
    """Make the ``python3`` kernel start this interpreter (the project's virtual environment).

    A kernelspec is installed into ``sys.prefix`` when none resolves, or when the one found belongs
    to another prefix.
    """
    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        resource_dir_ok = Path(spec.resource_dir).resolve().is_relative_to(Path(sys.prefix).resolve())
    except NoSuchKernel:
        resource_dir_ok = False
    if not resource_dir_ok:
        from ipykernel.kernelspec import install

        install(prefix=sys.prefix, kernel_name=KERNEL_NAME)


def notebook_parameters(
    stage: Stage, notebook: Path, overrides: Mapping[str, Any], profile: str, run_dir: Path, figures_dir: Path
) -> dict[str, Any]:
    """Return the parameters to inject into ``notebook``: the run's paths and its stage's ``--set`` values.

    Raises
    ------
    ValueError
        If the notebook has no cell tagged ``parameters`` declaring ``profile``, ``run_dir`` and ``figures_dir``.
    """
    declared = papermill.inspect_notebook(str(notebook))
    missing = [name for name in INJECTED if name not in declared]
    if missing:
        raise ValueError(f"{notebook}: its cell tagged 'parameters' does not declare {', '.join(missing)}")
    own = set(stage_parameter_names(stage.name))
    chosen = {name: _injectable(value) for name, value in overrides.items() if name in own}
    return chosen | {"profile": profile, "run_dir": str(run_dir), "figures_dir": str(figures_dir)}


def _injectable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def execute_stage(stage: Stage, notebook: Path, output: Path, parameters: Mapping[str, Any]) -> None:
    """Run one notebook with papermill and write the executed copy to ``output`` atomically.

    On failure the executed copy is kept as ``<stem>.failed.ipynb`` beside ``output`` (and any older
    ``output`` removed, so that a stale success is never published).

    Raises
    ------
    RuntimeError
        If a cell fails: the message names the stage, the cell, the exception and the cell's source.
    """
    failed = output.with_name(output.stem + ".failed.ipynb")
    with atomic_path(output, suffix=".ipynb") as tmp:
        try:
            papermill.execute_notebook(
                str(notebook),
                str(tmp),
                parameters=dict(parameters),
                kernel_name=KERNEL_NAME,
                cwd=str(REPO_ROOT),
                execution_timeout=CELL_TIMEOUT_S,
                progress_bar=False,
            )
        except PapermillExecutionError as error:
            os.replace(tmp, failed)
            output.unlink(missing_ok=True)
            raise RuntimeError(
                f"stage {stage.name!r} ({notebook.name}) failed in cell {error.cell_index} of its executed copy "
                f"{failed}:\n{error.ename}: {error.evalue}\n"
                f"--- cell source ---\n{error.source}"
            ) from None
    failed.unlink(missing_ok=True)


def run_study(
    profile: str,
    stages: Sequence[str] | None = None,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    runs_root: str | os.PathLike = "runs",
    figures_dir: str | os.PathLike = "figures",
    notebook_dir: str | os.PathLike | None = None,
) -> Path:
    """Execute the study's notebooks for one profile.

    Parameters
    ----------
    profile : str
        Name of a profile in ``profiles.yaml`` (``ci``, ``demo``, ``paper``).
    stages : sequence of str, optional
        Stage names (or numbers such as ``"01"``) to run; all stages when empty.
    overrides : sequence of ``"key=value"`` strings or mapping, optional
        Parameter overrides (``--set``).
    runs_root : path-like
        Folder holding ``<profile>/``; every artifact of the run lives under ``runs_root/profile``.
    figures_dir : path-like
        Where the notebooks save their figures.
    notebook_dir : path-like, optional
        Folder of the source notebooks; ``notebooks/`` of the repository by default.

    Returns
    -------
    pathlib.Path
        The run folder ``runs_root/profile``.

    Raises
    ------
    ValueError
        For an unknown profile, stage or parameter (the message lists the valid ones).
    FileNotFoundError
        If a stage's notebook is missing.
    RuntimeError
        If a cell of a notebook fails.
    """
    if overrides is None or isinstance(overrides, Mapping):
        override_values = dict(overrides or {})
    else:
        override_values = parse_overrides(overrides)
    params = load_profile(profile, override_values)  # every value checked before any stage starts
    validated_overrides = {name: params[name] for name in override_values}
    selected = select_stages(stages)
    notebook_dir = Path(NOTEBOOK_DIR if notebook_dir is None else notebook_dir).resolve()
    missing = [s.notebook for s in selected if not (notebook_dir / s.notebook).is_file()]
    if missing:
        raise FileNotFoundError(f"notebook(s) missing in {notebook_dir}: {', '.join(missing)}")

    run_dir = (Path(runs_root) / profile).resolve()
    figures = Path(figures_dir).resolve()
    out_dir = run_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    ensure_kernel()

    remove_leftovers(run_dir)
    record = _read_record(run_dir)
    record.update(profile=profile, figures_dir=str(figures))
    for number, stage in enumerate(selected, start=1):
        notebook = notebook_dir / stage.notebook
        print(f"[{number}/{len(selected)}] {stage.name}: running {stage.notebook} ...", flush=True)
        start = time.perf_counter()
        injected = notebook_parameters(stage, notebook, validated_overrides, profile, run_dir, figures)
        execute_stage(stage, notebook, out_dir / stage.notebook, injected)
        elapsed = time.perf_counter() - start
        print(f"[{number}/{len(selected)}] {stage.name}: done in {elapsed:.1f} s", flush=True)
        record["stages"][stage.name] = {
            "notebook": stage.notebook,
            "seconds": round(elapsed, 1),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "overrides": {name: value for name, value in injected.items() if name not in INJECTED},
            "key": current(run_dir, stage.name).key,
        }
        save_json(run_dir / RUN_RECORD, record)
    return run_dir


def remove_leftovers(run_dir: Path) -> None:
    """Delete what killed runs leave behind: temporary notebook copies and empty stage cache folders.

    Incomplete cache folders that hold files are kept: training resumes from their checkpoints.
    """
    for tmp in (run_dir / "notebooks").glob(".*.tmp-*"):
        tmp.unlink(missing_ok=True)
    for stage in STAGES:
        for folder in (run_dir / stage.name).glob("*"):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def _read_record(run_dir: Path) -> dict[str, Any]:
    """Return the run record of ``run_dir`` (stage timings, figures folder, machine), new or updated."""
    path = run_dir / RUN_RECORD
    record = read_json(path) if path.is_file() else {}
    record.setdefault("stages", {})
    record["machine"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
    }
    return record
