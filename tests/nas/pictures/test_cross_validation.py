"""lwnas report over folds runs: the paired signed-rank test on the pooled per-case DSC reports a
planted difference as a win and a null one as a tie, with the cost ratios beside the verdict."""
import json

import numpy as np
import pandas as pd
import pytest

from nas.pictures.cross_validation import folds_tables, load_folds_run, verdict_lines
from nas.pictures.report import report_runs
from nas.search import save_genotype

CASES = 20


def _folds_run(root, name, case_dsc, params, **network):
    """A folds run as retrain.py --folds leaves it: 2 folds of 10 cases each, the top summary and
    the pooled per-case table, and the first fold's metrics.json naming the network."""
    run = root / name
    (run / "fold_0").mkdir(parents=True)
    (run / "fold_0" / "metrics.json").write_text(json.dumps({
        "dataset": "dsb2018", "dsc": float(np.mean(case_dsc[:10])), "params": params, "flops": 10 * params,
        "input_shape": [1, 16, 16], **network}))
    per_fold = [{"fold": fold, "cases": 10, "dsc": float(np.mean(case_dsc[fold * 10:(fold + 1) * 10])),
                 "params": params, "flops": 10 * params} for fold in (0, 1)]
    dsc = [row["dsc"] for row in per_fold]
    (run / "cv_metrics.json").write_text(json.dumps({
        "dataset": "dsb2018", "folds": 2, "fold_dirs": ["fold_0", "fold_1"], "per_fold": per_fold,
        "mean": {"dsc": float(np.mean(dsc)), "params": params, "flops": 10 * params},
        "sd": {"dsc": float(np.std(dsc, ddof=1)), "params": 0.0, "flops": 0.0}, "cases": CASES}))
    pd.DataFrame({"fold": [case // 10 for case in range(CASES)], "case": [f"c{case}" for case in range(CASES)],
                  "dsc": case_dsc}).to_csv(run / "cv_cases.csv", index=False)
    return run


@pytest.fixture
def runs(tmp_path, make_genotype):
    generator = np.random.default_rng(0)
    base = generator.uniform(0.6, 0.9, CASES)
    searched = base + 0.05 + generator.normal(0, 0.01, CASES)  # planted: 0.05 better on every case
    random = searched + generator.normal(0, 0.02, CASES)  # null: the same, plus noise
    genotype = save_genotype(tmp_path / "searched.json", make_genotype(), dataset="dsb2018")
    drawn = save_genotype(tmp_path / "random.json", make_genotype(), dataset="dsb2018", random_baseline={"seed": 1})
    return [_folds_run(tmp_path, "unet", base, 9_000_000, model="unet2d"),
            _folds_run(tmp_path, "searched", searched, 50_000, genotype=str(genotype)),
            _folds_run(tmp_path, "random", random, 52_000, genotype=str(drawn))]


def test_the_searched_network_wins_a_planted_difference_and_ties_a_null_one(runs):
    tables = folds_tables([load_folds_run(run) for run in runs], repeats=1)
    paired = tables["paired"].set_index("against")
    assert set(paired["network"]) == {"searched"}  # the searched run is the reference, wherever it is listed
    assert paired.loc["unet2d", "verdict"] == "wins" and paired.loc["unet2d", "p_value"] < 1e-3
    assert paired.loc["unet2d", "median_difference"] == pytest.approx(0.05, abs=0.01)
    assert paired.loc["random (cost-matched)", "verdict"] == "ties"
    assert paired["cases"].tolist() == [CASES, CASES] and paired["same_folds"].all()
    assert paired.loc["unet2d", "params_ratio"] == pytest.approx(50_000 / 9_000_000)
    lines = verdict_lines(tables["paired"])
    assert lines[0].startswith("- searched wins against unet2d (median +0.05") and "0.00556x its params" in lines[0]
    assert lines[1].startswith("- searched ties against random (cost-matched)")
    folds = tables["cv_folds"]
    assert len(folds) == 6 and set(folds["network"]) == {"unet2d", "searched", "random (cost-matched)"}


def test_the_report_of_folds_runs_states_the_verdicts_and_draws_per_fold(runs, tmp_path):
    _, paths = report_runs(runs, tmp_path / "report", repeats=1, echo=False)
    report = (tmp_path / "report" / "report.md").read_text()
    assert "- searched wins against unet2d" in report and "## paired" in report and "## cv_folds" in report
    assert {path.name for path in paths} >= {"report_paired.csv", "report_dsc_vs_cost.png", "report_cv_folds.png"}


def test_folds_runs_are_reported_apart_from_other_runs(runs, tmp_path):
    other = tmp_path / "single"
    other.mkdir()
    (other / "metrics.json").write_text(json.dumps({"dataset": "dsb2018", "model": "unet2d", "dsc": 0.5}))
    with pytest.raises(ValueError, match="not a folds run"):
        report_runs([runs[0], other], tmp_path / "report", repeats=1, echo=False)
