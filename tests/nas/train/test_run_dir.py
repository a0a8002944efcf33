"""The run directory: held by one run at a time; under torchrun a restarted command resumes
its own run by itself and refuses another's; restartable runs are named after the job; every
node must see the directory."""
import multiprocessing
import os
import signal
import socket
from pathlib import Path

import pytest

from nas.train import DistributedContext, run_dir
from nas.train.elastic import RESTART_COUNT, RUN_ID, run_identity
from nas.train.run_dir import (
    RunInUseError,
    check_shared_directory,
    default_run_dir,
    holding_run_directory,
    run_directory,
    start_run,
)

SETTINGS = {"dataset": "dsb2018", "seed": 0, "epochs": 2, "progress": False, "num_workers": 0}


def test_a_restarted_command_resumes_its_own_run_and_refuses_another(tmp_path, torchrun_restart,
                                                                      write_checkpoint):
    own = tmp_path / "own"
    write_checkpoint(own, run_identity(SETTINGS))
    assert start_run("search", "dsb2018", own, DistributedContext(), False, SETTINGS) == (own, True)
    fresh = tmp_path / "fresh"  # killed before its first checkpoint: starts afresh
    assert start_run("search", "dsb2018", fresh, DistributedContext(), False, SETTINGS) == \
        (fresh, False)
    other = tmp_path / "other"
    write_checkpoint(other, run_identity({**SETTINGS, "seed": 5}))
    with pytest.raises(FileExistsError, match="belongs to another run"):
        start_run("search", "dsb2018", other, DistributedContext(), False, SETTINGS)


def test_a_first_start_still_refuses_a_directory_holding_a_run(tmp_path, monkeypatch,
                                                               write_checkpoint):
    monkeypatch.setenv(RUN_ID, "job-7")
    monkeypatch.setenv(RESTART_COUNT, "0")
    write_checkpoint(tmp_path, run_identity(SETTINGS))
    with pytest.raises(FileExistsError, match="already holds a run"):
        start_run("search", "dsb2018", tmp_path, DistributedContext(), False, SETTINGS)


def test_the_search_command_refuses_another_runs_checkpoint_in_one_line(
        tmp_path, torchrun_restart, write_checkpoint, one_line_error):
    write_checkpoint(tmp_path, {"run_id": "job-1", "settings": "0123456789abcdef"})
    line = one_line_error(["search", "--dataset", "dsb2018", "--out", tmp_path, "--epochs", "1",
                           "--device", "cpu"])
    assert "belongs to another run" in line and f"--resume {tmp_path}" in line


def test_restartable_runs_are_named_after_the_torchrun_job(torchrun_restart):
    assert default_run_dir("search", "dsb2018") == Path("runs/dsb2018/search-job-7")


def test_a_directory_some_node_does_not_see_is_refused(tmp_path, monkeypatch):
    context = DistributedContext(rank=0, world_size=3)
    monkeypatch.setattr(run_dir, "broadcast_object", lambda value, context: value)
    monkeypatch.setattr(run_dir, "barrier", lambda context: None)
    monkeypatch.setattr(run_dir, "gather_objects", lambda value, context: [
        value, (True, value[1]), (False, "node-b")])
    with pytest.raises(OSError, match="not shared: the ranks on node-b do not see"):
        check_shared_directory(tmp_path, context, wait_seconds=0)
    assert not list(tmp_path.iterdir())  # the probe is gone
    monkeypatch.setattr(run_dir, "gather_objects", lambda value, context: [value] * 3)
    check_shared_directory(tmp_path, context, wait_seconds=0)


def _hold(path, ready):
    """A run that holds ``path`` and has written its splits (no checkpoint yet), until killed."""
    run_directory("search", "dsb2018", path, DistributedContext(), False)
    (path / "splits.json").write_text("the first run's cases")
    ready.set()
    signal.pause()


def _try(path, results):
    try:
        run_directory("search", "dsb2018", path, DistributedContext(), False)
        results.send("started")
    except RunInUseError as error:
        results.send(str(error))
    os._exit(0)


def test_a_held_directory_is_refused_until_its_holder_dies(tmp_path):
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    holder = context.Process(target=_hold, args=(tmp_path, ready))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(RunInUseError) as error:
            run_directory("search", "dsb2018", tmp_path, DistributedContext(), False)
        assert str(error.value) == (f"{tmp_path}: in use by pid {holder.pid} on {socket.gethostname()}; wait "
                                    "for that run to end or choose another --out")
        # not taken for the files of a start that stopped before its first checkpoint
        assert (tmp_path / "splits.json").read_text() == "the first run's cases"
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join()
    run_directory("search", "dsb2018", tmp_path, DistributedContext(), False)  # the lock died with it
    assert not (tmp_path / "splits.json").exists()


def test_a_command_holds_its_directory_until_it_returns(tmp_path):
    context = multiprocessing.get_context("fork")
    received, results = context.Pipe(duplex=False)

    def attempt():
        process = context.Process(target=_try, args=(tmp_path, results))
        process.start()
        process.join(60)
        assert received.poll(10)
        return received.recv()

    with holding_run_directory():
        run_directory("search", "dsb2018", tmp_path, DistributedContext(), False)
        run_directory("search", "dsb2018", tmp_path, DistributedContext(), False)  # its own: held again
        assert attempt().startswith(f"{tmp_path}: in use by pid {os.getpid()} on ")
    assert attempt() == "started"
