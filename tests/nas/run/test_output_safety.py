"""Nothing a user already has is lost to a prediction or an export: ``lwnas predict`` refuses an
``--output`` among its inputs and a folder of another checkpoint's predictions (its manifest,
``predictions.json``, says whose they are) unless ``--overwrite``; ``lwnas export`` and
``lwnas random-genotype`` refuse an existing file unless ``--overwrite``; and their refusals of
a wrong file say what it is."""
import json
import shutil

import pytest
import torch

import data
import models
from nas import cli
from nas import run as commands
from nas.run.prediction_folder import MANIFEST
from tests.runs import TINY_MFSNET, untrained_genotype_checkpoint, untrained_model_checkpoint

#: end-to-end runs of real commands (still run by `make test`)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, make_genotype):
    """Two untrained DSB2018 networks of different weights, and an untrained PROMISE12 one."""
    root = tmp_path_factory.mktemp("outputs")
    first = untrained_genotype_checkpoint(root / "a" / "best.pt", make_genotype(in_channels=3), "dsb2018")
    state = torch.load(first, weights_only=True)
    state["model"] = {key: value + 0.01 if value.is_floating_point() else value
                      for key, value in state["model"].items()}
    (root / "b").mkdir()
    torch.save(state, root / "b" / "best.pt")
    promise12 = untrained_genotype_checkpoint(root / "promise12.pt", make_genotype(), "promise12")
    return {"a": first, "b": root / "b" / "best.pt", "promise12": promise12}


def _tree(target, count=2):
    """A DSB2018 tree of ``count`` sample cases (images and their masks)."""
    cases = data.find_dsb2018_cases(data.sample_root("dsb2018"))[:count]
    for case in cases:
        shutil.copytree(case, target / case.name)
    return target


def _contents(folder):
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def _predict(checkpoint, inputs, output, *flags):
    return cli.main(["predict", "--checkpoint", str(checkpoint), "--input", str(inputs), "--output", str(output),
                     "--device", "cpu", "--no-progress", *flags])


# 1. an --output among the inputs ---------------------------------------------------------


def test_predict_refuses_an_output_that_is_an_input_folder(checkpoints, tmp_path, one_line_error):
    tree = _tree(tmp_path / "tree")
    flat = tmp_path / "flat"
    flat.mkdir()
    for image in sorted(tree.rglob("images/*.png")):
        shutil.copy(image, flat / image.name)
    before = _contents(tmp_path)
    first = sorted(flat.iterdir())[0]
    case = sorted(tree.iterdir())[0]
    image = case / "images" / f"{case.name}.png"
    for inputs, output, problem in (
            (flat, flat, "is the --input folder"),
            (flat, tmp_path / "flat" / ".." / "flat", "is the --input folder"),
            (first, flat, f"holds the input {first}"),
            (tree, tree, "is the --input folder"),
            (tree, case / "images", f"holds the input {image}"),
            (tree, case / "masks", f"is the input {case / 'masks'}")):  # the labels scoring the case
        line = one_line_error(["predict", "--checkpoint", checkpoints["a"], "--input", inputs, "--output", output,
                               "--device", "cpu"])
        assert line == (f"error: --output {output}: {problem}; expected a folder apart from the inputs "
                        "(predictions are written under the inputs' names)")
    assert _contents(tmp_path) == before  # no input replaced, nothing written


def test_predict_refuses_to_write_volumes_beside_their_inputs(checkpoints, tmp_path, one_line_error):
    case = data.find_promise12_cases(data.sample_root("promise12"))[0]
    inputs = tmp_path / "in"
    inputs.mkdir()
    for path in case.parent.glob(f"{case.stem}*"):
        shutil.copy(path, inputs / path.name)
    before = _contents(inputs)
    line = one_line_error(["predict", "--checkpoint", checkpoints["promise12"], "--input", inputs / case.name,
                           "--output", inputs, "--device", "cpu"])
    assert line.startswith(f"error: --output {inputs}: holds the input {inputs / case.name}; expected a folder")
    assert _contents(inputs) == before


def test_brats_prediction_refuses_an_output_among_its_cases(tmp_path, one_line_error):
    network = models.build("mfsnet", in_channels=4, **TINY_MFSNET)
    checkpoint = untrained_model_checkpoint(tmp_path / "mfsnet.pt", "mfsnet", network, TINY_MFSNET, 4, "brats",
                                            input_size=(32, 32, 32), target="index")
    root = data.write_sample("brats", tmp_path / "in", cases=1)
    (case,) = data.find_brats_cases(root)
    before = _contents(root)
    for output, message in ((root, f"--output {root}: is the --input folder"),
                            (case, f"--output {case}: is the input {case}")):
        line = one_line_error(["predict", "--checkpoint", checkpoint, "--input", root, "--output", output,
                               "--device", "cpu"])
        assert line.startswith(f"error: {message}; expected a folder apart from the inputs")
    assert _contents(root) == before


# 3. a folder of another checkpoint's predictions ---------------------------------------------


def test_predict_writes_a_manifest_and_refuses_another_checkpoints_folder(checkpoints, tmp_path, one_line_error):
    tree = _tree(tmp_path / "tree")
    out = tmp_path / "out"
    assert _predict(checkpoints["a"], tree, out, "--probabilities") == 0
    manifest = json.loads((out / MANIFEST).read_text())
    cases = sorted(case.name for case in tree.iterdir())
    assert manifest["checkpoint"] == str(checkpoints["a"].resolve())
    assert manifest["input"] == str(tree.resolve()) and sorted(manifest["inputs"]) == cases
    assert manifest["inputs"][cases[0]] == [str(tree.resolve() / cases[0] / "images" / f"{cases[0]}.png")]
    assert manifest["started"] and manifest["finished"]
    assert sorted(manifest["files"]) == sorted(
        [f"{case}.png" for case in cases] + [f"{case}_prob_nucleus.tif" for case in cases]
        + ["metrics_cases.csv", "metrics_summary.csv"])
    assert _predict(checkpoints["a"], tree, out) == 0  # its own folder: predicted again
    again = json.loads((out / MANIFEST).read_text())
    assert again["files"] == manifest["files"] and again["tta"] is False  # its earlier files still its own

    before = _contents(out)
    line = one_line_error(["predict", "--checkpoint", checkpoints["b"], "--input", tree, "--output", out,
                           "--device", "cpu"])
    assert line == (f"error: --output {out}: holds the predictions of another checkpoint ("
                    f"{checkpoints['a'].resolve()}, {again['started']}); choose another --output, or pass "
                    "--overwrite to replace them")
    assert _contents(out) == before

    flat = tmp_path / "flat"  # no labels: no metrics tables of its own
    flat.mkdir()
    shutil.copy(tree / cases[0] / "images" / f"{cases[0]}.png", flat / "new.png")
    assert _predict(checkpoints["b"], flat, out, "--overwrite") == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["checkpoint"] == str(checkpoints["b"].resolve()) and list(manifest["inputs"]) == ["new"]
    # the earlier checkpoint's masks, maps and tables went: nothing of it is mistaken for this one's
    assert sorted(path.name for path in out.iterdir()) == ["new.png", MANIFEST]


def test_predict_refuses_to_replace_files_it_did_not_write(checkpoints, tmp_path, one_line_error):
    tree = _tree(tmp_path / "tree", count=1)
    (case,) = tree.iterdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{case.name}.png").write_bytes(b"a user's file")
    line = one_line_error(["predict", "--checkpoint", checkpoints["a"], "--input", tree, "--output", out,
                           "--device", "cpu"])
    assert line == (f"error: --output {out}: holds {out / f'{case.name}.png'}, which lwnas predict did not write "
                    f"(no {MANIFEST}); choose another --output, or pass --overwrite to replace it")
    assert (out / f"{case.name}.png").read_bytes() == b"a user's file"
    assert _predict(checkpoints["a"], tree, out, "--overwrite") == 0
    assert (out / f"{case.name}.png").read_bytes() != b"a user's file"


# 4. an existing export or genotype file ----------------------------------------------------


def test_export_refuses_an_existing_file_and_a_folder(checkpoints, tmp_path, one_line_error):
    out = tmp_path / "net.pt"
    out.write_bytes(b"an earlier export")
    export = ["export", "--checkpoint", checkpoints["a"], "--format", "torchscript"]
    assert one_line_error([*export, "--output", out]) == (
        f"error: --output {out}: exists; choose another --output, or pass --overwrite to replace it")
    assert out.read_bytes() == b"an earlier export"
    sidecar_only = tmp_path / "other.pt"
    (tmp_path / "other.pt.json").write_text("{}")
    assert one_line_error([*export, "--output", sidecar_only]) == (
        f"error: --output {sidecar_only}: its sidecar {sidecar_only}.json exists; choose another --output, or "
        "pass --overwrite to replace it")
    # 9. a folder: said so, not a raw OSError naming a temporary file
    assert one_line_error([*export, "--output", tmp_path, "--overwrite"]) == (
        f"error: --output {tmp_path}: is a folder; expected the file to write, e.g. {tmp_path / 'net.pt'}")
    assert cli.main([*map(str, export), "--output", str(out), "--overwrite"]) == 0
    assert out.read_bytes() != b"an earlier export"


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "run"
    commands.search("dsb2018", out=out, device="cpu", epochs=1, layout="1/0/1", channels=4, image_size=32,
                    num_workers=0, progress=False, pictures=False)
    return out


def test_random_genotype_refuses_an_existing_file_and_names_a_checkpoint(search_run, checkpoints, tmp_path,
                                                                        one_line_error):
    out = tmp_path / "random.json"
    out.write_text("mine")
    command = ["random-genotype", "--like", search_run / "genotype.json", "--seed", "1", "--out", out]
    assert one_line_error(command) == (
        f"error: --out {out}: exists; choose another --out, or pass --overwrite to replace it")
    assert out.read_text() == "mine"
    assert cli.main([*map(str, command), "--overwrite"]) == 0
    assert json.loads(out.read_text())["random_baseline"]["seed"] == 1
    # 9. a checkpoint where a genotype file belongs
    line = one_line_error(["random-genotype", "--like", checkpoints["a"], "--seed", "1", "--out", tmp_path / "x.json"])
    assert line == (f"error: {checkpoints['a']}: not a genotype file but a binary file (a checkpoint?); expected "
                    "the genotype.json of a search")


# 9. a search's checkpoint where a trained network belongs ------------------------------------


def test_a_search_checkpoint_is_named_as_such_by_predict_and_export(search_run, tmp_path, one_line_error):
    checkpoint = search_run / "checkpoint.pt"
    expected = (f"error: {checkpoint}: a search checkpoint (the supernet's weights and op weights); predict and "
                f"export take a trained network: retrain its genotype first (lwnas retrain --genotype "
                f"{search_run / 'genotype.json'}) and give that run's best.pt")
    assert one_line_error(["predict", "--checkpoint", checkpoint, "--input", tmp_path, "--output",
                           tmp_path / "out", "--device", "cpu"]) == expected
    assert one_line_error(["export", "--checkpoint", checkpoint, "--format", "onnx", "--output",
                           tmp_path / "net.onnx"]) == expected
