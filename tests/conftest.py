"""Test-wide settings."""
import os

# Tiny tensors gain nothing from intra-op threads, and on a loaded 2-core machine OpenMP
# threads spin on barriers while descheduled (a step measured 50x slower). Subprocesses the
# tests start inherit the variable.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
