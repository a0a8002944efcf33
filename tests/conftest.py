"""Test-wide settings."""
import os

# Tiny tensors gain nothing from intra-op threads, and on a loaded 2-core machine OpenMP
# threads spin on barriers while descheduled (a step measured 50x slower). Subprocesses the
# tests start inherit the variable.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _isolated_data_cache(tmp_path_factory):
    """Sample data and preprocessed arrays in a per-session cache, not the user's."""
    cache = tmp_path_factory.mktemp("lwnas-cache")
    previous = os.environ.get("LWNAS_CACHE")
    os.environ["LWNAS_CACHE"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("LWNAS_CACHE", None)
    else:
        os.environ["LWNAS_CACHE"] = previous
