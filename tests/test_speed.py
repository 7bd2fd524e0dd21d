"""The committed training-speed benchmark as notebook 03 reads it (mrsisr.network.speed)."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import pytest

from mrsisr.network.figures import plot_benchmark_curves
from mrsisr.network.speed import (
    BENCHMARK_RESULTS,
    benchmark_glue_values,
    benchmark_summary,
    benchmark_table,
    load_benchmark,
)


@pytest.fixture(scope="module")
def committed():
    results = load_benchmark()
    assert results is not None, f"the repository's benchmark results are missing: {BENCHMARK_RESULTS}"
    return results


def test_the_committed_benchmark_reads_into_a_table_a_summary_and_glue(committed):
    table = benchmark_table(committed)
    assert list(table.index) == ["baseline", committed["new_recipe"]]
    new = committed["recipes"][committed["new_recipe"]]
    assert table.loc[committed["new_recipe"], "final test PSNR (dB)"] == new["final_test_psnr"]
    summary = benchmark_summary(committed)
    assert committed["date"][:10] in summary and f"{committed['training_speedup']:.2f}x" in summary
    glued = benchmark_glue_values(committed)
    assert glued["benchmark_profile"] == committed["profile"]
    assert f"{committed['maps']['test']:,} test maps" in glued["benchmark_data"]


def test_the_benchmark_figure_draws_one_curve_per_recipe_and_the_reference(committed):
    figure = plot_benchmark_curves(committed)
    lines = figure.axes[0].get_lines()
    assert len(lines) == len(committed["recipes"]) + 1
    baseline_curve = committed["recipes"]["baseline"]["curve"]
    assert list(lines[0].get_ydata()) == [point["test_psnr"] for point in baseline_curve]
    plt.close(figure)


def test_missing_and_foreign_files(tmp_path):
    assert load_benchmark(tmp_path / "absent.json") is None
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json: not JSON"):
        load_benchmark(broken)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"recipes": {}}))
    with pytest.raises(ValueError, match="other.json: not a result of benchmarks/benchmark_model.py"):
        load_benchmark(other)
