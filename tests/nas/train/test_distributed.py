"""Two gloo processes on CPU behave like one process on the combined batch."""
import multiprocessing
import os

import pytest
import torch
import torch.distributed as dist

import ops
from nas.search import SearchConfig, run_search
from nas.train import DistributedContext, evaluate_segmentation, make_loader, run_retrain, wrap_model
from nas.train.evaluation import class_validator
from supernet import from_genotype
from tests.synthetic import CubesDataset, SquaresDataset, retrain_config

#: end-to-end runs of real commands and processes (still run by `make test`)
pytestmark = pytest.mark.slow

WORLD = 2


def _spawn(target, tmp_path, *args):
    """Run ``target(rank, tmp_path, *args)`` in WORLD forked processes joined by gloo."""
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_bootstrap, args=(target, rank, tmp_path, args))
                 for rank in range(WORLD)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
    assert all(p.exitcode == 0 for p in processes), [p.exitcode for p in processes]


def _bootstrap(target, rank, tmp_path, args):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/rendezvous", rank=rank,
                            world_size=WORLD)
    try:
        target(rank, tmp_path, *args)
    finally:
        dist.destroy_process_group()
    os._exit(0)  # skip pytest's atexit handlers in the forked child


def _sync_bn_rank(rank, tmp_path, x, weight_out):
    bn = ops.convert_sync_batchnorm(torch.nn.BatchNorm2d(3))
    torch.nn.init.normal_(bn.weight, generator=torch.Generator().manual_seed(0))
    part = x[rank * 2:(rank + 1) * 2].clone().requires_grad_()
    out = bn(part)
    (out * weight_out[rank * 2:(rank + 1) * 2]).sum().backward()
    torch.save({"out": out.detach(), "grad": part.grad, "mean": bn.running_mean,
                "var": bn.running_var, "weight_grad": bn.weight.grad}, tmp_path / f"{rank}.pt")


def test_sync_batchnorm_matches_batchnorm_on_the_combined_batch(tmp_path):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 5, 5, generator=generator) * 3 + 1
    weight_out = torch.randn(4, 3, 5, 5, generator=generator)
    _spawn(_sync_bn_rank, tmp_path, x, weight_out)
    reference = torch.nn.BatchNorm2d(3)
    torch.nn.init.normal_(reference.weight, generator=torch.Generator().manual_seed(0))
    full = x.clone().requires_grad_()
    out = reference(full)
    (out * weight_out).sum().backward()
    ranks = [torch.load(tmp_path / f"{r}.pt", weights_only=True) for r in range(WORLD)]
    for rank, result in enumerate(ranks):
        rows = slice(rank * 2, (rank + 1) * 2)
        torch.testing.assert_close(result["out"], out[rows].detach())
        torch.testing.assert_close(result["grad"], full.grad[rows])
        torch.testing.assert_close(result["mean"], reference.running_mean)
        torch.testing.assert_close(result["var"], reference.running_var)
    # each rank holds the gradient of its own loss; DDP averages, here the loss is a sum
    torch.testing.assert_close(ranks[0]["weight_grad"] + ranks[1]["weight_grad"],
                               reference.weight.grad)


# The comparisons below run in float64 (the float64 fixture, tests/conftest.py): equalities
# between N ranks and one process hold up to summation order: SyncBN's all-reduced sums and
# BN's single sum round differently, and Adam divides the alphas' small gradients by their own
# size, so float32 differences of 1e-7 grow to 1e-5 within two epochs on some CPUs. In float64
# the same comparison has ten digits to spare everywhere.


def _search_config(batch_size):
    # arch_travel 0 keeps the arch lr at 0.01: the travel rule would raise it to 0.65 for these
    # 4 steps, and Adam scales the rounding noise of alphas whose true gradient is 0 up to
    # steps of that size, which no comparison of summation orders survives
    return SearchConfig.from_preset("dsb2018", layout="1/0/1", epochs=2, channels=4,
                                    image_size=16, batch_size=batch_size, num_workers=0,
                                    progress=False, drop_path=0.0, arch_lr=0.01, arch_travel=0.0)


def _search_rank(rank, tmp_path):
    torch.set_default_dtype(torch.float64)
    context = DistributedContext(rank, WORLD, rank, torch.device("cpu"))
    result = run_search(_search_config(2), SquaresDataset(8, seed=1), SquaresDataset(8, seed=2),
                        tmp_path / "ddp", context=context)
    torch.save(result["model"].state_dict(), tmp_path / f"search{rank}.pt")


def _compare(single, ranks, keys=None):
    for rank_state in ranks:
        for key, value in single.items():
            if value.is_floating_point():
                assert rank_state[key].dtype == value.dtype == torch.float64, key
                torch.testing.assert_close(rank_state[key], value, rtol=1e-4, atol=1e-5,
                                           msg=lambda m, key=key: f"{key}: {m}")


def test_two_process_search_equals_one_process_on_the_combined_batch(tmp_path, float64):
    _spawn(_search_rank, tmp_path)
    single = run_search(_search_config(4), SquaresDataset(8, seed=1), SquaresDataset(8, seed=2),
                        tmp_path / "single")["model"].state_dict()
    ranks = [torch.load(tmp_path / f"search{r}.pt", weights_only=True) for r in range(WORLD)]
    assert any("alphas" in key for key in single)
    _compare(single, ranks)
    # only rank 0 wrote the run's files, and they describe the same run
    assert (tmp_path / "ddp" / "genotype.json").is_file()



def _search_3d(context, batch_size, out):
    """A 3D search of random-crop-sized volumes (regions), validated on whole volumes by sliding
    windows: 3 cases, so the ranks segment 2 and 1 of them."""
    config = SearchConfig.from_preset("brats", layout="1/0/1", epochs=2, channels=4,
                                      spatial_dims=3, crop_size=(8, 8, 8), batch_size=batch_size,
                                      num_workers=0, progress=False, drop_path=0.0, arch_lr=0.01,
                                      arch_travel=0.0)
    volumes = CubesDataset(3, size=12, seed=3, regions=True)
    return run_search(config, CubesDataset(8, seed=1, regions=True),
                      CubesDataset(8, seed=2, regions=True), out, context=context,
                      evaluate=class_validator(volumes, (8, 8, 8), context, overlap=0.5))


def _search_3d_rank(rank, tmp_path):
    torch.set_default_dtype(torch.float64)
    context = DistributedContext(rank, WORLD, rank, torch.device("cpu"))
    result = _search_3d(context, 2, tmp_path / "ddp")
    torch.save({"model": result["model"].state_dict(), "history": result["history"]},
               tmp_path / f"search3d{rank}.pt")


def test_two_process_3d_search_equals_one_process_on_the_combined_batch(tmp_path, float64):
    _spawn(_search_3d_rank, tmp_path)
    single = _search_3d(DistributedContext(), 4, tmp_path / "single")
    ranks = [torch.load(tmp_path / f"search3d{r}.pt", weights_only=True) for r in range(WORLD)]
    state = single["model"].state_dict()
    assert any("alphas" in key for key in state) and single["model"].spatial_dims == 3
    _compare(state, [r["model"] for r in ranks])
    # the whole-volume validation splits the cases over the ranks and reduces the sums: each
    # rank reports what one process computes for the same weights on all 3 cases
    model = single["model"]
    volumes = CubesDataset(3, size=12, seed=3, regions=True)
    for rank in ranks:
        model.load_state_dict(rank["model"])
        alone = class_validator(volumes, (8, 8, 8), DistributedContext(), overlap=0.5)(model)
        last = rank["history"][-1]
        assert last["val_cases"] == alone["val_cases"] == 3
        for key in ("val_dice_cube", "val_dice_core", "val_dice_mean"):
            assert last[key] == pytest.approx(alone[key], rel=1e-12, abs=1e-12), key


def _retrain(context, batch_size, out, genotype):
    torch.manual_seed(0)
    model = wrap_model(from_genotype(genotype), context)
    val = SquaresDataset(4, seed=2)
    loader = make_loader(val, 2, shuffle=False, num_workers=0, distributed=True)
    # SGD, not Adam: some BN biases here have an analytically zero gradient (a 1x1 conv and
    # another BN follow them), and Adam scales rounding noise in it up to full steps
    config = retrain_config(epochs=2, batch_size=batch_size, image_size=16, drop_path=0.0,
                            optimizer="sgd")
    loss = torch.nn.BCEWithLogitsLoss()
    return run_retrain(model, config, SquaresDataset(8, seed=1), out,
                       lambda net: evaluate_segmentation(net, loader, loss, context.device, context),
                       context=context)


def _retrain_rank(rank, tmp_path, genotype):
    torch.set_default_dtype(torch.float64)
    context = DistributedContext(rank, WORLD, rank, torch.device("cpu"))
    result = _retrain(context, 2, tmp_path / "ddp", genotype)
    torch.save({"model": result["model"].state_dict(), "history": result["history"]},
               tmp_path / f"retrain{rank}.pt")


def test_two_process_retrain_equals_one_process_on_the_combined_batch(tmp_path, float64,
                                                                     make_genotype):
    genotype = make_genotype(channels=4)
    _spawn(_retrain_rank, tmp_path, genotype)
    single = _retrain(DistributedContext(), 4, tmp_path / "single", genotype)
    ranks = [torch.load(tmp_path / f"retrain{r}.pt", weights_only=True) for r in range(WORLD)]
    _compare(single["model"].state_dict(), [r["model"] for r in ranks])
    # validation metrics are reduced across ranks: every rank reports the full-set numbers
    for rank in ranks:
        for mine, theirs in zip(rank["history"], single["history"]):
            assert mine["val_dsc"] == pytest.approx(theirs["val_dsc"], abs=1e-6)
            assert mine["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-4)
