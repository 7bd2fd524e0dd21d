"""The committed notebooks: no outputs, exactly one ``parameters`` cell, parameters the profiles know."""

from __future__ import annotations

import ast

import nbformat
import pytest

from mrsisr.profiles import STAGES, load_profile
from mrsisr.runner import INJECTED, NOTEBOOK_DIR

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_every_notebook_is_a_stage():
    assert {p.name for p in NOTEBOOKS} <= {s.notebook for s in STAGES}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {index} has outputs"
            assert cell.execution_count is None, f"{path.name}: cell {index} has an execution count"
    assert "papermill" not in notebook.metadata, f"{path.name}: committed from an executed copy"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_parameters_cell_declaring_known_names(path):
    notebook = nbformat.read(path, as_version=4)
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: {len(cells)} cells tagged 'parameters', expected exactly one"
    declared = {
        target.id
        for node in ast.parse(cells[0].source).body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    assert set(INJECTED) <= declared, f"{path.name}: the parameters cell must declare {INJECTED}"
    unknown = declared - set(load_profile("demo")) - set(INJECTED)
    assert not unknown, f"{path.name}: parameters not in profiles.yaml: {sorted(unknown)}"
