"""torchrun on the loopback address: two "nodes" reproduce one node bit for bit, a worker killed
mid-epoch is restarted and resumes by itself, SIGTERM stops at a step and --resume finishes.

Every run is a real ``torchrun`` (``python -m torch.distributed.run``) of ``search.py`` with
gloo on CPU, compared with the 1-node 2-process run of the same settings on this machine.
"""
import json
import os
import signal
import socket
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
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
#: 6 training images, batch 1 per process: 3 steps a process an epoch
SETTINGS = ["--dataset", "dsb2018", "--epochs", "2", "--layout", "1/0/1", "--channels", "4",
            "--image-size", "32", "--batch-size", "1", "--workers", "0", "--no-pictures",
            "--no-progress", "--device", "cpu", "--seed", "0"]
TIMEOUT = 150


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def environment(_isolated_data_cache):
    # no OMP_NUM_THREADS: torchrun sets it to 1 for 2 processes a node and not for 1, and the
    # runs must agree anyway (init_distributed gives every CPU worker one thread)
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    return {**env, "LWNAS_CACHE": str(_isolated_data_cache), "PYTHONUNBUFFERED": "1"}


def _launch(launcher, out, env, extra=()):
    return subprocess.Popen([*TORCHRUN, *launcher, "search.py", *SETTINGS, "--out", str(out),
                             *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(process):
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"torchrun did not finish in {TIMEOUT} s:\n{output[-3000:]}") from None
    assert process.returncode == 0, output[-3000:]
    return output


def _one_node(out, env, extra=()):
    launcher = ["--nnodes", "1", "--nproc-per-node", "2", "--rdzv-backend", "c10d",
                "--rdzv-endpoint", f"127.0.0.1:{_free_port()}"]
    return _finish(_launch(launcher, out, env, extra))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, environment):
    """The uninterrupted 1-node 2-process run."""
    out = tmp_path_factory.mktemp("scale") / "one-node"
    _one_node(out, environment)
    return out


def _assert_same_run(a: Path, b: Path) -> None:
    first, second = (torch.load(p / "checkpoint.pt", weights_only=True) for p in (a, b))
    assert first["epoch"] == second["epoch"] == 1 and "partial" not in second
    assert any("alphas" in key for key in first["model"])
    for key, value in first["model"].items():
        assert torch.equal(value, second["model"][key]), key
    assert load_genotype(a / "genotype.json") == load_genotype(b / "genotype.json")
    assert json.loads((a / "alphas.json").read_text()) == json.loads((b / "alphas.json").read_text())


def _workers(launcher_pid: int) -> dict[str, int]:
    """RANK -> pid of the worker processes torchrun started (its children, from /proc)."""
    workers = {}
    for task in os.listdir(f"/proc/{launcher_pid}/task"):
        for child in Path(f"/proc/{launcher_pid}/task/{task}/children").read_text().split():
            try:
                environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            variables = dict(e.decode(errors="replace").split("=", 1) for e in environ if b"=" in e)
            if "RANK" in variables:
                workers[variables["RANK"]] = int(child)
    return workers


def _into_second_epoch(process, out: Path) -> dict:
    """Wait until epoch 1's checkpoint is written and epoch 2 has begun; its state."""
    checkpoint = out / "checkpoint.pt"
    deadline = time.monotonic() + TIMEOUT
    while not checkpoint.exists():
        assert process.poll() is None and time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.02)
    time.sleep(0.3)  # epoch 2 is under way: its 3 steps take seconds here
    return torch.load(checkpoint, weights_only=True)


def test_two_nodes_equal_one_node_bit_for_bit(reference, tmp_path, environment):
    out = tmp_path / "two-nodes"
    endpoint = f"127.0.0.1:{_free_port()}"
    nodes = [_launch(["--nnodes", "2", "--node-rank", str(rank), "--nproc-per-node", "1",
                      "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint], out, environment)
             for rank in (0, 1)]
    outputs = [_finish(node) for node in nodes]
    _assert_same_run(reference, out)
    # files and progress by global rank 0 only: one node printed the run's lines
    assert sum("search dsb2018:" in output for output in outputs) == 1
    assert sum("completed;" in output for output in outputs) == 1


def test_a_killed_worker_is_restarted_and_resumes_by_itself(reference, tmp_path, environment):
    out = tmp_path / "killed"
    process = _launch(["--standalone", "--nproc-per-node", "2", "--max-restarts", "1"], out,
                      environment)
    first = _into_second_epoch(process, out)
    assert first["epoch"] == 0
    os.kill(_workers(process.pid)["0"], signal.SIGKILL)  # rank 0: the one that writes
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 0, \
        "the kill came after epoch 2's checkpoint, not in the epoch"
    output = _finish(process)
    assert "torchrun restarted the workers (restart 1)" in output
    assert "resuming from its checkpoint at the end of epoch 1" in output
    final = torch.load(out / "checkpoint.pt", weights_only=True)
    # epoch 1 was not trained again: its row (with its wall time) is the one written before
    assert final["history"][0] == first["history"][0]
    _assert_same_run(reference, out)


def test_sigterm_stops_every_rank_at_one_step_and_resume_finishes(reference, tmp_path,
                                                                  environment):
    out = tmp_path / "stopped"
    process = _launch(["--standalone", "--nproc-per-node", "2"], out, environment)
    _into_second_epoch(process, out)
    os.kill(_workers(process.pid)["1"], signal.SIGTERM)  # one rank only: rank 0 must learn it
    output = _finish(process)  # every worker exited 0
    stopped = [line for line in output.splitlines() if line.startswith("stopped on SIGTERM")]
    assert len(stopped) == 1 and f"--resume {out}" in stopped[0], output[-2000:]
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 0 and state["partial"]["epoch"] == 1
    assert 1 <= state["partial"]["step"] < 3  # in the middle of the epoch
    assert len(state["partial"]["ranks"]) == 2
    _one_node(out, environment, ["--resume", str(out)])
    _assert_same_run(reference, out)
