"""End to end: the ci profile through ``mrsisr run`` and papermill (the session's one run, conftest.py)."""

from __future__ import annotations

import json
import re

import nbformat
import numpy as np
import pandas as pd

from mrsisr.stages import STAGES
from mrsisr.study.cache import current
from mrsisr.study.profiles import load_profile

CI = load_profile("ci")
FIGURES = {
    "segmentation": ["fig1_top_anatomy.png"],
    "synthesis": ["fig1_bottom_maps.png", "figS_lowres_methods.png"],
    "training": ["fig2_architecture.png", "fig_learning_curves.png"],
    "evaluation": ["fig3_examples.png"],
    "validation_7t": ["fig4_validation_7t.png"],
    "beyond": ["fig_ablation.png", "fig_stress.png"],
}


def test_progress_line_per_stage(ci_run):
    for stage in STAGES:
        assert f"{stage.name}: done in" in ci_run["log"], f"no progress line for stage {stage.name}"


def test_executed_notebooks_carry_the_run_and_show_its_parameters(ci_run):
    record = json.loads((ci_run["run_dir"] / "run.json").read_text())
    assert set(record["stages"]) == {stage.name for stage in STAGES}
    for stage in STAGES:
        notebook = nbformat.read(ci_run["run_dir"] / "notebooks" / stage.notebook, as_version=4)
        papermill = notebook.metadata.papermill
        assert not papermill.exception, f"{stage.notebook} recorded an exception"
        assert papermill.parameters["profile"] == "ci"
        assert papermill.parameters["run_dir"] == str(ci_run["run_dir"].resolve())
        assert papermill.parameters["figures_dir"] == str(ci_run["figures_dir"].resolve())
        shown = "".join(
            str(output.get("data", {}).get("text/html", ""))
            for cell in notebook.cells
            for output in cell.get("outputs", [])
        )
        assert "this run" in shown and "profile ci" in shown, f"{stage.notebook} shows no parameter table"
        assert record["stages"][stage.name]["key"] == current(ci_run["run_dir"], stage.name).key
    training = nbformat.read(ci_run["run_dir"] / "notebooks" / "03_training.ipynb", as_version=4)
    table = next(
        o["data"]["text/html"]
        for c in training.cells
        for o in c.get("outputs", [])
        if "learning_rate_schedule" in str(o.get("data", {}).get("text/html", ""))
    )
    row = re.search(r">epochs</th>(.*?)</tr>", table, re.DOTALL).group(1)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
    assert cells[:3] == ["100", str(CI["epochs"]), str(CI["epochs"])]  # default, profile ci, this run


def test_segmentation_artifacts(ci_run):
    output = current(ci_run["run_dir"], "segmentation").path
    subjects = pd.read_csv(output / "subjects.csv")
    assert len(subjects) == CI["n_subjects"]
    assert set(subjects["grade"]) <= {"LGG", "HGG"}
    assert {"frac_gm", "frac_wm", "frac_csf"} <= set(subjects.columns)
    dice = pd.read_csv(output / "dice.csv")
    assert set(dice["subject"]) == set(subjects["subject"])
    assert dice[["dice_gm", "dice_wm", "dice_csf"]].to_numpy().min() > 0.5
    with np.load(output / f"{subjects['subject'][0]}.npz") as subject:
        fractions = subject["gm"] + subject["wm"] + subject["csf"]
        assert subject["flair"].shape == subject["labels"].shape == fractions.shape
        assert fractions.max() <= 1.0 + 1e-5
        assert set(np.unique(subject["labels"])) <= {0, 1, 2, 4}


def test_synthesis_artifacts(ci_run):
    dataset = current(ci_run["run_dir"], "synthesis").path
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
    for name in [figure for names in FIGURES.values() for figure in names]:
        path = ci_run["figures_dir"] / name
        assert path.is_file() and path.stat().st_size > 1000, f"figure {name} missing or empty"


def test_modelling_artifacts_have_the_stages_names(ci_run):
    run_dir = ci_run["run_dir"]
    assert (run_dir / "training" / "model.keras").is_file()
    assert len(pd.read_csv(current(run_dir, "training").path / "history.csv")) >= 1
    assert len(pd.read_csv(run_dir / "evaluation" / "metrics.csv")) > 0
    assert (current(run_dir, "validation_7t").path / "metrics.csv").is_file()
    assert sorted(p.name for p in run_dir.iterdir() if p.is_dir()) == sorted(["notebooks", *(s.name for s in STAGES)])
