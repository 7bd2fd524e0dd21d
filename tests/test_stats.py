"""Significance tests and effect sizes against scipy and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mrsisr.scoring.stats import mann_whitney, wilcoxon_signed_rank


def test_mann_whitney_matches_scipy_on_known_samples() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.5, 1, 40), rng.normal(0, 1, 35)
    expected = stats.mannwhitneyu(a, b, alternative="two-sided")
    result = mann_whitney(a, b)
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    greater = sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    assert result.rank_biserial == pytest.approx(2 * greater / (a.size * b.size) - 1)


def test_mann_whitney_hand_computed_complete_separation() -> None:
    result = mann_whitney([4, 5, 6], [1, 2, 3])
    assert result.statistic == 9.0  # every pair favours a
    assert result.rank_biserial == 1.0
    assert result.p_value == pytest.approx(0.1, abs=1e-12)  # exact: 2 / C(6, 3)


def test_wilcoxon_matches_scipy_and_hand_computed_effect() -> None:
    a = np.array([1.0, 2.5, 3.0, 4.0, 7.0, 6.0])
    b = np.array([0.0, 3.0, 1.0, 1.0, 2.0, 6.0])
    # differences 1, -0.5, 2, 3, 5, 0 -> zero dropped; ranks of |d|: 2, 1, 3, 4, 5 -> T+ = 14, T- = 1
    result = wilcoxon_signed_rank(a, b)
    expected = stats.wilcoxon(a, b, zero_method="wilcox")
    assert result.statistic == pytest.approx(expected.statistic) == pytest.approx(1.0)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.rank_biserial == pytest.approx((14 - 1) / 15)


def test_wilcoxon_identical_samples_and_bad_input() -> None:
    same = wilcoxon_signed_rank([1.0, 2.0], [1.0, 2.0])
    assert (same.p_value, same.rank_biserial) == (1.0, 0.0)
    with pytest.raises(ValueError, match="equal lengths"):
        wilcoxon_signed_rank([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="empty"):
        mann_whitney([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        mann_whitney([np.nan], [1.0])
