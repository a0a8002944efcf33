"""A search or retrain killed with SIGKILL mid-epoch resumes to the uninterrupted result."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nas.search import load_genotype

#: end-to-end runs of real commands and processes (still run by `make test`)
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]


def _command(kind, out, extra=()):
    common = ["--out", str(out), "--workers", "0", "--no-progress"]
    if kind == "search":
        return [sys.executable, "search.py", "--dataset", "dsb2018", "--epochs", "3",
                "--channels", "8", "--layout", "1/1/1", "--image-size", "64", "--no-pictures",
                *common, *extra]
    return [sys.executable, "retrain.py", "--genotype", str(extra[0]), "--epochs", "3",
            "--batch-size", "1", "--image-size", "64", *common, *extra[1:]]


def _run(command, env):
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)


def _epoch(checkpoint):
    try:
        return torch.load(checkpoint, weights_only=True)["epoch"]
    except (FileNotFoundError, RuntimeError, EOFError):
        return -1


def _kill_mid_epoch(command, out, env):
    """Start ``command``, SIGKILL it soon after the first epoch's checkpoint lands."""
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    checkpoint = out / "checkpoint.pt"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # into epoch 1
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    return _epoch(checkpoint)


@pytest.fixture(scope="module")
def environment(_isolated_data_cache):
    return {**os.environ, "OMP_NUM_THREADS": "1", "LWNAS_CACHE": str(_isolated_data_cache)}


@pytest.fixture(scope="module")
def searched(tmp_path_factory, environment):
    straight = tmp_path_factory.mktemp("crash") / "straight"
    _run(_command("search", straight), environment)
    return straight


def test_killed_search_resumes_to_the_same_alphas(searched, tmp_path, environment):
    killed = tmp_path / "killed"
    finished_epoch = _kill_mid_epoch(_command("search", killed), killed, environment)
    assert finished_epoch in (0, 1)  # a complete checkpoint survived the kill
    _run(_command("search", killed, ["--resume", str(killed)]) , environment)
    a = torch.load(searched / "checkpoint.pt", weights_only=True)
    b = torch.load(killed / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert load_genotype(searched / "genotype.json") == load_genotype(killed / "genotype.json")


def test_killed_retrain_resumes_to_the_same_weights(searched, tmp_path, environment):
    genotype = searched / "genotype.json"
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    _run(_command("retrain", straight, [genotype]), environment)
    assert _kill_mid_epoch(_command("retrain", killed, [genotype]), killed, environment) >= 0
    _run(_command("retrain", killed, [genotype, "--resume", str(killed)]), environment)
    a = torch.load(straight / "checkpoint.pt", weights_only=True)
    b = torch.load(killed / "checkpoint.pt", weights_only=True)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    scores = [json.loads((run / "metrics.json").read_text()) for run in (straight, killed)]
    for key in ("dsc", "miou", "test_loss", "best_epoch", "params", "flops"):
        assert scores[0][key] == scores[1][key], key
