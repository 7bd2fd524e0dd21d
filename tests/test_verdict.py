"""The verdict: gains signed so that positive means the better method wins, judged by the documented rule."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from mrsisr.scoring import verdict
from mrsisr.scoring.tables import paper_table2


def _summary(**methods: tuple[float, float, float]) -> pd.DataFrame:
    """A Table 2 summary from ``method=(psnr, ssim, lpips)`` means."""
    return pd.DataFrame(
        [{"method": m, "psnr_mean": p, "ssim_mean": s, "lpips_mean": lp} for m, (p, s, lp) in methods.items()]
    )


def _paper_summary() -> pd.DataFrame:
    paper = paper_table2()["methods"]
    return _summary(**{m: (v["psnr"], v["ssim"], v["lpips"]) for m, v in paper.items()})


def test_the_papers_own_table_reproduces_itself():
    table = verdict.gains(_paper_summary())
    assert list(table["status"]) == ["reproduced"] * 6
    assert verdict.verdict_sentence(table).startswith("The paper's claim is reproduced")
    row = table[(table["metric"] == "psnr") & (table["better"] == "model")].iloc[0]
    assert row["paper"] == pytest.approx(29.57 - 23.28)
    assert row["ours"] == pytest.approx(row["paper"])


def test_lpips_gain_is_a_reduction():
    table = verdict.gains(_summary(model=(30, 0.9, 0.10), spline=(25, 0.8, 0.20), nearest=(24, 0.7, 0.30)))
    lpips = table[table["metric"] == "lpips"].set_index("better")["ours"]
    assert lpips["model"] == pytest.approx(0.10)
    assert lpips["spline"] == pytest.approx(0.10)


@pytest.mark.parametrize(
    ("ours", "paper", "metric", "expected"),
    [
        (6.0, 6.29, "psnr", "reproduced"),
        (3.2, 6.29, "psnr", "reproduced"),  # within a factor of two
        (1.4, 6.29, "psnr", "smaller"),
        (13.0, 6.29, "psnr", "larger"),
        (-0.1, 6.29, "psnr", "not reproduced"),
        (0.0, 1.41, "psnr", "not reproduced"),
        (0.03, 0.01, "ssim", "reproduced"),  # 0.01 printed: anything up to 0.02, times two
        (0.05, 0.01, "ssim", "larger"),
        (math.nan, 0.09, "lpips", "not measured"),
    ],
)
def test_judge(ours, paper, metric, expected):
    assert verdict.judge(ours, paper, metric) == expected


def test_sentence_names_what_fails_and_what_differs_in_size():
    table = verdict.gains(
        _summary(model=(27.5, 0.834, 0.153), spline=(26.05, 0.823, 0.279), nearest=(23.68, 0.746, 0.259))
    )
    sentence = verdict.verdict_sentence(table)
    assert sentence.startswith("The paper's claim is not reproduced in full")
    assert "the cubic spline is not ahead of nearest neighbour on LPIPS" in sentence
    assert "PSNR gain over the cubic spline is smaller" in sentence


def test_ordering_kept_but_sizes_differ():
    table = verdict.gains(_summary(model=(25.0, 0.80, 0.15), spline=(24.0, 0.78, 0.20), nearest=(23.0, 0.77, 0.25)))
    assert verdict.verdict_sentence(table).startswith("The paper's ordering is reproduced")


def test_missing_method_is_not_measured_and_shown_as_dash():
    table = verdict.gains(_summary(model=(30, 0.9, 0.1), spline=(25, 0.8, 0.2)))
    assert set(table[table["better"] == "spline"]["status"]) == {"not measured"}
    shown = verdict.verdict_table(table)
    assert (shown.loc[shown.index.str.endswith("spline over nearest"), "this run"] == "-").all()
    assert (shown.loc[shown.index.str.endswith("model over spline"), "this run"] != "-").all()
    assert "not measured" in verdict.verdict_sentence(table)


def test_gain_values_are_named_for_glue():
    values = verdict.gain_values(verdict.gains(_paper_summary()))
    assert set(values) == {f"gain_{m}_{b}_{w}" for m in verdict.METRICS for b, w in verdict.COMPARISONS}


def test_level_sentence_says_higher_or_lower():
    sentence = verdict.level_sentence(_summary(model=(28.57, 0.9, 0.1), spline=(25.28, 0.8, 0.2)))
    assert "higher by 2.00 dB for the cubic spline" in sentence
    assert "lower by 1.00 dB for the network" in sentence


def test_a_summary_without_a_metric_is_refused():
    with pytest.raises(ValueError, match="lpips_mean"):
        verdict.gains(pd.DataFrame({"method": ["model"], "psnr_mean": [1.0], "ssim_mean": [0.5]}))


def test_plot_has_one_panel_per_metric_with_both_bars():
    fig = verdict.plot_verdict(verdict.gains(_paper_summary()), "title")
    try:
        assert len(fig.axes) == len(verdict.METRICS)
        assert all(len(ax.patches) == 2 * len(verdict.COMPARISONS) for ax in fig.axes)
    finally:
        plt.close(fig)
