"""Build the Jupyter Book from an executed run: ``runs/<profile>/notebooks`` -> ``_build/html``.

The pages of the notebooks are the executed copies that ``mrsisr run`` wrote; the book never executes
anything itself (``execute_notebooks: "off"``). Before building, every executed notebook is checked
for a papermill exception, copied into ``book/executed/`` with display tags (the injected-parameters
cell removed, plumbing cells collapsed), and the run's figures and a summary of the run (profile,
stage timings, machine, package versions) are copied beside them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import nbformat

from mrsisr.mrsi.sidecar import git_commit
from mrsisr.stages import STAGES, Stage
from mrsisr.study.atomic import atomic_path, save_text
from mrsisr.study.cache import current, read_json
from mrsisr.study.profiles import declared_parameters
from mrsisr.study.runner import REPO_ROOT, RUN_RECORD

EXECUTED_DIR = Path("book") / "executed"
HTML_DIR = Path("_build") / "html"
# Tags the notebooks use -> tags the book's theme understands.
DISPLAY_TAGS = {
    "injected-parameters": "remove-cell",
    "parameters": "hide-input",
    "plumbing": "hide-input",
}
RAW_REPR = re.compile(r"&lt;(Figure size|matplotlib\.|Axes|AxesSubplot)")
VERSIONED_PACKAGES = ("tensorflow-cpu", "keras", "numpy", "scipy", "dipy", "scikit-image", "papermill", "jupyter-book")


def check_executed(path: Path) -> nbformat.NotebookNode:
    """Read an executed notebook and refuse one that papermill recorded as failed.

    Raises
    ------
    FileNotFoundError
        If the notebook does not exist.
    RuntimeError
        If papermill recorded an exception in it.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: executed notebook missing; run `mrsisr run` for this profile first")
    notebook = nbformat.read(path, as_version=4)
    papermill_meta = notebook.metadata.get("papermill", {})
    if papermill_meta.get("exception"):
        raise RuntimeError(f"{path}: the notebook failed when it was executed; fix it and run it again")
    if "parameters" not in papermill_meta:
        raise RuntimeError(f"{path}: not a papermill-executed notebook (no metadata.papermill.parameters)")
    return notebook


def check_consistency(run_dir: Path, record: dict, stages: Sequence[Stage] = STAGES) -> None:
    """Refuse a run whose pages would mix results of different inputs or parameters.

    Three checks, from the stage caches (not from timestamps): each page shows the cache output its stage
    last published; each stage was built from the outputs its upstream stages last published (re-running
    evaluation alone leaves the 7T validation valid, re-running training makes both stale, and a stage
    that reads a stale stage is stale too); and a parameter that several stages read (``seed``,
    ``methods``) has one value across them.

    Raises
    ------
    RuntimeError
        Naming what disagrees and the command that runs the stale stages again.
    """
    outputs = {stage.name: current(run_dir, stage.name) for stage in stages}
    problems, stale = [], []
    for stage in stages:
        shown = record["stages"].get(stage.name, {}).get("key")
        if shown != outputs[stage.name].key:
            problems.append(f"the page of {stage.name} shows output {shown}, not its current {outputs[stage.name].key}")
            stale.append(stage.name)
        for name in stage.upstream:
            if outputs[stage.name].upstream.get(name) != outputs[name].key or name in stale:
                problems.append(f"{stage.name} was built from an older {name} output")
                stale.append(stage.name)
                break
    seen: dict[str, tuple[str, object]] = {}
    declared = declared_parameters()
    for stage in stages:
        for name, value in outputs[stage.name].params.items():
            if name not in declared:
                continue
            first = seen.setdefault(name, (stage.name, value))
            if first[1] != value:
                problems.append(f"{first[0]} ran with {name}={first[1]!r} but {stage.name} with {name}={value!r}")
                stale.append(stage.name)
    if problems:
        rerun = " ".join(f"--stage {name}" for name in dict.fromkeys(s.name for s in stages if s.name in stale))
        raise RuntimeError(
            f"the run {run_dir} mixes results: {'; '.join(problems)}. Run "
            f"`mrsisr run --profile {run_dir.name} {rerun}` with the --set options you want, and build the book again"
        )


def tag_for_display(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Add the book's display tags (``remove-cell``, ``hide-input``) to the cells, per ``DISPLAY_TAGS``."""
    for cell in notebook.cells:
        tags = cell.metadata.setdefault("tags", [])
        for source_tag, display_tag in DISPLAY_TAGS.items():
            if source_tag in tags and display_tag not in tags:
                tags.append(display_tag)
    return notebook


def public_url(remote: str) -> str | None:
    """The web address of a git remote (``https://host/owner/repo``), or None for a local path or file URL.

    ``git@host:owner/repo.git`` and ``ssh://git@host/owner/repo`` become ``https://host/owner/repo``; user names,
    passwords and a trailing ``.git`` are dropped.
    """
    remote = remote.strip()
    scp = re.fullmatch(r"[\w.-]+@([\w.-]+):(?!/)(.+)", remote)
    if scp:
        host, path = scp.groups()
    else:
        url = re.fullmatch(r"(?:https?|ssh|git)://(?:[^@/]+@)?([\w.-]+)(?::\d+)?/(.+)", remote)
        if not url:
            return None
        host, path = url.groups()
    return f"https://{host}/{path.removesuffix('/').removesuffix('.git')}"


def source_sentence(folder: str | os.PathLike = REPO_ROOT) -> str:
    """Where the code of this book comes from, in MyST: the checkout's commit and its public address (from
    ``git remote get-url origin``), or why one is missing."""
    commit = git_commit(folder)
    if commit is None:
        return "Source: not a git checkout, so no commit is recorded."
    try:
        remote = subprocess.run(
            ["git", "-C", str(folder), "remote", "get-url", "origin"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        remote = ""
    url = public_url(remote)
    where = f"[{url}]({url})" if url else "a checkout without a public remote (`git remote get-url origin` names none)"
    return f"Source: commit `{commit}` of {where}."


def run_summary(record: dict) -> str:
    """Return a MyST snippet describing the run: the source commit, profile, each stage's overrides and time,
    machine, versions."""
    lines = [
        source_sentence(),
        "",
        f"Profile **{record['profile']}**.",
        "",
        "| stage | notebook | overrides (`--set`) | wall time (s) | finished (UTC) |",
        "|---|---|---|---:|---|",
    ]
    total = 0.0
    for stage in STAGES:
        info = record["stages"].get(stage.name)
        if info:
            total += info["seconds"]
            overrides = ", ".join(f"`{k}={v}`" for k, v in info.get("overrides", {}).items()) or "none"
            lines.append(
                f"| {stage.name} | {info['notebook']} | {overrides} | {info['seconds']:.1f} | {info['finished']} |"
            )
    lines += [f"| **all** | | | **{total:.1f}** | |", ""]
    machine = record.get("machine", {})
    lines.append(
        f"Machine: {machine.get('platform', '?')}, {machine.get('cpus', '?')} CPU cores, "
        f"Python {machine.get('python', '?')}, Keras backend `{machine.get('keras_backend', '?')}`."
    )
    versions = []
    for package in VERSIONED_PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    lines += ["", "Packages: " + ", ".join(versions) + "."]
    return "\n".join(lines) + "\n"


def stage_executed_copies(run_dir: Path, root: Path) -> Path:
    """Copy the run's executed notebooks, figures and summary into ``root/book/executed``.

    Returns
    -------
    pathlib.Path
        The ``book/executed`` folder.
    """
    record_path = run_dir / RUN_RECORD
    if not record_path.is_file():
        raise FileNotFoundError(f"{record_path}: no run record; run `mrsisr run --profile {run_dir.name}` first")
    record = read_json(record_path)
    notebooks = {stage.notebook: check_executed(run_dir / "notebooks" / stage.notebook) for stage in STAGES}
    check_consistency(run_dir, record)

    executed = root / EXECUTED_DIR
    if executed.exists():
        shutil.rmtree(executed)
    (executed / "figures").mkdir(parents=True)
    for name, notebook in notebooks.items():
        with atomic_path(executed / name, suffix=".ipynb") as tmp:
            nbformat.write(tag_for_display(notebook), tmp)
    figures_dir = Path(record["figures_dir"])
    for figure in sorted(figures_dir.glob("*.png")):
        shutil.copyfile(figure, executed / "figures" / figure.name)
    save_text(executed / "run_summary.md", run_summary(record))
    return executed


def build_problems(log: str) -> str:
    """Return the warnings and errors of a failed jupyter-book build log (its tail when none is marked)."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", log)
    lines = plain.splitlines()
    marked = [
        line
        if not line.startswith("Warning, treated as error")
        else f"{line} {lines[i + 1] if i + 1 < len(lines) else ''}"
        for i, line in enumerate(lines)
        if re.search(r"WARNING|ERROR|Warning, treated as error", line)
    ]
    return "\n".join(marked) if marked else plain[-6000:]


def find_raw_reprs(html_dir: Path) -> list[str]:
    """Return ``page: snippet`` for every HTML page that shows a raw object repr (``<Figure size ...>``)."""
    found = []
    for page in sorted(html_dir.rglob("*.html")):
        match = RAW_REPR.search(page.read_text(encoding="utf-8", errors="replace"))
        if match:
            found.append(f"{page.relative_to(html_dir)}: {match.group(0)}")
    return found


def build_book(profile: str, runs_root: str | os.PathLike = "runs", root: str | os.PathLike = REPO_ROOT) -> Path:
    """Build the book (HTML) from the executed notebooks of ``runs_root/profile``.

    Parameters
    ----------
    profile : str
        The profile whose run the book shows.
    runs_root : path-like
        Folder holding ``<profile>/notebooks/`` (written by :func:`mrsisr.study.runner.run_study`).
    root : path-like
        Folder with ``_config.yml``, ``_toc.yml`` and ``book/`` (the repository; tests use a copy).

    Returns
    -------
    pathlib.Path
        The folder of the HTML book, ``root/_build/html``.

    Raises
    ------
    FileNotFoundError
        If the run or one of its notebooks is missing.
    RuntimeError
        If a notebook failed, the build gives a warning, or a page shows a raw object repr.
    """
    root = Path(root).resolve()
    run_dir = (Path(runs_root) / profile).resolve()
    stage_executed_copies(run_dir, root)
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    command = [str(jupyter_book), "build", str(root), "--all", "--warningiserror", "--quiet"]
    print(f"building the book of profile {profile!r} ...", flush=True)
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"jupyter-book build failed (warnings count as errors):\n{build_problems(result.stdout + result.stderr)}"
        )
    html_dir = root / HTML_DIR
    raw = find_raw_reprs(html_dir)
    if raw:
        raise RuntimeError("pages show raw object reprs instead of figures:\n" + "\n".join(raw))
    print(f"book written to {html_dir / 'index.html'}", flush=True)
    return html_dir
