"""Sliding-window inference, flip TTA and BraTS post-processing."""
import numpy as np
import pytest
import torch

from nas import inference


def _identity(batch: torch.Tensor) -> torch.Tensor:
    return batch.clone()


@pytest.mark.parametrize("mode", ["gaussian", "constant"])
def test_constant_predictor_gives_the_constant_back(mode):
    volume = torch.randn(2, 4, 37, 29, 20)

    def constant(batch):
        return torch.full((batch.shape[0], 3) + tuple(batch.shape[2:]), 2.5)

    output = inference.sliding_window_inference(volume, (16, 16, 16), constant, overlap=0.5,
                                                mode=mode)
    assert output.shape == (2, 3, 37, 29, 20)
    assert torch.allclose(output, torch.full_like(output, 2.5), atol=1e-5)


@pytest.mark.parametrize("overlap,sw_batch_size", [(0.0, 1), (0.5, 3), (0.75, 4)])
def test_position_dependent_predictor_is_reproduced(overlap, sw_batch_size):
    torch.manual_seed(0)
    volume = torch.randn(2, 2, 40, 23, 31)
    seen = []

    def pointwise(batch):
        seen.append(batch.shape[0])
        return torch.cat([batch * 2.0 + 1.0, batch.square()], dim=1)

    output = inference.sliding_window_inference(volume, (16, 12, 16), pointwise, overlap,
                                                sw_batch_size)
    expected = torch.cat([volume * 2.0 + 1.0, volume.square()], dim=1)
    assert torch.allclose(output, expected, atol=1e-5)  # every window back in its place
    assert max(seen) <= sw_batch_size and max(seen) == min(sw_batch_size, 3 * 2 * 2)


def test_window_layout_covers_and_is_symmetric():
    for size, roi, overlap in [(155, 128, 0.5), (240, 128, 0.5), (96, 64, 0.25), (50, 16, 0.5)]:
        starts = inference.window_starts(size, roi, overlap)
        assert starts[0] == 0 and starts[-1] == size - roi
        steps = np.diff(starts)
        assert (steps <= roi * (1 - overlap)).all() and (steps > 0).all()
        assert sorted(size - roi - s for s in starts) == starts  # mirror symmetric
    assert inference.window_starts(10, 16, 0.5) == [0]
    with pytest.raises(ValueError, match="overlap"):
        inference.window_starts(100, 16, 1.0)


def test_gaussian_importance_is_symmetric_and_peaks_in_the_centre():
    weights = inference.importance_map((16, 11, 8), sigma_scale=0.125)
    assert weights.shape == (16, 11, 8)
    for axis in range(3):
        assert torch.allclose(weights, weights.flip(axis))
    assert weights.max() == 1.0 and weights[7:9, 5, 3:5].min() > 0.9
    assert weights.min() > 0 and weights[0, 0, 0] < 1e-3
    # separable: each axis' profile is a Gaussian with sigma = roi / 8
    profile = weights[:, 5, 0] / weights[:, 5, 0].max()
    centre = torch.arange(16) - 7.5
    gaussian = torch.exp(-0.5 * (centre / 2.0) ** 2)
    assert torch.allclose(profile, gaussian / gaussian.max(), rtol=1e-4)
    # even a sigma so small that the corners underflow keeps every weight positive
    assert inference.importance_map((64, 64, 64), sigma_scale=0.01).min() > 0
    assert torch.equal(inference.importance_map((4, 4), "constant"), torch.ones(4, 4))


def test_total_window_weights_are_symmetric():
    # a predictor returning the window's own weight map makes the output the weighted mean of
    # weights: symmetric when the layout and the weights are
    roi = (16, 16, 16)
    weights = inference.importance_map(roi)

    def weight_map(batch):
        return weights.expand(batch.shape[0], 1, *roi).clone()

    output = inference.sliding_window_inference(torch.zeros(1, 1, 40, 24, 30), roi, weight_map)
    for axis in (2, 3, 4):
        assert torch.allclose(output, output.flip(axis), atol=1e-6)


def test_volume_smaller_than_the_window():
    volume = torch.randn(1, 3, 10, 12, 7)
    shapes = []

    def identity(batch):
        shapes.append(tuple(batch.shape))
        return batch.clone()

    output = inference.sliding_window_inference(volume, 16, identity, tta_flips=True)
    assert output.shape == volume.shape and torch.allclose(output, volume, atol=1e-6)
    assert set(shapes) == {(1, 3, 16, 16, 16)} and len(shapes) == 8
    # one axis larger, two smaller than the window
    volume = torch.randn(1, 1, 40, 5, 9)
    output = inference.sliding_window_inference(volume, (16, 16, 16), _identity)
    assert torch.allclose(output, volume, atol=1e-6)


def test_flip_tta_of_an_equivariant_predictor_equals_no_tta():
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(2, 3, 3, padding=1, bias=False)
    with torch.no_grad():  # a kernel symmetric in every axis: the conv commutes with flips
        kernel = torch.randn(3, 2, 3, 3, 3)
        kernel = sum(kernel.flip(dims) for dims in [(), (2,), (3,), (4,), (2, 3), (2, 4),
                                                    (3, 4), (2, 3, 4)])
        conv.weight.copy_(kernel)
    volume = torch.randn(1, 2, 30, 26, 20)
    plain = inference.sliding_window_inference(volume, 16, conv, overlap=0.5)
    augmented = inference.sliding_window_inference(volume, 16, conv, overlap=0.5,
                                                   tta_flips=True)
    assert torch.allclose(plain, augmented, atol=1e-4)


def test_flip_tta_flips_back_before_averaging():
    # a predictor that outputs each voxel's index along the first axis of its window: the
    # flipped copies give the reversed ramp once flipped back, so the 8-flip mean is the middle
    def ramp(batch):
        index = torch.arange(batch.shape[2], dtype=torch.float32).view(1, 1, -1, 1, 1)
        return index.expand(batch.shape[0], 1, *batch.shape[2:]).clone()

    volume = torch.randn(1, 1, 24, 16, 16)
    output = inference.sliding_window_inference(volume, 16, ramp, tta_flips=True)
    assert torch.allclose(output, torch.full_like(output, 7.5), atol=1e-5)
    only_second_axis = inference.sliding_window_inference(volume, 16, ramp, tta_flips=(1,))
    assert not torch.allclose(only_second_axis, torch.full_like(output, 7.5))
    assert len(inference.flip_axes_subsets(3)) == 8 and inference.flip_axes_subsets(3)[0] == ()
    assert inference.flip_axes_subsets(2, (1,)) == [(), (3,)]


def test_tuple_outputs_and_bad_predictors():
    volume = torch.randn(1, 1, 20, 20, 20)
    output = inference.sliding_window_inference(volume, 16, lambda b: (b * 3, b))
    assert torch.allclose(output, volume * 3, atol=1e-5)
    with pytest.raises(ValueError, match="spatial size"):
        inference.sliding_window_inference(volume, 16, lambda b: b[..., :8])
    with pytest.raises(ValueError, match="roi_size"):
        inference.sliding_window_inference(volume, (16, 16), _identity)


def test_works_in_2d_and_with_a_network():
    volume = torch.randn(1, 2, 50, 33)
    assert torch.allclose(inference.sliding_window_inference(volume, (16, 16), _identity),
                          volume, atol=1e-6)
    network = torch.nn.Sequential(torch.nn.Conv3d(4, 4, 3, padding=1)).eval()
    probabilities = inference.sliding_window_inference(
        torch.randn(1, 4, 20, 18, 17), 16, lambda b: network(b).softmax(1), overlap=0.25,
        device="cpu", output_device="cpu")
    assert torch.allclose(probabilities.sum(1), torch.ones(1, 20, 18, 17), atol=1e-5)


# ------------------------------------------------------------------------ post-processing
