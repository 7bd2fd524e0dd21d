"""The committed notebooks: no outputs, exactly one ``parameters`` cell, parameters the profiles know."""

from __future__ import annotations

import ast

import nbformat
import pytest

from mrsisr.stages import training as training_stage
from mrsisr.study.profiles import STAGES, load_profile
from mrsisr.study.runner import INJECTED, NOTEBOOK_DIR

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
def test_one_parameters_cell_declaring_known_names(path):
    declared = declared_parameters(path)
    assert set(INJECTED) <= declared, f"{path.name}: the parameters cell must declare {INJECTED}"
    unknown = declared - set(load_profile("demo")) - set(INJECTED)
    assert not unknown, f"{path.name}: parameters not in profiles.yaml: {sorted(unknown)}"


def test_training_notebook_declares_every_parameter_of_its_stage():
    missing = set(training_stage.PARAMS) - declared_parameters(NOTEBOOK_DIR / "03_training.ipynb")
    assert not missing, f"03_training.ipynb does not declare {sorted(missing)}: the profile's values would be lost"
