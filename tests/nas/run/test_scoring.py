"""A retrain on volumes sliced for 2D training (PROMISE12) is scored per case, the slices summed
back into their volume, and says so; the per-slice figure stays, named so."""
import json

import pandas as pd
import pytest

import data

#: end-to-end runs of real commands (still run by `make test`)
pytestmark = pytest.mark.slow


def test_sliced_volumes_are_scored_per_case_and_the_summary_states_it(retrained_2d):
    run = retrained_2d("promise12")
    metrics = json.loads((run / "metrics.json").read_text())
    test_cases = data.load_splits(run / "splits.json")["test"]
    assert metrics["scoring"] == "per case" and "empty in both" in metrics["metric_definitions"]
    assert metrics["test_cases"] == len(test_cases) < metrics["test_images"]  # cases, not slices
    assert "dsc_per_slice" in metrics and set(metrics["empty_per_class"]) == {"prostate"}
    cases = pd.read_csv(run / "test_cases.csv")
    assert sorted(cases["case"]) == sorted(test_cases)
    assert list(cases.columns) == ["case", "dsc/prostate", "iou/prostate"]
    assert metrics["dsc"] == pytest.approx(cases["dsc/prostate"].mean())  # every test case holds prostate
    log = pd.read_csv(run / "log.csv")
    assert {"val_dsc", "val_dsc_per_slice", "val_cases"} <= set(log.columns)
