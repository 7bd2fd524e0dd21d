"""The whole study on real glioma anatomy: the ci profile on the three shared BraTS cases, every stage and the book."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import copy_book_sources, run_cli, shared_folder

from mrsisr.study.book import build_book
from mrsisr.study.cache import current

pytestmark = pytest.mark.slow  # started first on the xdist workers (conftest.py)


def test_ci_profile_runs_every_stage_on_real_brats_cases_and_builds_its_book(tmp_path):
    samples = shared_folder("data", "brats-samples")
    runs, figures = tmp_path / "runs", tmp_path / "figures"
    overrides = ["anatomy_source=brats", f"brats_root={samples}", "n_test_subjects=1", f"real_eval_root={samples}"]
    sets = [arg for item in overrides for arg in ("--set", item)]
    result = run_cli("run", "--profile", "ci", "--runs-root", str(runs), "--figures-dir", str(figures), *sets)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    run_dir = runs / "ci"
    subjects = pd.read_csv(current(run_dir, "segmentation").path / "subjects.csv")
    assert sorted(subjects["subject"]) == ["BraTS-GLI-00000-000", "BraTS2021_00006", "Brats17_2013_27_1"]
    assert set(subjects["source"]) == {"brats"} and subjects[["frac_gm", "frac_wm", "frac_csf"]].notna().all().all()
    assert pd.read_csv(current(run_dir, "segmentation").path / "dice.csv").empty  # no ground truth for real MRI
    evaluation = current(run_dir, "evaluation").path
    real = pd.read_csv(evaluation / "real" / "table2.csv")
    assert {"model", "model, no guide", "spline"} <= set(real["method"])
    record = json.loads((run_dir / "run.json").read_text())
    assert record["stages"]["segmentation"]["overrides"]["anatomy_source"] == "brats"
    html = build_book("ci", runs, root=copy_book_sources(tmp_path / "book"))
    page = (html / "book" / "executed" / "01_segmentation.html").read_text()
    assert "brats" in page and "no Dice" in page
