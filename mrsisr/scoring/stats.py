"""Significance tests between two methods' per-map metrics, with effect sizes.

The test maps are not independent: each subject gives several maps (five map kinds of the same slices), so
a test over maps counts one subject's anatomy several times and overstates the evidence. The study's test
is :func:`subject_level_test`: average each method's metric over a subject's maps, then compare the two
methods' subject means with the paired Wilcoxon signed-rank test, over subjects. The map-level tests below
are kept for the comparison with the paper, which tested maps (Mann-Whitney U), and are labelled as such
wherever they are shown.

- Mann-Whitney U (two-sided), the paper's test: treats the two sets of maps as independent samples.
  Effect size: the rank-biserial correlation ``r = 2 U_a / (n_a n_b) - 1`` = P(a > b) - P(a < b)
  (ties count half), in [-1, 1]; positive when ``a`` tends to be larger.
- Wilcoxon signed-rank (two-sided): uses that both methods upscale the same maps (paired samples).
  Zero differences are dropped ("wilcox" convention). Effect size: the matched-pairs rank-biserial
  correlation ``r = (T+ - T-) / (T+ + T-)``, the signed ranks of |a - b| summed over the positive
  and negative differences; positive when ``a`` tends to be larger. The p-value is scipy's ``method="auto"``:
  exact for up to 50 pairs without ties or zero differences, an exhaustive permutation test for up to 13
  pairs with ties or zeros, the normal approximation otherwise. With ``n`` pairs the smallest two-sided
  p-value is ``2 / 2**n``: fewer than 6 subjects can never reach p < 0.05.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats


@dataclass(frozen=True)
class TestResult:
    """Outcome of one two-sample test.

    Attributes
    ----------
    statistic : float
        U of the first sample (Mann-Whitney) or W = min(T+, T-) (Wilcoxon).
    p_value : float
        Two-sided p-value.
    rank_biserial : float
        Effect size in [-1, 1], positive when the first sample tends to be larger.
    """

    statistic: float
    p_value: float
    rank_biserial: float


def _clean(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError(f"sample {name} is empty")
    if np.isnan(values).any():
        raise ValueError(f"sample {name} (length {values.size}) contains NaN")
    return values


def mann_whitney(a: np.ndarray, b: np.ndarray) -> TestResult:
    """Two-sided Mann-Whitney U test of samples ``a`` and ``b`` with the rank-biserial correlation."""
    a, b = _clean(a, "a"), _clean(b, "b")
    result = stats.mannwhitneyu(a, b, alternative="two-sided")
    u = float(result.statistic)
    return TestResult(statistic=u, p_value=float(result.pvalue), rank_biserial=2 * u / (a.size * b.size) - 1)


def wilcoxon_signed_rank(a: np.ndarray, b: np.ndarray) -> TestResult:
    """Two-sided Wilcoxon signed-rank test of paired samples with the matched-pairs rank-biserial correlation.

    When every difference is zero the samples are identical: ``p = 1`` and ``r = 0``.
    """
    a, b = _clean(a, "a"), _clean(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"paired samples need equal lengths, got {a.size} and {b.size}")
    differences = a - b
    nonzero = differences[differences != 0]
    if nonzero.size == 0:
        return TestResult(statistic=0.0, p_value=1.0, rank_biserial=0.0)
    ranks = stats.rankdata(np.abs(nonzero))
    positive, negative = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
    result = stats.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided")
    return TestResult(
        statistic=float(result.statistic),
        p_value=float(result.pvalue),
        rank_biserial=float((positive - negative) / (positive + negative)),
    )


@dataclass(frozen=True)
class SubjectTest:
    """Outcome of :func:`subject_level_test`.

    Attributes
    ----------
    n_subjects, n_maps : int
        Subjects tested (the sample size of the test) and the maps they hold.
    mean_a, mean_b : float
        Means over subjects of each subject's mean value (equal to the means over maps when every subject
        has as many maps).
    mean_difference : float
        ``mean_a - mean_b``.
    p_value : float
        Two-sided p-value of the Wilcoxon signed-rank test over the subject means.
    rank_biserial : float
        Matched-pairs rank-biserial correlation over subjects, positive when ``a`` tends to be larger.
    """

    n_subjects: int
    n_maps: int
    mean_a: float
    mean_b: float
    mean_difference: float
    p_value: float
    rank_biserial: float


def subject_level_test(a: np.ndarray, b: np.ndarray, subjects: np.ndarray) -> SubjectTest:
    """Paired Wilcoxon signed-rank test over subjects of two methods' per-map values.

    Parameters
    ----------
    a, b : ndarray, shape (N,)
        The two methods' metric on the same N maps, in the same order.
    subjects : ndarray, shape (N,)
        The subject of each map; each subject's maps are averaged into one value per method.

    Returns
    -------
    SubjectTest
        Sample sizes, subject-level means, their difference, the p-value and the effect size.
    """
    a, b = _clean(a, "a"), _clean(b, "b")
    subjects = np.asarray(subjects).reshape(-1)
    if not a.size == b.size == subjects.size:
        raise ValueError(f"a, b and subjects need equal lengths, got {a.size}, {b.size} and {subjects.size}")
    means = pd.DataFrame({"a": a, "b": b, "subject": subjects}).groupby("subject", sort=True)[["a", "b"]].mean()
    test = wilcoxon_signed_rank(means["a"].to_numpy(), means["b"].to_numpy())
    mean_a, mean_b = float(means["a"].mean()), float(means["b"].mean())
    return SubjectTest(
        n_subjects=len(means),
        n_maps=int(a.size),
        mean_a=mean_a,
        mean_b=mean_b,
        mean_difference=mean_a - mean_b,
        p_value=test.p_value,
        rank_biserial=test.rank_biserial,
    )
