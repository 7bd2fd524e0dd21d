"""Shared fixtures: tiny notebooks for the runner's tests, and ONE ci run (and book) per test session.

``make test`` runs the tests on two pytest-xdist workers (``-n 2 --dist loadgroup``). A session fixture runs once
per worker, so every test that uses the ci run or its book is sent to one worker (group ``ci_run``): the ci run
is still made once. (xdist's groups need pytest 8: pytest 9 ignores the node id xdist rewrites for them.)
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from mrsisr.scoring.tables import summary_table
from mrsisr.study.runner import REPO_ROOT

INJECTED_DEFAULTS = "profile = 'demo'\nrun_dir = 'runs/demo'\nfigures_dir = 'figures'\n"
BOOK_SOURCES = ("_config.yml", "_toc.yml", "book")
SHARED = REPO_ROOT.parent / "shared"


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Send every test that uses the session's ci run (or its book) to one xdist worker, and start the long
    tests first: the ci run's group, then the tests marked ``slow``, so the two workers end together."""
    for item in items:
        if {"ci_run", "ci_book"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("ci_run"))
    items.sort(key=lambda item: (not item.get_closest_marker("xdist_group"), not item.get_closest_marker("slow")))


def shared_folder(*parts: str) -> Path:
    """A folder of ``../shared`` (reference data, real BraTS samples); skips the test, naming it, when absent."""
    folder = SHARED.joinpath(*parts)
    if not folder.is_dir():
        pytest.skip(f"{folder} not found: this test needs the project's shared data beside the clone (CI has it)")
    return folder


def smooth_maps(n: int, seed: int, size: int = 128, sigma: float = 6.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A stand-in dataset: smooth random fields in [0, 1] (hr), their 4x4 block means (lr) and a guide (1 - hr)."""
    rng = np.random.default_rng(seed)
    hr = ndimage.gaussian_filter(rng.random((n, size, size)), sigma=(0, sigma, sigma))
    hr = (hr - hr.min(axis=(1, 2), keepdims=True)) / np.ptp(hr, axis=(1, 2), keepdims=True)
    lr = hr.reshape(n, size // 4, 4, size // 4, 4).mean(axis=(2, 4))
    return lr.astype(np.float32), (1.0 - hr).astype(np.float32), hr.astype(np.float32)


def evaluation_summary(offsets: dict[str, float], n_subjects: int, n_kinds: int = 2, seed: int = 0):
    """An evaluation summary (``table2.csv``) of per-map scores: per method, ``n_subjects`` x ``n_kinds`` maps with
    PSNR about 25 dB + the method's offset, SSIM 0.8 + offset / 100 and LPIPS 0.2 - offset / 100."""
    rng = np.random.default_rng(seed)
    rows = []
    for method, offset in offsets.items():
        for subject in range(n_subjects):
            for kind in range(n_kinds):
                psnr = 25 + offset + rng.normal()
                rows.append(
                    {"method": method, "subject": f"s{subject}", "kind": f"k{kind}", "slice": 1, "grade": "HGG",
                     "mse": 10 ** (-psnr / 10), "rmse": 10 ** (-psnr / 20), "psnr": psnr, "psnr_range": psnr,
                     "psnr_authors": psnr, "ssim": 0.8 + offset / 100, "ssim_authors": 0.8, "lpips": 0.2 - offset / 100}
                )  # fmt: skip
    return summary_table(pd.DataFrame(rows))


def write_notebook(path: Path, *cells: str) -> Path:
    """Write a notebook with a ``parameters`` cell declaring the run's paths, then the given code cells."""
    notebook = nbformat.v4.new_notebook()
    parameters_cell = nbformat.v4.new_code_cell(INJECTED_DEFAULTS)
    parameters_cell.metadata["tags"] = ["parameters"]
    notebook.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), parameters_cell]
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in cells]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def load_script(name: str):
    """Import ``scripts/<name>.py`` of the repository as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    """Run the ``mrsisr`` command in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "mrsisr.cli", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="session")
def ci_run(tmp_path_factory) -> dict:
    """Run every stage of the ci profile once per session through ``mrsisr run``.

    Returns a dict with ``runs_root``, ``run_dir``, ``figures_dir`` and the command's ``log``.
    """
    root = tmp_path_factory.mktemp("ci_run")
    runs_root, figures_dir = root / "runs", root / "figures"
    result = run_cli("run", "--profile", "ci", "--runs-root", str(runs_root), "--figures-dir", str(figures_dir))
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"mrsisr run --profile ci failed:\n{log[-8000:]}"
    return {"runs_root": runs_root, "run_dir": runs_root / "ci", "figures_dir": figures_dir, "log": log}


def copy_book_sources(root: Path) -> Path:
    """Copy the book's sources (configuration and prose pages) into ``root``, as the build reads them."""
    root.mkdir(parents=True, exist_ok=True)
    for name in BOOK_SOURCES:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("executed", "_build"))
        else:
            shutil.copyfile(source, root / name)
    return root


@pytest.fixture(scope="session")
def ci_book(ci_run, tmp_path_factory) -> Path:
    """Build the book once per session from the ci run, in a copy of the book's sources; return the HTML folder."""
    from mrsisr.study.book import build_book

    root = copy_book_sources(tmp_path_factory.mktemp("book"))
    return build_book("ci", ci_run["runs_root"], root=root)
