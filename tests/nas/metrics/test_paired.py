"""The paired signed-rank comparison finds a planted difference and not a null one."""
import math

import numpy as np

from nas.metrics.paired import compare_paired


def _scores(seed, shift, cases=20):
    generator = np.random.default_rng(seed)
    base = generator.uniform(0.6, 0.9, cases)
    other = base + shift + generator.normal(0, 0.02, cases)
    return ({f"c{i}": float(v) for i, v in enumerate(other)}, {f"c{i}": float(v) for i, v in enumerate(base)})


def test_a_planted_difference_wins_or_loses():
    ours, theirs = _scores(0, 0.05)
    result = compare_paired(ours, theirs)
    assert result.verdict == "wins" and result.p_value < 1e-3 and result.cases == 20
    assert 0.03 < result.median_difference < 0.07
    assert compare_paired(theirs, ours).verdict == "loses"
    assert result.text().startswith("wins (median +0.0")


def test_a_null_difference_ties():
    ties = [compare_paired(*_scores(seed, 0.0)).verdict for seed in range(20)]
    assert ties.count("ties") >= 17  # about 1 in 20 crosses p < 0.05 by chance


def test_only_cases_scored_by_both_count():
    ours = {"a": 0.9, "b": math.nan, "c": 0.5, "d": 0.7}
    theirs = {"a": 0.9, "b": 0.1, "c": 0.5}
    result = compare_paired(ours, theirs)
    assert (result.verdict, result.cases, result.p_value) == ("ties", 2, 1.0)
    assert compare_paired({}, {}).text() == "no case scored by both"
    few = compare_paired({str(i): 1.0 for i in range(5)}, {str(i): 0.0 for i in range(5)})
    assert few.verdict == "ties" and few.p_value > 0.05  # five cases cannot reach p < 0.05
