"""Losses against hand-computed values, gradient signs, empty-class safety, registry."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nas import losses

LN3 = math.log(3.0)

# The hand-worked example: one case, four voxels (spatial 1 x 4), two classes.
# Foreground probabilities p = [3/4, 1/2, 1/4, 1/4] come from foreground-minus-
# background logits log(p / (1 - p)) = [ln 3, 0, -ln 3, -ln 3]; truth is [1, 0, 0, 0].
#   foreground: P = 1.75, G = 1, I = sum p g = 0.75
#   background: p = [1/4, 1/2, 3/4, 3/4], P = 2.25, G = 3, I = 1/2 + 3/4 + 3/4 = 2.0
FOREGROUND_LOGITS = [LN3, 0.0, -LN3, -LN3]
TRUTH = [1, 0, 0, 0]

SIGMOID_LOSSES = {"dice_sigmoid", "bce_dice", "vae"}
REQUIRED_NAMES = {
    "dice", "dice_sigmoid", "bce_dice", "mixed_dice_jaccard", "generalised_dice", "weighted_ce",
    "sensitivity_specificity", "tversky_weighted", "vae", "ce", "ce_dice",
}


def softmax_logits() -> torch.Tensor:
    """(1, 2, 1, 4) logits: background 0, foreground as above."""
    foreground = torch.tensor(FOREGROUND_LOGITS)
    return torch.stack([torch.zeros(4), foreground]).view(1, 2, 1, 4)


def class_index_target() -> torch.Tensor:
    return torch.tensor(TRUTH).view(1, 1, 4)


def test_registry_holds_every_required_name() -> None:
    assert REQUIRED_NAMES <= set(losses.list_losses())
    assert set(losses.LOSSES) == set(losses.list_losses())


def test_unknown_loss_raises_listing_valid_names() -> None:
    with pytest.raises(ValueError, match="Valid: .*generalised_dice") as error:
        losses.build("dise")
    assert "Did you mean 'dice'" in str(error.value)


def test_duplicate_registration_raises() -> None:
    with pytest.raises(ValueError, match="already registered"):
        losses.register_loss("dice")(type("Other", (losses.SegmentationLoss,), {}))


def test_build_drops_none_keywords_and_passes_others() -> None:
    loss = losses.build("dice", include_background=None)
    assert loss.include_background is False
    assert losses.build("dice", include_background=True).include_background is True


def test_soft_dice_excludes_background_by_default() -> None:
    # foreground Dice = 2 * 0.75 / (1.75 + 1) = 6/11
    value = losses.build("dice")(softmax_logits(), class_index_target())
    assert value.item() == pytest.approx(1 - 6 / 11, abs=1e-5)


def test_soft_dice_with_background() -> None:
    # background Dice = 2 * 2 / (2.25 + 3) = 16/21; loss = 1 - (6/11 + 16/21) / 2 = 80/231
    value = losses.build("dice", include_background=True)(softmax_logits(), class_index_target())
    assert value.item() == pytest.approx(80 / 231, abs=1e-5)


def test_target_forms_agree() -> None:
    loss = losses.build("dice", include_background=True)
    logits = softmax_logits()
    indices = class_index_target()
    one_hot = F.one_hot(indices, 2).movedim(-1, 1).float()
    expected = loss(logits, indices)
    assert loss(logits, indices.unsqueeze(1)).item() == pytest.approx(expected.item())
    assert loss(logits, one_hot).item() == pytest.approx(expected.item())
    # one foreground channel = the same binary problem through a sigmoid
    single = torch.tensor(FOREGROUND_LOGITS).view(1, 1, 1, 4)
    assert loss(single, indices).item() == pytest.approx(expected.item(), abs=1e-6)


def test_bad_targets_raise() -> None:
    loss = losses.build("dice")
    with pytest.raises(ValueError, match="0..1"):
        loss(softmax_logits(), torch.tensor([0, 1, 2, 0]).view(1, 1, 4))
    with pytest.raises(ValueError, match="class-index target must be"):
        loss(softmax_logits(), torch.zeros(1, 1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        losses.build("dice_sigmoid")(softmax_logits(), torch.zeros(1, 3, 1, 4))


def test_generalised_dice_value() -> None:
    # w_fg = 1/1^2 = 1, w_bg = 1/3^2 = 1/9
    # GDL = 1 - 2 (1 * 0.75 + 2/9) / (1 * (1 + 1.75) + (3 + 2.25) / 9) = 1 - (70/36) / (120/36) = 5/12
    value = losses.build("generalised_dice")(softmax_logits(), class_index_target())
    assert value.item() == pytest.approx(5 / 12, abs=1e-5)


def test_generalised_dice_gives_an_empty_class_the_largest_present_weight() -> None:
    # 3 classes, 2 voxels, equal logits: p = 1/3 everywhere; truth [0, 1], class 2 absent.
    # classes 0 and 1: G = 1, P = 2/3, I = 1/3, weight 1; class 2: G = 0, P = 2/3, I = 0,
    # weight = the largest present weight = 1.
    # GDL = 1 - 2 (1/3 + 1/3) / ((1 + 2/3) + (1 + 2/3) + 2/3) = 1 - (4/3) / 4 = 2/3
    value = losses.build("generalised_dice")(torch.zeros(1, 3, 2), torch.tensor([[0, 1]]))
    assert value.item() == pytest.approx(2 / 3, abs=1e-5)


def test_mixed_dice_jaccard_schedule() -> None:
    # Same weights 1 and 1/9: weighted I = 35/36, weighted (P + G) = 120/36
    # Dice_w = 70/120 = 7/12; Jaccard_w = (35/36) / ((120 - 35)/36) = 7/17
    loss = losses.build("mixed_dice_jaccard")
    logits, target = softmax_logits(), class_index_target()
    assert loss(logits, target).item() == pytest.approx(5 / 12, abs=1e-5)  # a = 0 before set_epoch
    loss.set_epoch(5, 10)  # a = 0.5: 0.5 * 5/12 + 2 * 0.5 * (1 - 7/17)
    assert loss(logits, target).item() == pytest.approx(0.5 * 5 / 12 + 10 / 17, abs=1e-5)
    loss.set_epoch(10, 10)  # a = 1: 2 * 10/17
    assert loss(logits, target).item() == pytest.approx(20 / 17, abs=1e-5)
    fixed = losses.build("mixed_dice_jaccard", alpha=1.0, beta=1.0)
    fixed.set_epoch(0, 10)  # a fixed alpha ignores the schedule
    assert fixed(logits, target).item() == pytest.approx(10 / 17, abs=1e-5)


def test_weighted_tversky_value() -> None:
    # w = 1 / (G^2 + 1e-4): foreground 1/1.0001, background 1/9.0001
    # foreground TP 0.75, FP 1.75 - 0.75 = 1.0, FN 1 - 0.75 = 0.25
    # background TP 2.0,  FP 2.25 - 2.0 = 0.25, FN 3 - 2.0 = 1.0; alpha (FP) 0.3, beta (FN) 0.7
    w_fg, w_bg = 1 / 1.0001, 1 / 9.0001
    numerator = w_fg * 0.75 + w_bg * 2.0
    denominator = w_fg * (0.75 + 0.3 * 1.0 + 0.7 * 0.25) + w_bg * (2.0 + 0.3 * 0.25 + 0.7 * 1.0)
    value = losses.build("tversky_weighted")(softmax_logits(), class_index_target())
    assert value.item() == pytest.approx(1 - numerator / denominator, abs=1e-5)


def test_sensitivity_specificity_value() -> None:
    # foreground: (r - p)^2 = [1/16, 1/4, 1/16, 1/16]
    # sensitivity term = (1/16) / 1; specificity term = (1/4 + 1/16 + 1/16) / 3 = 1/8
    value = losses.build("sensitivity_specificity")(softmax_logits(), class_index_target())
    assert value.item() == pytest.approx(0.05 * 0.0625 + 0.95 * 0.125, abs=1e-5)


def test_weighted_cross_entropy_values() -> None:
    # prediction weights: w = (4 - 1.75) / 1.75 = 9/7 on the foreground voxel, 1 elsewhere
    log_bg = [math.log(0.5), math.log(0.75), math.log(0.75)]  # log(1 - p) on voxels 1..3
    expected = -(9 / 7 * math.log(0.75) + sum(log_bg)) / 4
    value = losses.build("weighted_ce")(softmax_logits(), class_index_target())
    assert value.item() == pytest.approx(expected, abs=1e-5)
    # reference weights: w = (4 - 1) / 1 = 3
    expected_target = -(3 * math.log(0.75) + sum(log_bg)) / 4
    value = losses.build("weighted_ce", weight_from="target")(softmax_logits(), class_index_target())
    assert value.item() == pytest.approx(expected_target, abs=1e-5)


def test_cross_entropy_value() -> None:
    expected = -(math.log(0.75) + math.log(0.5) + 2 * math.log(0.75)) / 4
    assert losses.build("ce")(softmax_logits(), class_index_target()).item() == pytest.approx(expected, abs=1e-6)


def sigmoid_example() -> tuple[torch.Tensor, torch.Tensor]:
    """Two region channels: channel 0 as above; channel 1 p = 1/2 everywhere, truth [1, 1, 0, 0]."""
    logits = torch.stack([torch.tensor(FOREGROUND_LOGITS), torch.zeros(4)]).view(1, 2, 1, 4)
    target = torch.tensor([TRUTH, [1, 1, 0, 0]], dtype=torch.float32).view(1, 2, 1, 4)
    return logits, target


def test_sigmoid_dice_value() -> None:
    # channel 0: 6/11; channel 1: 2 * 1 / (2 + 2) = 1/2; loss = 1 - (6/11 + 1/2) / 2 = 21/44
    logits, target = sigmoid_example()
    assert losses.build("dice_sigmoid")(logits, target).item() == pytest.approx(21 / 44, abs=1e-5)


def test_bce_dice_value() -> None:
    # mean BCE = -(ln 3/4 + ln 1/2 + ln 3/4 + ln 3/4) / 4; Dice loss = 1 - 6/11
    logits = torch.tensor(FOREGROUND_LOGITS).view(1, 1, 1, 4)
    target = torch.tensor(TRUTH, dtype=torch.float32).view(1, 1, 1, 4)
    bce = -(3 * math.log(0.75) + math.log(0.5)) / 4
    assert losses.build("bce_dice")(logits, target).item() == pytest.approx(bce + 5 / 11, abs=1e-5)


def test_vae_loss_value_and_output_forms() -> None:
    # Dice with squared denominator, summed over channels:
    #   channel 0: sum p^2 = 9/16 + 4/16 + 1/16 + 1/16 = 15/16, sum g^2 = 1 -> 1 - 1.5 / (31/16) = 7/31
    #   channel 1: sum p^2 = 1, sum g^2 = 2, I = 1 -> 1 - 2/3 = 1/3
    # L2: image [0, 1, 2, 3], reconstruction [0, 1, 2, 5] -> mean squared error 4/4 = 1
    # KL: mu = [1, 0, 2], sigma^2 = [1, 2, 1]:
    #     ((1 + 1 - 0 - 1) + (0 + 2 - ln 2 - 1) + (4 + 1 - 0 - 1)) / 4 voxels
    logits, target = sigmoid_example()
    image = torch.tensor([0.0, 1.0, 2.0, 3.0]).view(1, 1, 1, 4)
    reconstruction = torch.tensor([0.0, 1.0, 2.0, 5.0]).view(1, 1, 1, 4)
    mu, logvar = torch.tensor([[1.0, 0.0, 2.0]]), torch.tensor([[0.0, math.log(2.0), 0.0]])
    dice = 7 / 31 + 1 / 3
    kl = (1.0 + (1.0 - math.log(2.0)) + 4.0) / 4
    loss = losses.build("vae")
    value = loss((logits, reconstruction, mu, logvar), target, image)
    assert value.item() == pytest.approx(dice + 0.1 * 1.0 + 0.1 * kl, abs=1e-5)
    as_dict = {"segmentation": logits, "reconstruction": reconstruction, "mu": mu, "logvar": logvar}
    assert loss(as_dict, target, image).item() == pytest.approx(value.item())
    assert loss(logits, target).item() == pytest.approx(dice, abs=1e-5)  # segmentation alone
    with pytest.raises(ValueError, match="image"):
        loss((logits, reconstruction, mu, logvar), target)


def random_case(name: str, channels: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits, target, and the direction that raises every true-class logit (lowers false ones)."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, channels, 4, 4, 4, generator=generator)
    if name in SIGMOID_LOSSES:
        target = (torch.rand(2, channels, 4, 4, 4, generator=generator) > 0.5).float()
        return logits, target, 2 * target - 1
    target = torch.randint(0, channels, (2, 4, 4, 4), generator=generator)
    return logits, target, F.one_hot(target, channels).movedim(-1, 1).float()


@pytest.mark.parametrize("name", sorted(REQUIRED_NAMES))
def test_raising_true_class_logits_lowers_loss(name: str) -> None:
    loss = losses.build(name)
    logits, target, direction = random_case(name)
    logits.requires_grad_(True)
    value = loss(logits, target)
    value.backward()
    assert (logits.grad * direction).sum() < 0  # directional derivative
    with torch.no_grad():
        assert loss(logits + 0.1 * direction, target) < value


@pytest.mark.parametrize("name", sorted(REQUIRED_NAMES))
@pytest.mark.parametrize("spatial", [(6, 6), (4, 4, 4)], ids=["2d", "3d"])
def test_empty_classes_give_finite_loss_and_gradient(name: str, spatial: tuple[int, ...]) -> None:
    channels = 3
    if name in SIGMOID_LOSSES:
        target = torch.zeros(2, channels, *spatial)
    else:
        target = torch.zeros(2, *spatial, dtype=torch.long)  # all background
    confident_background = torch.full((2, channels, *spatial), -30.0)
    confident_background[:, 0] = 30.0
    for logits in (torch.zeros(2, channels, *spatial), confident_background):
        logits.requires_grad_(True)
        value = losses.build(name)(logits, target)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
    # probabilities exactly 0 and 1 when logits=False
    probabilities = torch.zeros(2, channels, *spatial)
    if name not in SIGMOID_LOSSES:
        probabilities[:, 0] = 1.0
    assert torch.isfinite(losses.build(name, logits=False)(probabilities.requires_grad_(True), target))


@pytest.mark.parametrize("name", sorted(REQUIRED_NAMES))
def test_bf16_autocast_computes_in_float32(name: str) -> None:
    convolution = torch.nn.Conv3d(3, 3, 1)
    features = torch.randn(1, 3, 4, 4, 4)
    target = torch.zeros(1, 3, 4, 4, 4) if name in SIGMOID_LOSSES else torch.zeros(1, 4, 4, 4, dtype=torch.long)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = convolution(features)
        assert logits.dtype == torch.bfloat16
        value = losses.build(name)(logits, target)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    value.backward()
    assert all(torch.isfinite(parameter.grad).all() for parameter in convolution.parameters())


@pytest.mark.parametrize("name", sorted(REQUIRED_NAMES))
def test_every_loss_accepts_set_epoch(name: str) -> None:
    loss = losses.build(name)
    assert isinstance(loss, losses.SegmentationLoss)
    logits, target, _ = random_case(name)
    before = loss(logits, target)
    loss.set_epoch(3, 10)
    after = loss(logits, target)
    assert (after == before) == (name != "mixed_dice_jaccard")
