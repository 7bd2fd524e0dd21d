"""End to end: the ci profile through ``mrsisr run`` and papermill (the session's one run, conftest.py).

Stages 01-02 run first, then 03-05, each as far as its notebook is in the repository.
"""

from __future__ import annotations

import json

import nbformat
import numpy as np
import pandas as pd
import pytest

from mrsisr.study.cache import current
from mrsisr.study.profiles import STAGES, load_profile

CI = load_profile("ci")


def test_progress_line_per_stage(ci_run):
    log = "\n".join(ci_run["logs"])
    for name in ci_run["stages"]:
        assert f"{name}: done in" in log, f"no progress line for stage {name}"


def test_executed_notebooks_carry_the_injected_parameters(ci_run):
    for stage in STAGES:
        if stage.name not in ci_run["stages"]:
            continue
        notebook = nbformat.read(ci_run["run_dir"] / "notebooks" / stage.notebook, as_version=4)
        papermill = notebook.metadata.papermill
        assert not papermill.exception, f"{stage.notebook} recorded an exception"
        assert papermill.parameters["profile"] == "ci"
        assert papermill.parameters["run_dir"] == str(ci_run["run_dir"].resolve())
        assert papermill.parameters["figures_dir"] == str(ci_run["figures_dir"].resolve())
        assert any("injected-parameters" in c.metadata.get("tags", []) for c in notebook.cells)
    record = json.loads((ci_run["run_dir"] / "run.json").read_text())
    assert set(record["stages"]) == set(ci_run["stages"])


def test_anatomy_stage_artifacts(ci_run):
    anatomy = current(ci_run["run_dir"], "anatomy").path
    subjects = pd.read_csv(anatomy / "subjects.csv")
    assert len(subjects) == CI["n_subjects"]
    assert set(subjects["grade"]) <= {"LGG", "HGG"}
    dice = pd.read_csv(anatomy / "dice.csv")
    assert set(dice["subject"]) == set(subjects["subject"])
    assert dice[["dice_gm", "dice_wm", "dice_csf"]].to_numpy().min() > 0.5
    with np.load(anatomy / f"{subjects['subject'][0]}.npz") as subject:
        fractions = subject["gm"] + subject["wm"] + subject["csf"]
        assert subject["flair"].shape == subject["labels"].shape == fractions.shape
        assert fractions.max() <= 1.0 + 1e-5
        assert set(np.unique(subject["labels"])) <= {0, 1, 2, 4}


def test_dataset_stage_artifacts(ci_run):
    if "synthesis" not in ci_run["stages"]:
        pytest.skip("notebook 02 is not in notebooks/ yet")
    dataset = current(ci_run["run_dir"], "dataset").path
    for split in ("train", "val", "test"):
        hr = np.load(dataset / f"{split}_hr.npy", mmap_mode="r")
        lr = np.load(dataset / f"{split}_lr.npy", mmap_mode="r")
        guide = np.load(dataset / f"{split}_guide.npy", mmap_mode="r")
        meta = pd.read_csv(dataset / f"{split}_meta.csv")
        n = len(meta)
        assert n > 0, f"{split} split is empty"
        assert hr.shape == (n, 128, 128) and guide.shape == (n, 128, 128) and lr.shape == (n, 32, 32)
        assert hr.dtype == lr.dtype == guide.dtype == np.float32
        assert hr.min() >= 0.0 and np.allclose(hr.reshape(n, -1).max(axis=1), 1.0)
        assert set(meta["kind"]) == {"tCho", "tCr", "NAA", "tCho/NAA", "tCho/tCr"}
    subjects = {split: set(pd.read_csv(dataset / f"{split}_meta.csv")["subject"]) for split in ("train", "val", "test")}
    assert not subjects["train"] & subjects["test"] and not subjects["val"] & subjects["test"]
    assert len(subjects["test"]) == CI["n_test_subjects"]


def test_figures_of_the_run(ci_run):
    by_stage = {
        "segmentation": ["fig1_top_anatomy.png"],
        "synthesis": ["fig1_bottom_maps.png"],
        "training": ["fig2_architecture.png", "fig_learning_curves.png"],
        "evaluation": ["fig3_examples.png"],
        "validation_7t": ["fig4_validation_7t.png"],
    }
    for name in [figure for stage in ci_run["stages"] for figure in by_stage[stage]]:
        path = ci_run["figures_dir"] / name
        assert path.is_file() and path.stat().st_size > 1000, f"figure {name} missing or empty"


def test_modelling_stage_artifacts(ci_run):
    if ci_run["stages"][-1] != "validation_7t":
        pytest.skip("notebooks 03-05 are not in notebooks/ yet")
    run_dir = ci_run["run_dir"]
    assert (run_dir / "model" / "model.keras").is_file()
    history = pd.read_csv(current(run_dir, "model").path / "history.csv")
    assert len(history) >= 1
    metrics = pd.read_csv(current(run_dir, "results").path / "metrics.csv")
    assert len(metrics) > 0
    assert (current(run_dir, "validation").path / "metrics.csv").is_file()
