"""Tests of mrsisr.study.runner and the ``mrsisr run`` command, on tiny temporary notebooks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import write_notebook
from jupyter_client.kernelspec import KernelSpecManager

from mrsisr import cli
from mrsisr.stages import get_stage
from mrsisr.study import runner
from mrsisr.study.cache import current

RECORD_PARAMETERS = (
    "import json, pathlib\n"
    "pathlib.Path(run_dir).mkdir(parents=True, exist_ok=True)\n"
    "injected = {k: v for k, v in globals().items() if k in ('n_subjects', 'epochs', 'seed')}\n"
    "(pathlib.Path(run_dir) / (profile + '.json')).write_text(json.dumps(dict("
    "profile=profile, run_dir=run_dir, figures_dir=figures_dir, injected=injected)))"
)
PUBLISH = (
    "from mrsisr.study import cache\n"
    "output = cache.stage_output(run_dir, STAGE, {})\n"
    "output.mark_complete()\n"
    "cache.publish(run_dir, output)"
)


@pytest.fixture
def notebooks(tmp_path, monkeypatch) -> Path:
    """A notebooks folder with a passing 01 and 02 and a failing 03, used as the repository's notebooks."""
    folder = tmp_path / "notebooks"
    write_notebook(folder / "01_segmentation.ipynb", RECORD_PARAMETERS, "STAGE = 'segmentation'\n" + PUBLISH)
    write_notebook(folder / "02_synthesis.ipynb", "STAGE = 'synthesis'\n" + PUBLISH)
    write_notebook(folder / "03_training.ipynb", "ok = 1", "raise ValueError(f'bad profile {profile}')")
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", folder)
    return folder


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def test_notebook_gets_the_run_and_its_own_stages_overrides(notebooks, tmp_path, capsys):
    overrides = ["n_subjects=5", "epochs=5"]  # n_subjects is a segmentation parameter, epochs a training one
    run_dir = runner.run_study("ci", ["segmentation"], overrides, tmp_path / "runs", tmp_path / "figs")
    assert run_dir == (tmp_path / "runs" / "ci").resolve()
    seen = json.loads((run_dir / "ci.json").read_text())
    assert seen == {
        "profile": "ci",
        "run_dir": str(run_dir),
        "figures_dir": str((tmp_path / "figs").resolve()),
        "injected": {"n_subjects": 5},
    }
    executed = nbformat.read(run_dir / "notebooks" / "01_segmentation.ipynb", as_version=4)
    assert not executed.metadata.papermill.exception
    assert "epochs" not in executed.metadata.papermill.parameters
    out = capsys.readouterr().out
    assert "[1/1] segmentation: running 01_segmentation.ipynb" in out
    assert "[1/1] segmentation: done in" in out
    record = json.loads((run_dir / "run.json").read_text())
    assert record["profile"] == "ci"
    assert record["stages"]["segmentation"]["overrides"] == {"n_subjects": 5}
    assert record["stages"]["segmentation"]["key"] == current(run_dir, "segmentation").key
    assert _leftovers(run_dir / "notebooks") == []


def test_leftovers_of_killed_runs_are_removed(notebooks, tmp_path):
    run_dir = tmp_path / "runs" / "ci"
    (run_dir / "notebooks").mkdir(parents=True)
    (run_dir / "notebooks" / ".01_segmentation.ipynb.tmp-1234").write_text("{}")
    (run_dir / "training" / "0123456789abcdef").mkdir(parents=True)
    (run_dir / "training" / "fedcba9876543210" / "checkpoints").mkdir(parents=True)
    runner.run_study("ci", ["segmentation"], [], tmp_path / "runs", tmp_path / "figs")
    assert _leftovers(run_dir / "notebooks") == []
    assert not (run_dir / "training" / "0123456789abcdef").exists()
    assert (run_dir / "training" / "fedcba9876543210").is_dir()  # holds files: training resumes from it


def test_failing_cell_stops_the_run_with_the_cells_error(notebooks, tmp_path):
    runs = tmp_path / "runs"
    out_dir = runs / "ci" / "notebooks"
    out_dir.mkdir(parents=True)
    (out_dir / "03_training.ipynb").write_text("{}")  # a stale success must not survive a failure
    with pytest.raises(RuntimeError) as caught:
        runner.run_study("ci", ["02", "03", "01"], [], runs, tmp_path / "figs")
    message = str(caught.value)
    # cell 4 of the executed copy: markdown, parameters, injected parameters, "ok = 1", the failing cell
    assert "stage 'training' (03_training.ipynb) failed in cell 4 of its executed copy" in message
    assert "ValueError: bad profile ci" in message
    assert "raise ValueError(f'bad profile {profile}')" in message
    assert (out_dir / "02_synthesis.ipynb").is_file()
    assert (out_dir / "01_segmentation.ipynb").is_file()  # stages run in study order
    assert not (out_dir / "03_training.ipynb").exists()
    failed = nbformat.read(out_dir / "03_training.failed.ipynb", as_version=4)
    assert failed.metadata.papermill.exception is True
    assert _leftovers(out_dir) == []


def test_cli_exits_non_zero_and_prints_the_cells_error(notebooks, tmp_path, capsys):
    status = cli.main(
        [
            "run",
            "--profile",
            "ci",
            "--stage",
            "training",
            "--runs-root",
            str(tmp_path / "r"),
            "--figures-dir",
            str(tmp_path / "f"),
        ]
    )
    assert status == 1
    assert "ValueError: bad profile ci" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--profile", "fast"], "unknown profile 'fast'; valid profiles: ci, demo, paper"),
        (["--stage", "train"], "unknown stage 'train'; valid stages: segmentation, synthesis, training, evaluation"),
        (["--set", "epoch=3"], "unknown parameter(s) epoch in --set; valid parameters:"),
        (["--set", "epochs"], "--set expects name=value"),
        (["--set", "epochs=-1"], "parameter epochs=-1: must be greater than or equal to 1"),
        (["--set", "seed=1.5"], "parameter seed=1.5: must be a valid integer"),
        (["--set", "epochs=[1"], "the value is not a plain value"),
    ],
)
def test_cli_refuses_unknown_names_with_the_valid_list(notebooks, tmp_path, capsys, args, expected):
    status = cli.main(["run", *args, "--runs-root", str(tmp_path / "r"), "--figures-dir", str(tmp_path / "f")])
    assert status == 1
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # refused before anything ran


def test_missing_notebook_is_named(notebooks, tmp_path):
    with pytest.raises(FileNotFoundError, match="04_evaluation.ipynb"):
        runner.run_study("ci", ["evaluation"], [], tmp_path / "r", tmp_path / "f")


def test_notebook_without_parameters_cell_is_refused(tmp_path):
    notebook = tmp_path / "plain.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), notebook)
    with pytest.raises(ValueError, match="plain.ipynb: its cell tagged 'parameters' does not declare profile"):
        runner.notebook_parameters(get_stage("segmentation"), notebook, {}, "ci", tmp_path, tmp_path)


def test_python3_kernel_starts_this_environment():
    runner.ensure_kernel()
    spec = KernelSpecManager().get_kernel_spec(runner.KERNEL_NAME)
    assert Path(spec.resource_dir).resolve().is_relative_to(Path(sys.prefix).resolve())
