"""Significance tests between two methods' per-map metrics, with effect sizes.

- Mann-Whitney U (two-sided), the paper's test: treats the two sets of maps as independent samples.
  Effect size: the rank-biserial correlation ``r = 2 U_a / (n_a n_b) - 1`` = P(a > b) - P(a < b)
  (ties count half), in [-1, 1]; positive when ``a`` tends to be larger.
- Wilcoxon signed-rank (two-sided): uses that both methods upscale the same maps (paired samples).
  Zero differences are dropped ("wilcox" convention). Effect size: the matched-pairs rank-biserial
  correlation ``r = (T+ - T-) / (T+ + T-)``, the signed ranks of |a - b| summed over the positive
  and negative differences; positive when ``a`` tends to be larger.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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
