"""The benchmark scripts run end to end on tiny settings (no timing is asserted)."""
import shutil
from pathlib import Path

import pytest

from bench import ddp, search_step

#: end-to-end runs of real commands and processes (still run by `make test`)
pytestmark = pytest.mark.slow

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "bench" / "ref_darts_unet.py"


@pytest.fixture
def reference(tmp_path):
    if not REFERENCE.is_file():
        pytest.skip(f"the reference supernet {REFERENCE} is not beside this checkout")
    return shutil.copy(REFERENCE, tmp_path / "ref_darts_unet.py")


def test_search_step_bench_compares_variants_with_the_reference(reference, tmp_path):
    output = tmp_path / "bench.md"
    # the reference's shuffle op needs a multiple of 16 channels
    frame = search_step.main(["--reference", str(reference), "--device", "cpu", "--size", "16",
                              "--channels", "16", "--layout", "1/0/1", "--steps", "1",
                              "--warmup", "0", "--threads", "1", "--output", str(output),
                              "--variants", "reference", "ours, fused edges"])
    assert list(frame["variant"]) == ["reference", "ours, fused edges"]
    assert (frame["step_ms"] > 0).all() and frame.loc[0, "speedup"] == 1.0
    # kernels per step: the fused cells launch fewer than the reference's per-edge ops
    assert frame.loc[0, "kernel_ratio"] == 1.0 and frame.loc[1, "kernel_ratio"] < 1.0
    text = output.read_text()
    assert "## search_step" in text and "| reference |" in text and "| ours, fused edges |" in text


def test_search_step_bench_writes_each_row_when_its_variant_ends(reference, tmp_path,
                                                                  monkeypatch):
    """A run cut short keeps the rows it finished; a variant past its time limit gets a row
    saying so."""
    output = tmp_path / "bench.md"
    finished = []

    def run_one(name, passthrough, timeout):
        if finished:  # the machine is taken back during the second variant
            raise KeyboardInterrupt
        finished.append(name)
        return {"variant": name, "step_ms": 10.0, "peak_MB": 5.0, "kernels": 100}

    monkeypatch.setattr(search_step, "_run_one", run_one)
    with pytest.raises(KeyboardInterrupt):
        search_step.main(["--reference", str(reference), "--device", "cpu", "--output",
                          str(output), "--variants", "reference", "ours, fused edges"])
    text = output.read_text()
    assert "## search_step" in text and "| reference | 10 | 1 | 5 | 1 | 100 | 1 | " in text
    monkeypatch.undo()
    # a limit no process can meet (starting Python and torch takes longer): every row says so
    output.unlink()
    frame = search_step.main(["--reference", str(reference), "--device", "cpu", "--size", "16",
                              "--channels", "16", "--layout", "1/0/1", "--variants", "reference",
                              "--variant-timeout", "0.01", "--output", str(output)])
    assert frame.loc[0, "note"] == "over the 0.01 s limit: stopped"
    assert "over the 0.01 s limit" in output.read_text()


def test_ddp_bench_measures_one_and_two_processes(tmp_path):
    output = tmp_path / "bench.md"
    frame = ddp.main(["--kinds", "search", "--device", "cpu", "--size", "16", "--channels", "4",
                      "--layout", "1/0/1", "--steps", "1", "--warmup", "0", "--no-nodes",
                      "--no-checkpoints", "--output", str(output)])["processes"]
    assert frame.loc[0, "step"] == "search" and frame.loc[0, "speedup"] > 0
    assert "2 processes" in output.read_text()


def test_ddp_bench_compares_nodes_and_checkpoint_writes(tmp_path, _isolated_data_cache):
    output = tmp_path / "bench.md"
    frames = ddp.main(["--kinds", "retrain", "--device", "cpu", "--size", "16", "--channels",
                       "4", "--layout", "1/0/1", "--steps", "1", "--warmup", "0", "--output",
                       str(output)])
    nodes = frames["nodes"]
    assert list(nodes["step"]) == ["retrain"]
    assert (nodes[["1 node x 2 (img/s)", "2 nodes x 1 (img/s)"]] > 0).all(axis=None)
    checkpoints = frames["checkpoints"]
    assert list(checkpoints["loop"]) == ["retrain"]
    assert (checkpoints[["epoch (s)", "write (ms)", "checkpoint.pt (MB)"]] > 0).all(axis=None)
    text = output.read_text()
    assert "2 nodes x 1 process" in text and "write / epoch" in text


def test_search_step_bench_in_3d_anchors_on_our_per_edge_supernet(tmp_path):
    output = tmp_path / "bench.md"
    frame = search_step.main(["--spatial-dims", "3", "--device", "cpu", "--size", "8",
                              "--channels", "4", "--layout", "1/0/1", "--steps", "1",
                              "--warmup", "0", "--threads", "1", "--output", str(output),
                              "--variants", "fused edges", "partial channels K=2"])
    assert list(frame["variant"]) == ["per-edge", "fused edges", "partial channels K=2"]
    assert (frame["step_ms"] > 0).all() and frame.loc[0, "speedup"] == 1.0
    assert frame.loc[0, "memory_ratio"] == 1.0
    text = output.read_text()
    assert "## search_step 3D" in text and "batch 2 x 4 x 8^3" in text
    # 2D keeps its anchor, the reference supernet, and so its required path
    with pytest.raises(SystemExit, match="--reference PATH is required"):
        search_step.main(["--size", "8", "--no-write"])
    with pytest.raises(SystemExit):  # a 2D variant name in 3D
        search_step.main(["--spatial-dims", "3", "--variants", "ours", "--no-write"])


def test_search_margins_bench_records_margins_and_gradients_per_variant(tmp_path):
    from bench import search_margins

    frame = search_margins.main(["--seeds", "0", "--epochs", "2", "--warmup", "1",
                                 "--image-size", "16", "--channels", "4", "--layout", "1/0/1",
                                 "--out", str(tmp_path), "--output", str(tmp_path / "b.md")])
    assert list(frame["variant"]) == list(search_margins.VARIANTS)
    assert (frame["noise_margin"] > 0).all() and (frame["gradient_snr"] > 0).all()
    assert "search_margins" in (tmp_path / "b.md").read_text()
    # the variant that drops paths in the architecture step saw other forwards than the one
    # that does not (the same seed, so the same data and initial weights)
    dropped, kept = frame.set_index("variant").loc[["paths-dropped", "preset"], "gradient_snr"]
    assert dropped != kept


def test_op_latency_compares_precisions_per_op(tmp_path):
    """Forward + backward of every op, fused op, source, group and kernel under fp32 and bf16
    (CPU autocast here): time ratios, kernels, and the casts bf16 adds."""
    from bench import op_latency

    output = tmp_path / "bench.md"
    frame = op_latency.main(["--device", "cpu", "--precision", "fp32", "bf16", "--size", "8",
                             "--channels", "8", "--repeats", "1", "--warmup", "1", "--threads",
                             "1", "--output", str(output)]).set_index("entry")
    assert "op sep_conv_3x3" in frame.index and "fused sk (E edges)" in frame.index
    assert "batched group: all ops, 2 x E edges" in frame.index
    assert (frame["bf16/fp32"] > 0).all()
    assert frame.loc["op skip_connect", "bf16_casts"] == 0  # nothing to cast
    # a conv under autocast: input and weight down, and back for the gradients
    assert frame.loc["kernel depthwise 3x3, C", "bf16_casts"] >= 4
    assert (frame["bf16_kernels"] >= frame["fp32_kernels"]).all()
    text = output.read_text()
    assert "## op_latency: forward + backward per op, fp32 vs bf16" in text
    assert text.count("| op ") == 7  # the seven search ops that run (none never does)


def test_the_device_script_names_only_variants_and_files_that_exist():
    """bench/device_run.sh is run once, on a GPU lent for minutes: a misspelt variant or test
    file must fail here, not there."""
    import re

    from bench import search_first_steps

    root = Path(__file__).resolve().parents[2]
    script = (root / "bench" / "device_run.sh").read_text()
    quoted = set(re.findall(r'"(ours[^"]*|reference)"', script))
    assert quoted and quoted <= set(search_step.VARIANTS), quoted - set(search_step.VARIANTS)
    for path in re.findall(r"tests/[\w/]+\.py", script):
        assert (root / path).is_file(), path
    assert "--variant-timeout" in script and set(search_first_steps.VARIANTS)
    # the search loop's variants the script names exist, and argparse takes every name as a
    # value (a name like "--cuda-graph" would read as an option)
    block = script[script.index("-m bench.search_first_steps"):]
    block = block[:block.index("\nstep ")]
    named = re.findall(r'"(defaults|--[^"]+)"', block)
    assert named and set(named) <= set(search_first_steps.VARIANTS), set(named) - set(search_first_steps.VARIANTS)
    assert search_first_steps.parse_args(["--variants", *search_first_steps.VARIANTS]).variants == list(
        search_first_steps.VARIANTS)
    for module in re.findall(r"-m (bench\.\w+)", script):
        assert (root / (module.replace(".", "/") + ".py")).is_file(), module
