"""Paired comparison of two networks on the same cases: the Wilcoxon signed-rank test on
per-case scores (scipy), and a verdict a report can print: wins, ties or loses.

Two networks cross-validated on the same folds score every case once each, so their per-case
Dice scores pair up; the signed-rank test asks whether the differences lean one way more than
chance allows, without assuming they are normal (a handful of cases, bounded scores).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["PairedComparison", "compare_paired", "SIGNIFICANCE"]

#: Two-sided level below which a difference counts as a win or a loss.
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class PairedComparison:
    """``verdict`` is ``"wins"``, ``"loses"`` (the first network against the second) or
    ``"ties"``; ``cases`` counts the pairs scored by both (NaN pairs left out);
    ``median_difference`` is the median of first - second; ``p_value`` the two-sided
    signed-rank p (1.0 where every difference is 0 or no case pairs)."""

    verdict: str
    cases: int
    median_difference: float
    p_value: float

    def text(self) -> str:
        """One line for a report: ``wins (median +0.031, p=0.008, 12 cases)``."""
        if self.cases == 0:
            return "no case scored by both"
        return (f"{self.verdict} (median {self.median_difference:+.3f}, p={self.p_value:.3g}, "
                f"{self.cases} cases)")


def compare_paired(first: Mapping[str, float], second: Mapping[str, float],
                   significance: float = SIGNIFICANCE) -> PairedComparison:
    """Compare per-case scores (higher is better) of two networks on the cases both scored.

    Zero differences are left out of the ranks (Wilcoxon's own treatment); with fewer than
    six non-zero differences no two-sided p can fall below 0.05, and the verdict is a tie."""
    cases = sorted(case for case in set(first) & set(second)
                   if not (math.isnan(first[case]) or math.isnan(second[case])))
    differences = np.array([first[case] - second[case] for case in cases], dtype=np.float64)
    if not len(differences):
        return PairedComparison("ties", 0, math.nan, 1.0)
    median = float(np.median(differences))
    if not np.any(differences):
        return PairedComparison("ties", len(cases), median, 1.0)
    result = stats.wilcoxon(differences, zero_method="wilcox", alternative="two-sided")
    p_value = float(result.pvalue)
    nonzero = differences[differences != 0]
    ranks = stats.rankdata(np.abs(nonzero))
    leaning = ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()
    verdict = "ties" if p_value >= significance or leaning == 0 else ("wins" if leaning > 0 else "loses")
    return PairedComparison(verdict, len(cases), median, p_value)
