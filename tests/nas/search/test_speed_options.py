"""The search's speed options (--cells, --checkpoint-cells, --cuda-graph) change how fast it runs,
not what it finds: the same alphas and genotype as the default search (float64, so that no CPU's
rounding decides the comparison), exact resume, and a step that reads nothing on the host."""
import dataclasses
import sys
from pathlib import Path

import pytest
import torch

from nas.search import SearchConfig, run_search
from nas.search.config import upgrade_settings
from nas.search.loop import _build
from nas.train import DistributedContext
from nas.train.settings import SettingError
from tests.synthetic import SquaresDataset

REPOSITORY = Path(__file__).resolve().parents[3]


def _config(**overrides):
    # two weight-only epochs, then alphas: both kinds of step; no drop-path (its masks are drawn
    # per edge or per group, in another order for each cell implementation)
    values = dict(layout="1/0/1", epochs=3, warmup_epochs=1, channels=4, image_size=16,
                  batch_size=2, num_workers=0, progress=False, drop_path=0.0, arch_lr=0.05)
    values.update(overrides)
    return SearchConfig.from_preset("dsb2018", **values)


def _data():
    return SquaresDataset(6, seed=1), SquaresDataset(4, seed=2)


def _alphas(result):
    return {k: v for k, v in result["model"].state_dict().items() if "alphas" in k}


@pytest.mark.parametrize("options", [dict(cells="batched"), dict(cells="per-edge"),
                                     dict(cells="batched", checkpoint_cells=True)],
                         ids=["batched", "per-edge", "batched+checkpointed"])
def test_every_cell_option_searches_what_the_default_searches(tmp_path, float64, options):
    """One seed, one search: the fused default, the batched and per-edge cells and the
    checkpointed cells start from the same weights (the default's draw) and compute the same
    function, so their alphas agree to float tolerance after a search and their genotypes
    match."""
    train, val = _data()
    default = run_search(_config(), train, val, tmp_path / "default")
    other = run_search(_config(**options), train, val, tmp_path / "other")
    assert other["model"].batched == (options["cells"] == "batched")
    mine, theirs = _alphas(other), _alphas(default)
    assert mine.keys() == theirs.keys() and mine
    for key in mine:
        assert not torch.equal(mine[key], torch.zeros_like(mine[key])), key  # the alphas moved
        torch.testing.assert_close(mine[key], theirs[key], rtol=1e-6, atol=1e-8, msg=key)
    assert other["genotype"] == default["genotype"]
    for row, reference in zip(other["history"], default["history"]):
        assert row["train_loss"] == pytest.approx(reference["train_loss"], rel=1e-6)


def test_a_resumed_search_with_batched_cells_is_exact(tmp_path):
    train, val = _data()
    straight = run_search(_config(cells="batched"), train, val, tmp_path / "straight")

    def crash(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt("simulated kill after epoch 1's checkpoint")

    with pytest.raises(KeyboardInterrupt):
        run_search(_config(cells="batched"), train, val, tmp_path / "resumed", on_epoch_end=crash)
    resumed = run_search(_config(cells="batched"), train, val, tmp_path / "resumed", resume=True)
    assert resumed["genotype"] == straight["genotype"]
    first, second = _alphas(straight), _alphas(resumed)
    for key in first:
        assert torch.equal(first[key], second[key]), key
    # the cells' layout is part of what a checkpoint holds: another --cells is refused
    with pytest.raises(ValueError, match="cells: 'batched' -> 'fused'"):
        run_search(_config(epochs=4), train, val, tmp_path / "resumed", resume=True)


def test_a_checkpoint_from_before_cells_resumes(tmp_path):
    """Checkpoints saved ``fused`` (a bool) before ``cells`` existed still resume."""
    assert upgrade_settings({"fused": True, "seed": 0}) == {"cells": "fused", "seed": 0}
    assert upgrade_settings({"fused": False}) == {"cells": "per-edge"}
    assert upgrade_settings({"cells": "batched"}) == {"cells": "batched"}
    train, val = _data()
    run_search(_config(epochs=2), train, val, tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    state["config"]["fused"] = state["config"].pop("cells") == "fused"
    torch.save(state, tmp_path / "checkpoint.pt")
    assert run_search(_config(epochs=3), train, val, tmp_path, resume=True)["history"][-1]["epoch"] == 2


def test_cuda_graph_is_refused_without_cuda(tmp_path, one_line_error):
    train, val = _data()
    with pytest.raises(SettingError, match="^--cuda-graph needs a CUDA device$"):
        run_search(_config(cuda_graph=True), train, val, tmp_path / "api",
                   context=DistributedContext(device=torch.device("cpu")))
    assert not (tmp_path / "api").exists()
    line = one_line_error(["search", "--dataset", "dsb2018", "--device", "cpu", "--cuda-graph",
                           "--out", tmp_path / "cli"])
    assert line == "error: --cuda-graph needs a CUDA device"
    assert not (tmp_path / "cli").exists()  # refused before any data was read or written


@pytest.mark.parametrize("overrides, message", [
    (dict(cells="stacked"), "--cells must be one of fused, batched, per-edge"),
    (dict(cells="batched", primitives=("none", "conv_3x3", "skip_connect")), "--cells batched cannot run"),
    (dict(cuda_graph=True, compile=True), "drop --compile"),
    (dict(space="darts", checkpoint_cells=True), "--checkpoint-cells applies to the U space"),
])
def test_speed_options_that_cannot_run_are_refused(overrides, message):
    with pytest.raises(SettingError, match=message):
        _config(**overrides)


@pytest.mark.parametrize("order", [1, 2])
def test_the_step_reads_no_tensor_on_the_host(order, monkeypatch):
    """What --cuda-graph captures: both updates (first and second order) with no value read
    on the host by the project's code (a read would synchronise, and fail a capture); the
    losses come out as tensors and are checked afterwards. (Here on the CPU, where Adam reads
    its own step count: torch's code is not the project's.)"""
    train, val = _data()
    search = _build(_config(order=order, beta_regularization=1.0, budget_params=1e-3), train, val,
                    DistributedContext(device=torch.device("cpu")), None)
    batches = [(train[i]["image"][None].repeat(2, 1, 1, 1), train[i]["label"][None].repeat(2, 1, 1, 1))
               for i in (0, 1)]
    search.step(*batches[0], *batches[1])  # lazy optimizer state outside the watch, as a graph's warm-up
    readers = []

    def watch(name):
        original = getattr(torch.Tensor, name)

        def read(self, *args, **kwargs):
            caller = Path(sys._getframe(1).f_code.co_filename).resolve()
            if REPOSITORY in caller.parents and ".venv" not in caller.parts:
                readers.append(f"{name} in {caller.relative_to(REPOSITORY)}:{sys._getframe(1).f_lineno}")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, read)

    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy"):
        watch(name)
    losses = search.step(*batches[1], *batches[0])
    monkeypatch.undo()
    assert not readers, readers
    assert len(losses) == 2 and all(isinstance(t, torch.Tensor) and not t.requires_grad for t in losses)


def test_the_weights_are_the_defaults_draw_whatever_the_cells():
    """The seed decides the supernet's weights and alphas (the default fused supernet draws
    them, the others take them over); the cells only lay them out, and leave the random state
    as the default's build does."""
    train, val = _data()
    image = torch.stack([train[0]["image"], train[1]["image"]])
    outputs, next_draws = [], []
    for cells in ("fused", "per-edge", "batched"):
        search = _build(_config(cells=cells), train, val, DistributedContext(device=torch.device("cpu")),
                        None)
        next_draws.append(torch.rand(1))
        search.model.eval()
        outputs.append(search.model(image))
    for out, draw in zip(outputs[1:], next_draws[1:]):
        torch.testing.assert_close(out, outputs[0], rtol=1e-4, atol=1e-5)
        assert torch.equal(draw, next_draws[0])


def test_the_config_records_the_options():
    config = _config(cells="batched", checkpoint_cells=True)
    settings = dataclasses.asdict(config)
    assert settings["cells"] == "batched" and settings["checkpoint_cells"] is True
    assert settings["cuda_graph"] is False and "fused" not in settings


@pytest.mark.parametrize("argv, expected", [
    ([], dict(cells=None, checkpoint_cells=None, cuda_graph=None)),  # None: the preset's
    (["--cells", "batched", "--checkpoint-cells", "--cuda-graph"],
     dict(cells="batched", checkpoint_cells=True, cuda_graph=True)),
    (["--no-fused"], dict(cells="per-edge")),
])
def test_the_flags_reach_the_search(monkeypatch, argv, expected):
    from nas import cli

    given = {}
    monkeypatch.setattr("nas.run.search", lambda *args, **options: given.update(options))
    assert cli.main(["search", "--dataset", "dsb2018", *argv]) == 0
    assert {key: given[key] for key in expected} == expected
