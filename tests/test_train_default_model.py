"""scripts/train_default_model.py: the summary of the test metrics it records in the packaged model's card."""

from __future__ import annotations

from conftest import evaluation_summary, load_script


def test_the_card_summarises_an_evaluation_table_as_the_stage_writes_it():
    table = evaluation_summary({"model": 3.0, "spline": 0.0, "nearest": -2.0}, n_subjects=4)
    summary = load_script("train_default_model").summarise_test_metrics(table)
    assert set(summary) == {"model", "spline"}
    assert summary["model"]["n_maps"] == 8 and summary["model"]["n_subjects"] == 4
    assert summary["model"]["psnr"] == table.set_index("method").loc["model", "psnr_mean"]
    assert set(summary["spline"]) == {"mse", "psnr", "ssim", "lpips", "n_maps", "n_subjects"}
