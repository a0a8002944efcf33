"""``lwnas predict`` on a CUDA device equals the CPU's within float tolerance (``pytest -m cuda``
on a GPU; skipped with "needs CUDA" elsewhere). The data readers' packages (nibabel, SimpleITK,
pydicom, albumentations) must be installed there too: bench/device_run.sh says how."""
import numpy as np
import pytest

pytestmark = [pytest.mark.cuda, pytest.mark.slow]


def test_predict_on_cuda_equals_cpu(tmp_path, make_genotype):
    for package in ("nibabel", "SimpleITK", "pydicom", "albumentations"):
        pytest.importorskip(package, reason=f"the data readers need {package}")
    from PIL import Image

    import data
    from nas import run as commands
    from tests.run_2d import untrained_genotype_checkpoint

    checkpoint = untrained_genotype_checkpoint(tmp_path / "best.pt",
                                               make_genotype(in_channels=3), "dsb2018")
    inputs = tmp_path / "in"
    inputs.mkdir()
    for case in data.find_dsb2018_cases(data.sample_root("dsb2018"))[:2]:
        image = case / "images" / f"{case.name}.png"
        (inputs / image.name).write_bytes(image.read_bytes())
    probabilities = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / device
        report = commands.predict_checkpoint(checkpoint, inputs, out, device=device,
                                             probabilities=True, progress=False)
        assert report.failures == [] and len(report.predictions) == 2
        probabilities[device] = {path.name: np.asarray(Image.open(path))
                                 for path in sorted(out.glob("*_prob_*.tif"))}
    assert probabilities["cpu"].keys() == probabilities["cuda"].keys() != set()
    for name, expected in probabilities["cpu"].items():
        np.testing.assert_allclose(probabilities["cuda"][name], expected, atol=1e-4)
