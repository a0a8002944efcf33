"""``lwnas run``'s stages as a test calls them (tiny settings on the sample DSB2018 data): a part
runs with ``stages_to_run``, a second start skips what is done and says so, a stage needs the ones
before it, and changed settings or changed inputs are refused before anything runs."""
import json
import shutil
from pathlib import Path

import pytest

import nas.run
from nas.run.stage_record import read_record

EARLY = ["check", "plan", "search", "random"]
#: A search of seconds: two epochs (one of them architecture steps) of a one-cell-per-level supernet.
TINY_SEARCH = {"epochs": 2, "warmup_epochs": 1, "channels": 4, "layout": "1/1/1", "image_size": 32,
               "pictures": False, "num_workers": 0}


def run(out, **kwargs):
    settings = dict(device="cpu", progress=False, folds=2, search=TINY_SEARCH, random={"tolerance": 0.5},
                    retrain={"epochs": 1, "image_size": 32, "num_workers": 0})
    return nas.run.run_pipeline("dsb2018", None, out, commands=nas.run.COMMANDS, **{**settings, **kwargs})


@pytest.fixture(scope="module")
def early(tmp_path_factory):
    """A run directory where check, plan, search and random are done."""
    out = tmp_path_factory.mktemp("pipeline") / "run"
    run(out, stages_to_run=EARLY)
    return out


def _stamps(out):
    return {path: path.stat().st_mtime_ns for path in sorted(out.rglob("*")) if path.is_file()}


def test_the_early_stages_record_what_they_wrote(early):
    for stage in EARLY:
        record = read_record(early, stage)
        assert record.done and not record.missing_outputs(early), stage
    assert read_record(early, "retrain") is None and not (early / "retrain").exists()
    assert read_record(early, "search").settings == {
        "--search-seeds": 1, "--search-epochs": 2, "--search-warmup-epochs": 1, "--search-channels": 4,
        "--search-layout": "1/1/1", "--search-image-size": 32}  # pictures and workers may change
    plan = json.loads((early / "plan" / "plan.json").read_text())
    assert plan["cases"] == {"train": 6, "val": 2, "test": 4} and plan["retrain"]["networks"][-1] == "unet2d"
    # the search ran on the plan's cases
    searched = json.loads((early / "search" / "seed_0" / "splits.json").read_text())
    assert searched == json.loads((early / "plan" / "splits.json").read_text())
    choice = json.loads((early / "search" / "choice.json").read_text())
    assert choice["chosen"] == "seed_0" and (early / choice["genotype"]).is_file()
    assert json.loads((early / "random" / "genotype.json").read_text())["random_baseline"]["seed"] == 1


def test_a_second_start_skips_the_stages_done(early, capsys):
    stamps = _stamps(early)
    outcome = run(early, stages_to_run=EARLY)
    assert {stage: result["status"] for stage, result in outcome.items()} == dict.fromkeys(EARLY, "skipped")
    printed = capsys.readouterr().out
    assert "[3/7] search: done already (search/stage.json), skipped" in printed
    changed = [path for path, stamp in _stamps(early).items() if stamps.get(path) != stamp]
    assert changed == [early / "run.json"]


def test_changed_settings_are_refused_naming_them_before_anything_runs(early):
    stamps = _stamps(early)
    with pytest.raises(ValueError, match=r"search \(--search-epochs: 2 -> 3\), random \(--random-seed: 1 -> 2\)"):
        run(early, stages_to_run=["retrain"], search={**TINY_SEARCH, "epochs": 3}, random_seed=2)
    with pytest.raises(ValueError, match=r"check \(--skip-bad: false -> true\), plan \(--skip-bad: false -> true"):
        run(early, skip_bad=True)
    assert _stamps(early) == stamps
    run(early, stages_to_run=["random"], device="cpu", progress=True)  # where it runs may change


def test_a_stage_made_from_files_that_changed_since_is_refused(early, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(early, copy)
    genotype = copy / "search" / "seed_0" / "genotype.json"
    genotype.write_text(genotype.read_text() + "\n")
    with pytest.raises(ValueError, match=r"random: made from other files .*search/seed_0/genotype.json changed"):
        run(copy, stages_to_run=["random"])


def test_stages_runs_a_part_and_a_stage_needs_the_ones_before(tmp_path):
    out = tmp_path / "run"
    assert list(run(out, stages_to_run=["check", "plan"])) == ["check", "plan"]
    assert sorted(path.name for path in out.iterdir()) == ["check", "plan", "run.json"]
    with pytest.raises(ValueError, match="random needs the outputs of search, not done"):
        run(out, stages_to_run=["random"])


def test_bad_settings_are_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    for kwargs, message in (({"stages_to_run": ["search", "nonsense"]}, "expected some of check,plan"),
                            ({"folds": 1}, "--folds must be an integer >= 2"),
                            ({"retrain": {"lr": -1.0}}, "retrain settings: --lr must be a number > 0"),
                            ({"retrain": {"crop_size": 32}}, "--retrain-crop-size: applies to 3D data sets")):
        with pytest.raises(ValueError, match=message):
            run(out, **kwargs)
    assert not out.exists()


def test_a_directory_of_another_command_is_refused(tmp_path):
    (tmp_path / "log.csv").write_text("epoch\n")
    with pytest.raises(FileExistsError, match="holds files but no run.json of lwnas run"):
        run(tmp_path, stages_to_run=["check"])


def test_several_search_seeds_retrain_the_best_validation_score(tmp_path):
    from nas.run.pipeline_stages import validation_score

    out = tmp_path / "run"
    run(out, stages_to_run=["check", "plan", "search"], search_seeds=2, seed=3)
    choice = json.loads((out / "search" / "choice.json").read_text())
    scores = {name: validation_score(out / "search" / name / "log.csv") for name in ("seed_3", "seed_4")}
    assert choice["validation"] == scores
    best = max(scores.values())
    assert choice["chosen"] == min((name for name, score in scores.items() if score == best),
                                   key=lambda name: int(name.split("_")[1]))


def test_the_retrain_stage_trains_the_three_networks_on_the_searched_folds(tmp_path):
    """Which command trains which network, on which splits, and what resumes (recording commands)."""
    from nas.run.pipeline_stages import Pipeline, retrain
    from nas.train.distributed import DistributedContext

    calls = []

    def recorder(name):
        def command(what, dataset, data_root, out, **kwargs):
            calls.append((name, Path(what).name if name == "retrain_genotype" else what, Path(out).name, kwargs))
            if Path(out).name == "random":  # killed before its folds were scored
                return
            (Path(out) / "cv_metrics.json").parent.mkdir(parents=True, exist_ok=True)
            (Path(out) / "cv_metrics.json").write_text("{}")
        return command

    (tmp_path / "search" / "seed_0").mkdir(parents=True)
    (tmp_path / "search" / "choice.json").write_text('{"genotype": "search/seed_0/genotype.json"}')
    p = Pipeline(run_dir=tmp_path, dataset="brats", data_root=None, data_options={}, seed=0, folds=2,
                 search_seeds=(0,), random_seed=1, val_fraction=None, skip_bad=False, device="cpu", progress=False,
                 spatial_dims=3, baseline="unet3d", search={}, retrain={"epochs": 2, "model_kwargs": {"widths": 1}},
                 random={}, export={"fmt": "onnx"},
                 commands={name: recorder(name) for name in ("retrain_genotype", "retrain_model")},
                 context=DistributedContext(device="cpu"))
    retrain(p)
    assert [(name, what, out) for name, what, out, _ in calls] == [
        ("retrain_genotype", "genotype.json", "searched"), ("retrain_genotype", "genotype.json", "random"),
        ("retrain_model", "unet3d", "unet3d")]
    kwargs = [call[3] for call in calls]
    assert kwargs[0]["splits_file"] == tmp_path / "plan" / "splits.json"  # the searched run cuts the folds
    assert {str(k["splits_file"]) for k in kwargs[1:]} == {str(tmp_path / "retrain" / "searched" / "splits.json")}
    assert "model_kwargs" not in kwargs[0] and kwargs[2]["model_kwargs"] == {"widths": 1}
    assert all(k["folds"] == 2 and k["epochs"] == 2 and k["resume"] is False for k in kwargs)
    # again: the searched and unet3d folds are scored, random started its folds and continues
    (tmp_path / "retrain" / "random").mkdir(parents=True, exist_ok=True)
    (tmp_path / "retrain" / "random" / "splits.json").write_text(json.dumps(
        {"train": [], "val": [], "test": [], "folds": [{"train": [], "val": [], "test": []}]}))
    calls.clear()
    retrain(p)
    assert [(call[2], call[3]["resume"]) for call in calls] == [("random", True)]
