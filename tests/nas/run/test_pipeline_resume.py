"""``lwnas run`` killed with SIGKILL in each of its stages, started again after each kill, ends
where an uninterrupted run ends: the same genotypes, the same fold weights and scores, the same
exported ensemble. Each kill is a real SIGKILL of the process, sent by itself at a fixed point
inside the stage (a function the stage calls is wrapped to kill on its Nth call whose arguments
name the marker), so every stage is interrupted, not the one a timer happens to hit."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from nas.run.stage_record import read_record
from nas.search import load_genotype

#: end-to-end runs of real processes (still run by `make test`)
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
#: The sample DSB2018 data, two folds, searches and retrainings of two epochs on 32x32 images.
TINY = ["--dataset", "dsb2018", "--device", "cpu", "--workers", "0", "--no-progress", "--folds", "2",
        "--search-epochs", "2", "--search-warmup-epochs", "1", "--search-channels", "4", "--search-layout",
        "1/1/1", "--search-no-pictures", "--image-size", "32", "--retrain-epochs", "2",
        "--random-tolerance", "0.5"]

#: (stage, module, function, marker, n): the stage is killed at the nth call of module.function
#: with an argument naming the marker.
KILLS = (
    ("check", "nas.run.pipeline_stages", "atomic_write_text", "cases.csv", 1),  # the summary written
    ("plan", "nas.run.pipeline_stages", "atomic_write_text", "fingerprint.json", 1),  # the splits written
    ("search", "nas.search.loop", "save_checkpoint", "seed_0", 2),  # epoch 0's checkpoint written
    ("random", "nas.run.random_baseline", "save_genotype", "random", 1),
    ("retrain", "nas.train.loop", "save_checkpoint", "random/fold_1/checkpoint.pt", 2),  # fold 0 done
    ("report", "nas.pictures.report", "atomic_write_text", "report.md", 1),  # the tables written
    ("export", "nas.run.export", "atomic_write_text", ".onnx.json", 1),  # the ensemble written
)

#: Runs ``lwnas run`` with one function wrapped to SIGKILL the process at the chosen call.
DRIVER = """
import importlib, os, signal, sys
module, name, marker, nth = sys.argv[1:5]
module = importlib.import_module(module)
original, calls = getattr(module, name), []
def killing(*args, **kwargs):
    if any(marker in str(value) for value in (*args, *kwargs.values())):
        calls.append(1)
        if len(calls) == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)
    return original(*args, **kwargs)
setattr(module, name, killing)
from nas.cli import main
sys.exit(main(["run", *sys.argv[5:]]))
"""


@pytest.fixture(scope="module")
def environment(_isolated_data_cache):
    return {**os.environ, "OMP_NUM_THREADS": "1", "LWNAS_CACHE": str(_isolated_data_cache)}


def _lwnas_run(out, environment, kill=None):
    command = ([sys.executable, "-c", DRIVER, *map(str, kill)] if kill else
               [sys.executable, "-c", "import sys; from nas.cli import main; sys.exit(main(sys.argv[1:]))", "run"])
    command += [*TINY, "--out", str(out)]
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def straight(tmp_path_factory, environment):
    out = tmp_path_factory.mktemp("straight") / "run"
    result = _lwnas_run(out, environment)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def killed(tmp_path_factory, environment):
    """A run killed once in each stage, started again after each kill, then to its end; the
    output of each start."""
    out = tmp_path_factory.mktemp("killed") / "run"
    printed = []
    for stage, *kill in KILLS:
        result = _lwnas_run(out, environment, kill)
        assert result.returncode == -signal.SIGKILL, f"{stage}: {result.stderr}"
        record = read_record(out, stage)
        assert record is not None and not record.done, f"killed outside {stage}"
        printed.append(result.stdout)
    result = _lwnas_run(out, environment)
    assert result.returncode == 0, result.stderr
    return out, [*printed, result.stdout]


def test_each_start_skips_the_stages_done_and_resumes_the_one_killed(killed):
    _, printed = killed
    names = [stage for stage, *_ in KILLS]
    for index, output in enumerate(printed[1:], 1):
        for done in names[:index - 1]:
            assert f"] {done}: done already ({done}/stage.json), skipped" in output
        assert f"] {names[index - 1]}: " in output and "(resumed)" in output.split(f"] {names[index - 1]}: ")[1]


def test_a_run_killed_in_every_stage_ends_as_an_uninterrupted_one(straight, killed):
    out, _ = killed
    for stage in (stage for stage, *_ in KILLS):
        assert read_record(out, stage).done, stage
    assert (json.loads((out / "search" / "choice.json").read_text())
            == json.loads((straight / "search" / "choice.json").read_text()))
    for genotype in ("search/seed_0/genotype.json", "random/genotype.json"):
        assert load_genotype(out / genotype) == load_genotype(straight / genotype), genotype
    for network in ("searched", "random", "unet2d"):
        for fold in (0, 1):
            a, b = (torch.load(run / "retrain" / network / f"fold_{fold}" / "best.pt", weights_only=True)
                    for run in (straight, out))
            assert a["epoch"] == b["epoch"]
            for key, value in a["model"].items():
                assert torch.equal(value, b["model"][key]), (network, fold, key)
        tables = [pd.read_csv(run / "retrain" / network / "cv_metrics.csv") for run in (straight, out)]
        pd.testing.assert_frame_equal(*tables)
    assert (out / "report" / "report.md").is_file()
    exported = [(run / "export" / "searched_ensemble.onnx").read_bytes() for run in (straight, out)]
    assert exported[0] == exported[1]
