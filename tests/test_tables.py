"""Evaluation stage: metrics table schema, Table 2, statistics, paper comparison, Figure 3, stage cache."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage, stats

from mrsisr.stages import evaluation
from mrsisr.study.cache import current, publish, stage_output

KINDS = ["tCho", "tCr", "NAA", "tCho/NAA", "tCho/tCr"]


def _split(n_subjects: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """Smooth random maps in [0, 1] (5 kinds per subject), their 4x4 block means, a guide and the meta table."""
    n = 5 * n_subjects
    hr = ndimage.gaussian_filter(np.random.default_rng(seed).random((n, 64, 64)), (0, 3, 3))
    hr -= hr.min(axis=(1, 2), keepdims=True)
    hr = (hr / hr.max(axis=(1, 2), keepdims=True)).astype(np.float32)
    lr = hr.reshape(n, 16, 4, 16, 4).mean(axis=(2, 4))
    meta = pd.DataFrame(
        {
            "subject": [f"sub-{i // 5:02d}" for i in range(n)],
            "grade": ["LGG" if i // 5 % 2 else "HGG" for i in range(n)],
            "slice": 40,
            "kind": KINDS * n_subjects,
            "scale": 1.0,
        }
    )
    return lr, hr.copy(), hr, meta


@pytest.fixture(scope="module")
def metrics() -> pd.DataFrame:
    lr, _, hr, meta = _split()
    noisy = np.clip(hr + np.random.default_rng(1).normal(0, 0.01, hr.shape), 0, 1)
    predictions = {"model": noisy} | evaluation.baseline_predictions(lr, ["nearest", "spline"])
    return evaluation.evaluate_predictions(predictions, hr, meta)


def test_metrics_table_schema(metrics: pd.DataFrame) -> None:
    assert list(metrics.columns) == [
        "subject", "slice", "kind", "grade", "method", "mse", "rmse", "psnr", "psnr_range", "ssim", "lpips",
    ]  # fmt: skip
    assert len(metrics) == 3 * 20
    assert metrics.groupby("method").size().to_dict() == {"model": 20, "nearest": 20, "spline": 20}
    assert metrics[["mse", "ssim", "lpips"]].notna().all().all()


def test_summary_table_means_and_tests(metrics: pd.DataFrame) -> None:
    summary = evaluation.summary_table(metrics)
    assert list(summary["method"]) == ["model", "nearest", "spline"]
    model, nearest = metrics[metrics.method == "model"], metrics[metrics.method == "nearest"]
    row = summary.set_index("method").loc["nearest"]
    assert row["psnr_mean"] == pytest.approx(nearest["psnr"].mean())
    assert row["psnr_sd"] == pytest.approx(nearest["psnr"].std(ddof=1))
    assert row["psnr_p_mw"] == pytest.approx(stats.mannwhitneyu(model["psnr"], nearest["psnr"]).pvalue)
    assert row["psnr_p_wilcoxon"] == pytest.approx(
        stats.wilcoxon(model["psnr"].to_numpy(), nearest["psnr"].to_numpy()).pvalue
    )
    assert np.isnan(summary.set_index("method").loc["model", "psnr_p_mw"])


def test_breakdowns_and_rendered_table(metrics: pd.DataFrame) -> None:
    by_grade = evaluation.summary_table(metrics, by=("grade",))
    assert set(by_grade["grade"]) == {"HGG", "LGG"} and by_grade["n"].sum() == len(metrics)
    by_kind = evaluation.summary_table(metrics, by=("kind",))
    assert len(by_kind) == 5 * 3
    rendered = evaluation.format_table(evaluation.summary_table(metrics))
    cell = rendered.loc["nearest", "PSNR (dB)"]
    assert cell.endswith("*†")  # 20 maps, a clear difference: both tests significant
    assert "(" in rendered.loc["model", "SSIM"] and not rendered.loc["model", "SSIM"].endswith("*")


def test_rank_methods_orders_best_first() -> None:
    summary = pd.DataFrame({"method": ["a", "b"], "mse_mean": [0.2, 0.1], "psnr_mean": [30.0, 20.0]})
    ranks = evaluation.rank_methods(summary, metrics=("mse", "psnr"))
    assert list(ranks["MSE"]) == ["b", "a"] and list(ranks["PSNR (dB)"]) == ["a", "b"]


def test_paper_comparison_has_the_papers_numbers(metrics: pd.DataFrame) -> None:
    table = evaluation.paper_comparison(evaluation.summary_table(metrics))
    assert table.loc["model", ("PSNR (dB)", "paper")] == "29.57"
    assert table.loc["spline", ("MSE", "paper")] == "0.00370 ± 0.00120"
    assert table.loc["nearest", ("LPIPS", "paper")] == "0.260"
    assert "doi:10.1177/03000605251330578" in evaluation.paper_table2()["citation"]


def test_write_results_files(metrics: pd.DataFrame, tmp_path: Path) -> None:
    evaluation.write_results(tmp_path, metrics)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(evaluation.RESULT_FILES)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "metrics.csv"), metrics, check_dtype=False)
    table2 = pd.read_csv(tmp_path / "table2.csv")
    assert {"method", "n", "psnr_mean", "psnr_sd", "psnr_p_mw", "lpips_p_wilcoxon"} <= set(table2.columns)
    statistics = pd.read_csv(tmp_path / "statistics.csv")
    assert set(statistics["breakdown"]) == {"all", "kind", "grade"}
    assert {"mw_p", "mw_rank_biserial", "wilcoxon_p", "wilcoxon_rank_biserial"} <= set(statistics.columns)


def test_bad_input() -> None:
    lr, _, hr, meta = _split(1)
    with pytest.raises(ValueError, match="no predictions"):
        evaluation.evaluate_predictions({}, hr, meta)
    with pytest.raises(ValueError, match="lacks the columns"):
        evaluation.evaluate_predictions({"nearest": hr}, hr, meta.drop(columns="grade"))
    with pytest.raises(ValueError, match="shape"):
        evaluation.evaluate_predictions({"nearest": lr}, hr, meta)


def test_examples_and_figure() -> None:
    lr, _, hr, meta = _split()
    chosen = evaluation.choose_examples(meta, 2, seed=0)
    assert chosen == evaluation.choose_examples(meta, 2, seed=0) and len(set(chosen)) == 2
    assert meta.iloc[chosen[0]]["grade"] != meta.iloc[chosen[1]]["grade"]
    predictions = evaluation.baseline_predictions(lr[chosen], ["nearest", "kspace"])
    matplotlib.use("Agg")
    fig = evaluation.plot_examples(hr[chosen], lr[chosen], predictions, meta.iloc[chosen])
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("error nearest\nMSE ") and "RMSE" in t for t in titles)
    matplotlib.pyplot.close(fig)


def _publish(run_dir: Path, stage: str) -> None:
    output = stage_output(run_dir, stage, {"fake": stage})
    output.mark_complete()
    publish(run_dir, output)


def test_stage_writes_publishes_and_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lr, guide, hr, meta = _split()
    calls = []
    fake_dataset = types.ModuleType("mrsisr.stages.synthesis")
    fake_dataset.load_split = lambda path, split, mmap=True: (lr, guide, hr, meta)
    fake_model = types.ModuleType("mrsisr.network.model")
    fake_model.load_model = lambda path: calls.append(path) or "model"
    fake_model.predict = lambda model, lr_maps, guide=None, batch_size=32: guide * 0.999  # a near-perfect "network"
    monkeypatch.setitem(sys.modules, "mrsisr.stages.synthesis", fake_dataset)
    monkeypatch.setitem(sys.modules, "mrsisr.network.model", fake_model)
    for stage in ("dataset", "model"):
        _publish(tmp_path, stage)
    output = evaluation.evaluate_test_split(tmp_path, ["nearest"])
    assert output.complete and current(tmp_path, "results").key == output.key
    for name in evaluation.RESULT_FILES:
        assert (tmp_path / "results" / name).is_file()
    metrics = pd.read_csv(tmp_path / "results" / "metrics.csv")
    assert (metrics.loc[metrics.method == "model", "psnr"] > 60).all()
    assert evaluation.evaluate_test_split(tmp_path, ["nearest"]).key == output.key and len(calls) == 1
    assert evaluation.evaluate_test_split(tmp_path, ["nearest", "spline"]).key != output.key
