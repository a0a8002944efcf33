"""``lwnas run``'s flags: each stage's own flags pass through with its prefix, the shared ones reach
the search and the retraining, and what run decides for every stage is not a stage's flag."""
import pytest

from nas import cli

BASE = ["run", "--dataset", "dsb2018", "--out", "RUN"]


@pytest.fixture
def calls(monkeypatch):
    import nas.run

    made = []
    monkeypatch.setattr(nas.run, "run_pipeline", lambda *args, **kwargs: made.append((args, kwargs)))
    return made


def test_flags_pass_through_to_their_stage(calls):
    assert cli.main([*BASE, "--image-size", "32", "--search-image-size", "16", "--search-epochs", "3",
                     "--retrain-lr", "0.01", "--workers", "0", "--random-tolerance", "0.2", "--random-tries", "9",
                     "--export-format", "torchscript", "--stages", "search,retrain", "--folds", "3",
                     "--search-no-pictures", "--option", "modality=MR"]) == 0
    (dataset, root, out), kwargs = calls[-1]
    assert (dataset, root, out) == ("dsb2018", None, "RUN")
    assert kwargs["search"] == {"image_size": 16, "epochs": 3, "num_workers": 0, "pictures": False}
    assert kwargs["retrain"] == {"image_size": 32, "lr": 0.01, "num_workers": 0}
    assert kwargs["random"] == {"tolerance": 0.2, "max_tries": 9}
    assert kwargs["export"] == {"fmt": "torchscript"}
    assert kwargs["stages_to_run"] == ["search", "retrain"] and kwargs["folds"] == 3
    assert kwargs["data_options"] == {"modality": "MR"} and kwargs["progress"] is True


def test_unset_flags_stay_unset(calls):
    assert cli.main(BASE) == 0
    kwargs = calls[-1][1]
    assert kwargs["search"] == kwargs["retrain"] == kwargs["random"] == kwargs["export"] == {}
    assert kwargs["folds"] is kwargs["search_seeds"] is kwargs["stages_to_run"] is None


@pytest.mark.parametrize("flag", ["--search-seed", "--search-out", "--search-dataset", "--search-splits",
                                  "--retrain-genotype", "--retrain-splits", "--retrain-seed", "--random-like"])
def test_what_run_decides_is_not_a_stage_flag(calls, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*BASE, flag, "1"])
    assert exit_info.value.code == 2
    assert f"unrecognized arguments: {flag}" in capsys.readouterr().err
    assert not calls
