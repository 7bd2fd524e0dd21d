"""Shared fixtures: tiny notebooks for the runner's tests, and ONE ci run (and book) per test session."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mrsisr.study.profiles import STAGES
from mrsisr.study.runner import NOTEBOOK_DIR, REPO_ROOT

INJECTED_DEFAULTS = "profile = 'demo'\nrun_dir = 'runs/demo'\nfigures_dir = 'figures'\n"
BOOK_SOURCES = ("_config.yml", "_toc.yml", "book")


def write_notebook(path: Path, parameters: str, *cells: str) -> Path:
    """Write a notebook with one ``parameters`` cell (plus the injected names) and the given code cells."""
    notebook = nbformat.v4.new_notebook()
    parameters_cell = nbformat.v4.new_code_cell(INJECTED_DEFAULTS + parameters)
    parameters_cell.metadata["tags"] = ["parameters"]
    notebook.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), parameters_cell]
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in cells]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def run_cli(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    """Run the ``mrsisr`` command in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "mrsisr.cli", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def available(names: list[str]) -> list[str]:
    """The named stages whose notebooks are in the repository, in study order, stopping at the first missing one."""
    found = []
    for stage in STAGES:
        if stage.name in names:
            if not (NOTEBOOK_DIR / stage.notebook).is_file():
                break
            found.append(stage.name)
    return found


FOUNDATION = ["segmentation", "synthesis"]
MODELLING = ["training", "evaluation", "validation_7t"]


@pytest.fixture(scope="session")
def ci_run(tmp_path_factory) -> dict:
    """Run the ci profile once per session through ``mrsisr run``: stages 01-02, then 03-05.

    Notebooks not yet in the repository (and every stage after them) are left out. Returns a dict with
    ``runs_root``, ``run_dir``, ``figures_dir``, the ``stages`` that ran and the command ``logs``.
    """
    groups = [available(FOUNDATION)]
    if groups[0] == FOUNDATION:
        groups.append(available(MODELLING))
    groups = [group for group in groups if group]
    if not groups:
        pytest.skip("notebook 01 is not in notebooks/ yet")
    root = tmp_path_factory.mktemp("ci_run")
    runs_root, figures_dir = root / "runs", root / "figures"
    common = ["--profile", "ci", "--runs-root", str(runs_root), "--figures-dir", str(figures_dir)]
    logs, ran = [], []
    for group in groups:
        result = run_cli("run", *common, *[arg for name in group for arg in ("--stage", name)])
        logs.append(result.stdout + result.stderr)
        assert result.returncode == 0, f"mrsisr run {group} failed:\n{logs[-1][-8000:]}"
        ran += group
    return {
        "runs_root": runs_root,
        "run_dir": runs_root / "ci",
        "figures_dir": figures_dir,
        "stages": ran,
        "logs": logs,
    }


@pytest.fixture(scope="session")
def ci_book(ci_run, tmp_path_factory) -> Path:
    """Build the book once per session from the ci run, in a copy of the book's sources; return the HTML folder."""
    if ci_run["stages"] != FOUNDATION + MODELLING:
        pytest.skip(f"the book needs all five notebooks; only {ci_run['stages']} ran")
    from mrsisr.study.book import build_book

    root = tmp_path_factory.mktemp("book")
    for name in BOOK_SOURCES:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("executed", "_build"))
        else:
            shutil.copyfile(source, root / name)
    return build_book("ci", ci_run["runs_root"], root=root)
