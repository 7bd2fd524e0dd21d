"""The committed notebooks: one per stage, no outputs, a parameters cell that declares only the run's paths."""

from __future__ import annotations

import ast

import nbformat
import pytest

from mrsisr.stages import STAGES
from mrsisr.study.runner import INJECTED, NOTEBOOK_DIR

NOTEBOOKS = [NOTEBOOK_DIR / stage.notebook for stage in STAGES]


def test_every_stage_has_its_notebook_and_nothing_else_is_there():
    assert sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb")) == sorted(p.name for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {index} has outputs"
            assert cell.execution_count is None, f"{path.name}: cell {index} has an execution count"
    assert "papermill" not in notebook.metadata, f"{path.name}: committed from an executed copy"


def declared_parameters(path) -> set[str]:
    """The names assigned in the notebook's one cell tagged ``parameters``."""
    notebook = nbformat.read(path, as_version=4)
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: {len(cells)} cells tagged 'parameters', expected exactly one"
    return {
        target.id
        for node in ast.parse(cells[0].source).body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_declares_the_run_and_no_default(path):
    # the defaults live in profiles.yaml only; the page reads the profile and any injected values
    assert declared_parameters(path) == set(INJECTED)


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_title_is_numbered_and_the_page_runs_its_own_stage(stage):
    notebook = nbformat.read(NOTEBOOK_DIR / stage.notebook, as_version=4)
    assert notebook.cells[0].source.startswith(f"# {stage.number:02d} · {stage.title}")
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    assert f'StagePage("{stage.name}", globals())' in code
    assert code.count("page.run(") == 1
    for plumbing in ("runs/", ".csv", ".npz", "current(", "savefig("):
        assert plumbing not in code.replace('run_dir = "runs/demo"', ""), f"{stage.notebook} reaches into {plumbing}"
