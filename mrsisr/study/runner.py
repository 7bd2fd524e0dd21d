"""Execute the study's notebooks with papermill, stage by stage, into ``runs/<profile>/notebooks/``.

Each notebook receives the parameters its ``parameters`` cell declares, with the values of the chosen
profile (``mrsisr/study/profiles.yaml`` plus ``--set`` overrides), and three injected ones: ``profile``,
``run_dir`` and ``figures_dir`` (absolute paths). A failing cell stops the run with that cell's error.
"""

from __future__ import annotations

import json
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

from mrsisr.study.atomic import atomic_path, save_json
from mrsisr.study.profiles import Stage, load_profile, parse_overrides, select_stages

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
KERNEL_NAME = "python3"
CELL_TIMEOUT_S = 12 * 3600  # the paper profile trains for hours inside one cell
INJECTED = ("profile", "run_dir", "figures_dir")
RUN_RECORD = "run.json"


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


def notebook_parameters(params: Mapping[str, Any], notebook: Path, profile: str, run_dir: Path,
                        figures_dir: Path) -> dict[str, Any]:
    """Return the parameters to inject into ``notebook``: those it declares, plus the injected ones.

    Raises
    ------
    ValueError
        If the notebook has no cell tagged ``parameters``.
    """
    declared = papermill.inspect_notebook(str(notebook))
    if not declared:
        raise ValueError(f"{notebook}: no cell tagged 'parameters' (or it declares nothing)")
    chosen = {name: params[name] for name in declared if name in params and name not in INJECTED}
    chosen.update(profile=profile, run_dir=str(run_dir), figures_dir=str(figures_dir))
    return chosen


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
    params = load_profile(profile, override_values)
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

    record = _read_record(run_dir)
    record.update(profile=profile, overrides=override_values, figures_dir=str(figures))
    for number, stage in enumerate(selected, start=1):
        notebook = notebook_dir / stage.notebook
        print(f"[{number}/{len(selected)}] {stage.name}: running {stage.notebook} ...", flush=True)
        start = time.perf_counter()
        execute_stage(stage, notebook, out_dir / stage.notebook,
                      notebook_parameters(params, notebook, profile, run_dir, figures))
        elapsed = time.perf_counter() - start
        print(f"[{number}/{len(selected)}] {stage.name}: done in {elapsed:.1f} s", flush=True)
        record["stages"][stage.name] = {
            "notebook": stage.notebook,
            "seconds": round(elapsed, 1),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        save_json(run_dir / RUN_RECORD, record)
    return run_dir


def _read_record(run_dir: Path) -> dict[str, Any]:
    """Return the run record of ``run_dir`` (stage timings, figures folder, machine), new or updated."""
    path = run_dir / RUN_RECORD
    record = json.loads(path.read_text()) if path.is_file() else {}
    record.setdefault("stages", {})
    record["machine"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
    }
    return record
