"""SIGTERM stops a loop at a step boundary with a checkpoint that resumes to the same result."""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset, DistributedSampler

from nas.cli.common import guarded
from nas.search import SearchConfig, genotype_from_dict, genotype_to_dict, run_search
from nas.train import DistributedContext, evaluate_segmentation, make_loader, run_retrain
from nas.train.loader import ResumableSampler
from nas.train.stopping import StepBoundary, StopRequested, stop_on_signals
from supernet import from_genotype
from tests.synthetic import SquaresDataset, retrain_config

ROOT = Path(__file__).resolve().parents[3]


class TermAt(Dataset):
    """``dataset``, sending this process SIGTERM while its ``read``-th item is read."""

    def __init__(self, dataset, read=None):
        self.dataset, self.read, self.reads = dataset, read, 0
        self.in_channels, self.num_classes = dataset.in_channels, dataset.num_classes
        self.spatial_dims = dataset.spatial_dims

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        self.reads += 1
        if self.reads == self.read:
            os.kill(os.getpid(), signal.SIGTERM)
        return self.dataset[index]


def _retrain(out, genotype, read=None, resume=False):
    torch.manual_seed(0)
    model = from_genotype(genotype, drop_path_rate=0.2)  # per-sample masks: the RNG must resume
    val = SquaresDataset(4, seed=2)
    loader = make_loader(val, 2, shuffle=False, num_workers=0)
    loss = torch.nn.BCEWithLogitsLoss()
    config = retrain_config(epochs=3, batch_size=2, image_size=16, drop_path=0.2)
    with stop_on_signals():
        return run_retrain(model, config, TermAt(SquaresDataset(8, seed=1), read), out,
                           lambda net: evaluate_segmentation(net, loader, loss, torch.device("cpu"),
                                                       DistributedContext()), resume=resume)


def test_sigterm_stops_retraining_mid_epoch_and_resume_matches(tmp_path, make_genotype):
    genotype = make_genotype(channels=4)
    straight = _retrain(tmp_path / "straight", genotype)
    previous = signal.getsignal(signal.SIGTERM)
    # 8 items, batch 2: 4 steps an epoch; item 13 is read for epoch 1's third step
    with pytest.raises(StopRequested) as stopped:
        _retrain(tmp_path / "stopped", genotype, read=13)
    assert signal.getsignal(signal.SIGTERM) is previous  # the handler is put back
    assert "SIGTERM" in str(stopped.value) and "epoch 2, after step 3" in str(stopped.value)
    assert f"--resume {tmp_path / 'stopped'}" in str(stopped.value)
    state = torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 0 and len(state["history"]) == 1
    assert {k: state["partial"][k] for k in ("epoch", "step", "world_size")} == \
        {"epoch": 1, "step": 3, "world_size": 1}
    assert state["partial"]["ranks"][0]["steps"] == 3
    resumed = _retrain(tmp_path / "stopped", genotype, resume=True)
    for key, value in straight["model"].state_dict().items():
        assert torch.equal(value, resumed["model"].state_dict()[key]), key
    # the stopped epoch's mean loss includes the steps before the stop exactly
    assert [r["train_loss"] for r in resumed["history"]] == \
        [r["train_loss"] for r in straight["history"]]
    assert resumed["best"]["epoch"] == straight["best"]["epoch"]


class TermWorkerOnce(TermAt):
    """``dataset`` read by a loader worker that kills itself with SIGTERM (as a scheduler
    signals every process of a job) at its ``read``-th item of epoch 1, once (``marker``)."""

    def __init__(self, dataset, read, marker):
        super().__init__(dataset)
        self.kill_at, self.marker, self.epoch = read, marker, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __getitem__(self, index):
        self.reads += 1
        if self.epoch == 1 and self.reads == self.kill_at and not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGTERM)
        return self.dataset[index]


def _killed_worker_runs(out: Path) -> None:
    """The runs of the test below, in a process of their own: a straight retrain, the same run
    whose loader worker kills itself with SIGTERM in epoch 1, and its resume. Writes what the
    test checks into ``out``: the stop's message, the stopped checkpoint's position and both
    final models."""
    torch.set_num_threads(1)  # as the tests run (tests/conftest.py), so the runs are the same
    genotype = genotype_from_dict(json.loads((out / "genotype.json").read_text()))
    straight = _retrain(out / "straight", genotype)
    torch.save(straight["model"].state_dict(), out / "straight.pt")

    def run(resume):
        torch.manual_seed(0)
        model = from_genotype(genotype, drop_path_rate=0.2)
        val = SquaresDataset(4, seed=2)
        loader = make_loader(val, 2, shuffle=False, num_workers=0)
        loss = torch.nn.BCEWithLogitsLoss()
        config = retrain_config(epochs=3, batch_size=2, image_size=16, drop_path=0.2,
                                num_workers=1)
        train = TermWorkerOnce(SquaresDataset(8, seed=1), 5, out / "killed-once")
        with stop_on_signals():
            return run_retrain(model, config, train, out / "stopped",
                               lambda net: evaluate_segmentation(net, loader, loss,
                                                           torch.device("cpu"),
                                                           DistributedContext()),
                               resume=resume)

    # the main process gets no signal: its loader worker's death by SIGTERM is the request
    try:
        run(resume=False)
        stop = "not stopped"
    except StopRequested as stopped:
        stop = str(stopped)
    state = torch.load(out / "stopped" / "checkpoint.pt", weights_only=True)
    (out / "stop.json").write_text(json.dumps({"message": stop, "epoch": state["partial"]["epoch"],
                                               "step": state["partial"]["step"]}))
    torch.save(run(resume=True)["model"].state_dict(), out / "resumed.pt")


def test_a_loader_worker_killed_by_sigterm_stops_the_run_at_a_step(tmp_path, make_genotype):
    """Run in a child process: a loader worker's death reaches its parent as SIGCHLD, which
    DataLoader's handler (installed for good in that process) turns into an error at any point,
    and under pytest-xdist a late one took down the test worker while it tore down its logging."""
    (tmp_path / "genotype.json").write_text(json.dumps(genotype_to_dict(make_genotype(channels=4))))
    child = subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path; from tests.nas.train.test_stopping "
         "import _killed_worker_runs; _killed_worker_runs(Path(sys.argv[1]))", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stderr[-3000:]
    stop = json.loads((tmp_path / "stop.json").read_text())
    assert re.search("stopped on SIGTERM at epoch 2", stop["message"]), stop
    assert stop["epoch"] == 1 and 1 <= stop["step"] < 4
    straight = torch.load(tmp_path / "straight.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed.pt", weights_only=True)
    for key, value in straight.items():
        assert torch.equal(value, resumed[key]), key


def _search(out, read=None, resume=False):
    config = SearchConfig.from_preset("dsb2018", layout="1/0/1", epochs=2, channels=4,
                                      image_size=16, batch_size=2, num_workers=0,
                                      progress=False, drop_path=0.1, arch_lr=0.01)
    with stop_on_signals():
        return run_search(config, TermAt(SquaresDataset(6, seed=1), read),
                          SquaresDataset(4, seed=2), out, resume=resume)


def test_sigterm_stops_the_search_mid_epoch_and_resume_matches(tmp_path):
    straight = _search(tmp_path / "straight")
    # 6 items, batch 2: 3 steps an epoch; item 7 is read for epoch 1's first step, so the
    # architecture batches (2 a pass, cycled) stop in the middle of a pass
    with pytest.raises(StopRequested, match="epoch 2, after step 1"):
        _search(tmp_path / "stopped", read=7)
    state = torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=True)
    assert (state["epoch"], state["partial"]["epoch"], state["partial"]["step"]) == (0, 1, 1)
    resumed = _search(tmp_path / "stopped", resume=True)
    assert resumed["genotype"] == straight["genotype"]
    for key, value in straight["model"].state_dict().items():
        assert torch.equal(value, resumed["model"].state_dict()[key]), key


def test_a_mid_epoch_checkpoint_needs_the_same_number_of_processes(tmp_path):
    state = {"partial": {"epoch": 1, "step": 2, "world_size": 2, "ranks": [{}, {}]}}
    with pytest.raises(ValueError, match="by 2 process"):
        StepBoundary(DistributedContext(), tmp_path / "checkpoint.pt", state)


def test_resumable_sampler_skips_once_in_the_epochs_order():
    data = list(range(10))
    plain = DistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=3)
    sampler = ResumableSampler(data, num_replicas=1, rank=0, shuffle=True, seed=3)
    for epoch in (0, 1):
        plain.set_epoch(epoch)
        sampler.set_epoch(epoch)
        sampler.skip_next(4)
        assert list(sampler) == list(plain)[4:]
        assert list(sampler) == list(plain)  # the next pass is whole again


def test_a_stopped_command_prints_one_line_and_exits_0(tmp_path, capsys):
    def stop(is_main):
        def run(args):
            raise StopRequested("stopped on SIGTERM at epoch 2, after step 1: ...", tmp_path,
                                is_main)
        return run

    assert guarded(stop(True), argparse.Namespace()) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["stopped on SIGTERM at epoch 2, after step 1: ..."]
    assert captured.err == ""
    assert guarded(stop(False), argparse.Namespace()) == 0  # other ranks say nothing
    assert capsys.readouterr().out == ""
