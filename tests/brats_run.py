"""One small 3D training run on the sample BraTS data, shared by the training and prediction
tests (trained once per session, on first use)."""
from __future__ import annotations

from pathlib import Path

from nas import run as brats_commands

#: The smallest MFS-Net the grouped convs allow at a useful width (76k parameters).
TINY_MFSNET = {"base_channels": 8, "channels": 16, "groups": 8}
#: 40, not 20: at 20 epochs one seed in six had barely learnt (tests/nas/run/test_retrain_model.py)
EPOCHS = 40
# A tiny network on two training cases learns within seconds at lr 1e-2 (1e-3, the preset,
# needs minutes); everything else is the mfsnet preset.
LR = 1e-2

_RUNS: dict[str, tuple[Path, dict]] = {}


def trained_run(tmp_path_factory) -> tuple[Path, dict]:
    """(run directory, result of ``retrain_model``) of the shared run."""
    if "mfsnet" not in _RUNS:
        out = tmp_path_factory.mktemp("brats-mfsnet") / "run"
        result = brats_commands.retrain_model(
            "mfsnet", out=out, device="cpu", epochs=EPOCHS, batch_size=1, lr=LR, num_workers=0,
            progress=False, model_kwargs=TINY_MFSNET)
        _RUNS["mfsnet"] = (out, result)
    return _RUNS["mfsnet"]
