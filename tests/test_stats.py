"""Significance tests and effect sizes against scipy and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mrsisr.scoring.stats import mann_whitney, subject_level_test, wilcoxon_signed_rank


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


def _clustered(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """8 subjects x 5 maps: the first method is 3 better on 5 subjects and 0.5 worse on 3, for all their maps."""
    rng = np.random.default_rng(seed)
    subjects = np.repeat(np.arange(8), 5)
    b = np.repeat(np.linspace(20, 21, 8), 5) + rng.normal(0, 0.05, 40)
    a = b + np.repeat([3, 3, 3, 3, 3, -0.5, -0.5, -0.5], 5) + rng.normal(0, 0.05, 40)
    return a, b, subjects


def test_subject_level_test_is_not_fooled_by_repeated_maps() -> None:
    a, b, subjects = _clustered()
    assert mann_whitney(a, b).p_value < 1e-3 and wilcoxon_signed_rank(a, b).p_value < 1e-3  # 40 maps "independent"
    result = subject_level_test(a, b, subjects)
    assert (result.n_subjects, result.n_maps) == (8, 40)
    # subject means: ranks 1-3 negative, 4-8 positive -> T- = 6; exact: 14 of the 2**8 sign patterns give
    # T- <= 6 (the empty set, {1}..{6}, {1,2}, {1,3}, {1,4}, {1,5}, {2,3}, {2,4}, {1,2,3}), two-sided doubles it
    assert result.p_value == pytest.approx(2 * 14 / 2**8)
    assert result.rank_biserial == pytest.approx((30 - 6) / 36)
    assert result.mean_difference == pytest.approx(np.mean(a) - np.mean(b))  # equal maps per subject
    assert result.mean_a == pytest.approx(np.mean(a))


def test_subject_level_test_averages_unequal_subjects_and_checks_lengths() -> None:
    a, b = np.array([1.0, 3.0, 10.0]), np.array([0.0, 0.0, 0.0])
    result = subject_level_test(a, b, np.array(["s1", "s1", "s2"]))
    assert result.mean_a == pytest.approx((2.0 + 10.0) / 2) and result.n_subjects == 2 and result.n_maps == 3
    assert result.p_value == pytest.approx(0.5)  # two subjects: the smallest two-sided p is 2 / 2**2
    with pytest.raises(ValueError, match="equal lengths"):
        subject_level_test(a, b, np.array(["s1", "s2"]))
