"""scripts/train_default_model.py: the summary of the test metrics it records in the packaged model's card."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from conftest import evaluation_summary

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_default_model.py"


def _script():
    spec = importlib.util.spec_from_file_location("train_default_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_card_summarises_an_evaluation_table_as_the_stage_writes_it():
    table = evaluation_summary({"model": 3.0, "spline": 0.0, "nearest": -2.0}, n_subjects=4)
    summary = _script().summarise_test_metrics(table)
    assert set(summary) == {"model", "spline"}
    assert summary["model"]["n_maps"] == 8 and summary["model"]["n_subjects"] == 4
    assert summary["model"]["psnr"] == table.set_index("method").loc["model", "psnr_mean"]
    assert set(summary["spline"]) == {"mse", "psnr", "ssim", "lpips", "n_maps", "n_subjects"}
