"""Table 2 and Figure 3 from per-map metrics (mrsisr.scoring.tables, mrsisr.scoring.figures): pure functions."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage, stats

from mrsisr.scoring import tables
from mrsisr.scoring.baselines import interpolate_all
from mrsisr.scoring.figures import choose_examples, plot_figure3, plot_figure4
from mrsisr.scoring.metrics import METRIC_NAMES

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
    predictions = {"model": noisy} | interpolate_all(lr, ["nearest", "spline"])
    return tables.evaluate_predictions(predictions, hr, meta)


def test_metrics_table_schema(metrics: pd.DataFrame) -> None:
    assert list(metrics.columns) == [
        "subject", "slice", "kind", "grade", "method",
        "mse", "rmse", "psnr", "psnr_range", "psnr_authors", "ssim", "ssim_authors", "lpips",
    ]  # fmt: skip
    assert len(metrics) == 3 * 20
    assert metrics.groupby("method").size().to_dict() == {"model": 20, "nearest": 20, "spline": 20}
    assert metrics[["mse", "ssim", "lpips"]].notna().all().all()


def _subject_means(metrics: pd.DataFrame, method: str, metric: str) -> np.ndarray:
    return metrics[metrics.method == method].groupby("subject")[metric].mean().to_numpy()


def test_summary_table_means_and_subject_level_tests(metrics: pd.DataFrame) -> None:
    summary = tables.summary_table(metrics)
    assert list(summary["method"]) == ["model", "nearest", "spline"]
    nearest = metrics[metrics.method == "nearest"]
    row = summary.set_index("method").loc["nearest"]
    assert (row["n_subjects"], row["n_maps"]) == (4, 20)
    assert row["psnr_mean"] == pytest.approx(nearest["psnr"].mean())
    assert row["psnr_sd"] == pytest.approx(nearest["psnr"].std(ddof=1))
    expected = stats.wilcoxon(_subject_means(metrics, "model", "psnr"), _subject_means(metrics, "nearest", "psnr"))
    assert row["psnr_p"] == pytest.approx(expected.pvalue) == pytest.approx(2 / 2**4)  # 4 subjects, exact
    assert np.isnan(summary.set_index("method").loc["model", "psnr_p"])


def test_breakdowns_and_rendered_table(metrics: pd.DataFrame) -> None:
    by_grade = tables.summary_table(metrics, by=("grade",))
    assert set(by_grade["grade"]) == {"HGG", "LGG"} and by_grade["n_maps"].sum() == len(metrics)
    assert set(by_grade["n_subjects"]) == {2}
    by_kind = tables.summary_table(metrics, by=("kind",))
    assert len(by_kind) == 5 * 3 and set(by_kind["n_subjects"]) == {4}
    rendered = tables.format_table(tables.summary_table(metrics))
    assert rendered.index.name == "Method" and list(rendered.columns[:2]) == ["Subjects", "Maps"]
    assert {"MSE (×10⁻³)", "RMSE", "PSNR (dB)", "SSIM", "LPIPS"} <= set(rendered.columns)
    assert "PSNR, truth's range (dB)" not in rendered.columns  # every truth map spans [0, 1]: equal to PSNR
    caption = rendered.attrs["caption"]
    assert "PSNR with each truth map's own range equals PSNR here" in caption
    assert "n = 4 subjects" in caption and "fewer than 6 subjects no difference can reach p < 0.05" in caption
    assert not any(cell.endswith("*") for cell in rendered.to_numpy().ravel().astype(str))  # 4 subjects: p >= 0.125
    model = metrics[metrics.method == "model"]
    assert rendered.loc["model", "MSE (×10⁻³)"] == f"{model.mse.mean() * 1e3:.2f} ({model.mse.std() * 1e3:.2f})"
    by_kind_shown = tables.format_table(by_kind)
    assert by_kind_shown.index.names == ["Map kind", "Method"]


def test_format_table_marks_shows_missing_and_explains() -> None:
    summary = tables.summary_table(_metrics_of_subjects(8))
    summary.loc[summary.method == "nearest", "lpips_mean"] = np.nan
    rendered = tables.format_table(summary, metrics=("psnr", "lpips"))
    assert rendered.loc["nearest", "PSNR (dB)"].endswith("*")  # 8 subjects, every one better: p = 2 / 2**8
    assert rendered.loc["nearest", "LPIPS"].startswith("- (")
    assert "*: differs from the model at p < 0.05" in rendered.attrs["caption"]
    assert "n = 8 subjects" in rendered.attrs["caption"] and "fewer than 6" not in rendered.attrs["caption"]
    html = tables.styled(rendered).to_html()
    assert "<caption>" in html and "caption-side: top" in html
    assert tables.format_p(np.nan) == "-" and tables.format_p(3e-21) == "< 1e-4"
    assert (tables.format_p(0.00049), tables.format_p(0.0123), tables.format_p(1.0)) == ("0.0005", "0.012", "1.000")


def _metrics_of_subjects(n_subjects: int) -> pd.DataFrame:
    lr, _, hr, meta = _split(n_subjects)
    noisy = np.clip(hr + np.random.default_rng(1).normal(0, 0.01, hr.shape), 0, 1)
    return tables.evaluate_predictions({"model": noisy} | interpolate_all(lr, ["nearest"]), hr, meta)


def test_compare_to_reference_tests_subjects_not_maps(metrics: pd.DataFrame) -> None:
    shuffled = metrics.sample(frac=1.0, random_state=0)  # pairing is by (subject, slice, kind), not by row order
    tests = tables.compare_to_reference(shuffled)
    assert list(tests.columns) == list(tables.STATISTICS_COLUMNS)
    assert set(tests["method"]) == {"nearest", "spline"} and set(tests["metric"]) == set(METRIC_NAMES)
    row = tests.set_index(["method", "metric"]).loc[("nearest", "psnr")]
    model = metrics[metrics.method == "model"].set_index(["subject", "slice", "kind"])["psnr"]
    nearest = metrics[metrics.method == "nearest"].set_index(["subject", "slice", "kind"])["psnr"].reindex(model.index)
    assert (row["n_subjects"], row["n_maps"]) == (4, 20)
    # the map-level test calls 20 maps of 4 subjects significant; over subjects, 4 values cannot be
    assert row["p_maps_mann_whitney"] == pytest.approx(stats.mannwhitneyu(model, nearest).pvalue)
    assert row["p_maps_mann_whitney"] < 1e-4
    assert row["p_subjects"] == pytest.approx(0.125)
    assert row["rank_biserial_subjects"] == 1.0 and row["mean_difference"] == pytest.approx(
        model.mean() - nearest.mean()
    )
    assert tests.set_index(["method", "metric"]).loc[("nearest", "mse"), "rank_biserial_subjects"] == -1.0
    by_kind = tables.compare_to_reference(metrics, by=("kind",))
    assert set(by_kind["kind"]) == set(KINDS) and (by_kind["n_subjects"] == 4).all() and (by_kind["n_maps"] == 4).all()
    with pytest.raises(ValueError, match="reference method 'unet' is not in the metrics table"):
        tables.compare_to_reference(metrics, reference="unet")


def test_summary_without_the_reference_has_no_tests(metrics: pd.DataFrame) -> None:
    summary = tables.summary_table(metrics[metrics.method != "model"])
    assert list(summary["method"]) == ["nearest", "spline"]
    assert summary[[f"{m}_p" for m in METRIC_NAMES]].isna().all().all()
    assert "*" not in "".join(tables.format_table(summary).to_numpy().ravel().astype(str))


def test_rank_methods_orders_best_first() -> None:
    summary = pd.DataFrame({"method": ["a", "b"], "mse_mean": [0.2, 0.1], "psnr_mean": [30.0, 20.0]})
    ranks = tables.rank_methods(summary, metrics=("mse", "psnr"))
    assert list(ranks["MSE"]) == ["b", "a"] and list(ranks["PSNR"]) == ["a", "b"] and ranks.index[0] == 1


def test_paper_comparison_has_the_papers_numbers_apart(metrics: pd.DataFrame) -> None:
    table = tables.paper_comparison(tables.summary_table(metrics))
    assert table.index.name == "Method"
    assert table.loc["model", ("PSNR (dB)", "paper")] == "29.57"
    assert table.loc["spline", ("MSE (×10⁻³)", "paper")] == "3.70 (1.20)"  # 0.0037 (SD 0.0012), never run together
    assert table.loc["nearest", ("LPIPS", "paper")] == "0.260"
    assert "MSE in units of 10⁻³" in table.attrs["caption"]
    assert "doi:10.1177/03000605251330578" in tables.paper_table2()["citation"]
    # the authors' PSNR differs from ours where predictions overshoot: then it is shown under PSNR
    overshoot = tables.summary_table(metrics).assign(psnr_authors_mean=lambda t: t["psnr_mean"] + 1)
    shown = tables.paper_comparison(overshoot)
    assert shown.loc["model", ("PSNR (dB)", "ours, authors' definition")] == f"{overshoot.psnr_mean.iloc[0] + 1:.2f}"
    summary = tables.summary_table(metrics).assign(method=["model", "unet", "spline"])
    assert tables.paper_comparison(summary).loc["unet", ("SSIM", "paper")] == "-"


def test_write_results_files(metrics: pd.DataFrame, tmp_path: Path) -> None:
    tables.write_results(tmp_path, metrics)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(tables.RESULT_FILES)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "metrics.csv"), metrics, check_dtype=False)
    table2 = pd.read_csv(tmp_path / "table2.csv")
    assert {"method", "n_subjects", "n_maps", "psnr_mean", "psnr_sd", "psnr_p", "psnr_authors_mean"} <= set(table2)
    statistics = pd.read_csv(tmp_path / "statistics.csv")
    assert list(statistics.columns) == list(tables.STATISTICS_COLUMNS)
    assert len(statistics) == 2 * len(METRIC_NAMES)  # one row per method and metric
    shown = tables.statistics_table(statistics)
    assert shown.index.names == ["Metric", "Compared with"]
    assert list(shown.columns) == [
        "Subjects", "Maps", "Model", "Method", "Difference", "p (subjects)", "Effect size r", "p (maps, Mann-Whitney)",
    ]  # fmt: skip
    metrics_shown = set(shown.index.get_level_values("Metric"))
    assert "PSNR, truth's range (dB)" not in metrics_shown and "PSNR (dB)" in metrics_shown
    assert shown.loc[("PSNR (dB)", "nearest"), "Subjects"] == 4
    assert shown.loc[("PSNR (dB)", "nearest"), "p (subjects)"] == "0.125"
    assert shown.loc[("PSNR (dB)", "nearest"), "p (maps, Mann-Whitney)"] == "< 1e-4"
    assert "treats every map as independent" in shown.attrs["caption"] and "n = 4 subjects" in shown.attrs["caption"]
    with pytest.raises(ValueError, match="older version, re-run the stage"):
        tables.statistics_table(statistics.rename(columns={"p_subjects": "wilcoxon_p"}))
    first = {name: (tmp_path / name).read_bytes() for name in tables.RESULT_FILES}
    tables.write_results(tmp_path, metrics)
    assert {name: (tmp_path / name).read_bytes() for name in tables.RESULT_FILES} == first  # deterministic


def test_bad_input() -> None:
    lr, _, hr, meta = _split(1)
    with pytest.raises(ValueError, match="no predictions"):
        tables.evaluate_predictions({}, hr, meta)
    with pytest.raises(ValueError, match="lacks the columns"):
        tables.evaluate_predictions({"nearest": hr}, hr, meta.drop(columns="grade"))
    with pytest.raises(ValueError, match="shape"):
        tables.evaluate_predictions({"nearest": lr}, hr, meta)
    with pytest.raises(ValueError, match="meta has 4 rows but truth has 5 maps"):
        tables.evaluate_predictions({"nearest": hr}, hr, meta.iloc[:4])


def test_examples_and_figure3() -> None:
    lr, _, hr, meta = _split()
    chosen = choose_examples(meta, 2, seed=0)
    assert chosen == choose_examples(meta, 2, seed=0) and len(set(chosen)) == 2
    first, second = meta.iloc[chosen[0]], meta.iloc[chosen[1]]
    assert first["grade"] != second["grade"] and first["kind"] != second["kind"]
    assert len(choose_examples(meta, len(meta), seed=1)) == len(meta)  # beyond distinct grades: the rest, seeded
    with pytest.raises(ValueError, match="cannot choose 0 examples"):
        choose_examples(meta, 0, seed=0)
    predictions = {"model": hr[chosen] + 0.2} | interpolate_all(lr[chosen], ["nearest", "kspace"])
    figure = {"truth": hr[chosen], "lowres": lr[chosen]} | {f"pred_{m}": p for m, p in predictions.items()}
    figure |= {column: meta[column].to_numpy()[chosen].astype(str) for column in ("subject", "kind", "grade")}
    fig = plot_figure3(figure, "ci: phantom test maps")
    assert fig.get_suptitle() == "ci: phantom test maps"
    assert len([ax for ax in fig.axes if ax.images]) == 2 * 2 * 4  # two rows per example, truth/input + 3 methods
    titles = [ax.get_title() for ax in fig.axes]
    assert [t for t in titles if t.startswith("MSE ")][0].split("\n")[1].startswith("RMSE ")
    assert titles[0] == f"truth\n{first['kind']}, {first['grade']}"
    assert f"input 32²\n{first['subject']}" in titles
    model_image = next(ax for ax in fig.axes if ax.get_title() == "model").images[0].get_array()
    assert model_image.max() <= 1.0  # shown clipped, as scored
    plt.close(fig)


def test_figure4_panels() -> None:
    kinds = np.array(["NAA", "tCr", "tCho"])
    reference = np.random.default_rng(0).random((3, 32, 32)).astype(np.float32)
    data = {"reference": reference, "lowres": reference[:, ::4, ::4], "guide": reference, "kinds": kinds}
    data |= {"pred_model": reference, "pred_spline": reference * 0.9, "pred_nearest": reference * 0.8}
    fig = plot_figure4(data, ["model", "spline", "nearest"], "STAND-IN")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:5] == ["FLAIR guide", "reference\nNAA", "model", "spline", "nearest"]
    assert titles[5:10] == ["input 32²\nNAA", "", "MSE 0\nRMSE 0.000", titles[8], titles[9]]  # a perfect prediction
    assert titles[10:12] == ["input 32²", "reference\ntCr"]
    plt.close(fig)
