"""Test-wide settings."""
import os

# Tiny tensors gain nothing from intra-op threads, and on a loaded 2-core machine OpenMP
# threads spin on barriers while descheduled (a step measured 50x slower). Subprocesses the
# tests start inherit the variable.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` run on a CUDA device only: skipped elsewhere, saying why."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


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


#: The shared test cell: every search op with parameters and both parameter-free ops that
#: carry signal, reading each state a 4-node cell allows.
SAMPLE_CELL = ((("sep_conv_3x3", 0), ("ghost", 1)), (("skip_connect", 0), ("sk", 2)),
               (("dil_conv_3x3", 1), ("max_pool_3x3", 3)), (("shuffle_conv_3x3", 4), ("ghost", 0)))


@pytest.fixture
def float64():
    """The test runs with float64 as torch's default dtype; the previous default is restored."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture(scope="session")
def make_genotype():
    """``make_genotype(layout=(1, 1, 1), channels=8, in_channels=1, num_classes=1)``: a U-space
    genotype with :data:`SAMPLE_CELL` in every cell type."""
    import ops
    from supernet import CELL_TYPES, Genotype

    def make(layout=(1, 1, 1), channels=8, in_channels=1, num_classes=1):
        counts = dict(zip(CELL_TYPES, layout))
        types = tuple(kind for kind in CELL_TYPES for _ in range(counts[kind]))
        return Genotype("unet", {kind: SAMPLE_CELL for kind in CELL_TYPES}, types, counts,
                        channels, in_channels, num_classes, primitives=ops.SEARCH_OPS)

    return make


@pytest.fixture(scope="session")
def brats_run(tmp_path_factory):
    """(run directory, result of ``retrain_model``) of one small 3D training run on the sample
    BraTS data, shared by the training, prediction and export tests (trained on first use)."""
    from tests.runs import train_tiny_mfsnet

    out = tmp_path_factory.mktemp("brats-mfsnet") / "run"
    return out, train_tiny_mfsnet(out)


@pytest.fixture(scope="session")
def retrained_2d(tmp_path_factory, make_genotype):
    """``retrained_2d(dataset)``: the run directory of a tiny genotype network retrained for one
    epoch on the sample ``dataset``, shared by the prediction, export and baseline tests (each
    data set's trained once per session, on first use)."""
    import data
    from nas import run
    from nas.search import save_genotype
    from tests.runs import SIZE

    runs = {}

    def retrained(dataset):
        if dataset not in runs:
            root = tmp_path_factory.mktemp(f"retrain-{dataset}")
            facts = data.dataset_facts(dataset)
            genotype = make_genotype(in_channels=facts.in_channels, num_classes=facts.num_classes)
            path = save_genotype(root / "search" / "genotype.json", genotype, dataset=dataset,
                                 search={"image_size": SIZE})
            run.retrain_genotype(path, out=root / "run", device="cpu", epochs=1, batch_size=4,
                                 num_workers=0, progress=False)
            runs[dataset] = root / "run"
        return runs[dataset]

    return retrained


@pytest.fixture
def one_line_error(capsys):
    """``one_line_error(argv)``: run ``lwnas ARGV`` and return its single stderr line, after
    checking it exits 2 with ``error: ...`` and no traceback (the rule for a user's mistakes)."""
    from nas import cli

    def run(argv):
        capsys.readouterr()
        code = cli.main([str(arg) for arg in argv])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2, lines
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        return lines[0]

    return run


@pytest.fixture
def torchrun_restart(monkeypatch):
    """The environment torchrun gives a worker it restarted once, in job ``job-7``."""
    from nas.train.elastic import MAX_RESTARTS, RESTART_COUNT, RUN_ID

    monkeypatch.setenv(RUN_ID, "job-7")
    monkeypatch.setenv(RESTART_COUNT, "1")
    monkeypatch.setenv(MAX_RESTARTS, "3")


@pytest.fixture(scope="session")
def write_checkpoint():
    """``write_checkpoint(folder, run, **entries)``: a minimal ``checkpoint.pt`` (completed
    epoch 0) recording the run identity ``run``; returns its path."""
    def write(folder, run, **entries):
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({"epoch": 0, "run": run, **entries}, folder / "checkpoint.pt")
        return folder / "checkpoint.pt"

    return write
