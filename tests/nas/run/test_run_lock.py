"""Two starts on one ``--out``: the second is refused while the first holds the run directory
(``RUN/.lock``), a lock left by a killed process blocks nothing, and a torchrun restart still
resumes its own run. Real processes of ``search.py``."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nas.train.elastic import MAX_RESTARTS, RESTART_COUNT, RUN_ID

#: end-to-end runs of real commands and processes (still run by `make test`)
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
#: 4 epochs of about 0.4 s: time enough to stop the first run after its first checkpoint
SEARCH = [sys.executable, "search.py", "--dataset", "dsb2018", "--epochs", "4", "--layout", "1/0/1",
          "--channels", "4", "--image-size", "32", "--workers", "0", "--no-pictures", "--no-progress",
          "--device", "cpu"]
TIMEOUT = 240


@pytest.fixture(scope="module")
def environment(_isolated_data_cache):
    """A job torchrun may restart (job id ``lock-job``): its first start."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "LWNAS_CACHE": str(_isolated_data_cache),
            RUN_ID: "lock-job", MAX_RESTARTS: "3", RESTART_COUNT: "0"}


def _run(command, env):
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def test_a_second_start_is_refused_and_a_killed_runs_lock_blocks_nothing(tmp_path, environment):
    out = tmp_path / "run"
    command = [*SEARCH, "--out", str(out)]
    first = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (out / "checkpoint.pt").exists():
            assert first.poll() is None and time.monotonic() < deadline, "the first run wrote no checkpoint"
            time.sleep(0.005)
        first.send_signal(signal.SIGSTOP)  # held mid-run: its directory stays in use
        assert first.poll() is None, "the first run ended before it could be held"
        files = {name: (out / name).read_bytes() for name in ("splits.json", "checkpoint.pt", "log.csv")}

        second = _run(command, environment)
        assert second.returncode == 2, second.stderr
        assert second.stderr.strip().splitlines() == [
            f"error: {out}: in use by pid {first.pid} on {socket.gethostname()}; wait for that run to end "
            "or choose another --out"]
        assert {name: (out / name).read_bytes() for name in files} == files  # nothing of the first touched
        resumed = _run([*SEARCH, "--resume", str(out)], environment)
        assert resumed.returncode == 2 and f"in use by pid {first.pid}" in resumed.stderr
    finally:
        first.send_signal(signal.SIGKILL)  # kill -9: no chance to release anything
        first.wait()
    epoch = torch.load(out / "checkpoint.pt", weights_only=True)["epoch"]

    # torchrun restarts the killed job: the restarted command resumes it by itself
    restarted = _run(command, {**environment, RESTART_COUNT: "1"})
    assert restarted.returncode == 0, restarted.stderr
    assert f"torchrun restarted the workers (restart 1): {out}: resuming from its checkpoint" in restarted.stdout
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 3 and len(state["history"]) == 4 and epoch < 3
    assert (out / ".lock").is_file()  # left in place: removing a lock file races a second start
