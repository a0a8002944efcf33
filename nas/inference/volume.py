"""A network applied to whole volumes: probabilities by Gaussian-weighted sliding windows of
the training crop, with optional flip TTA, in the network's own output space."""
from __future__ import annotations

import contextlib
from typing import Callable, Sequence

import torch
from torch import nn

from .sliding_window import sliding_window_inference

#: How each network's logits become probabilities (channel axis 1).
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "softmax": lambda logits: logits.softmax(dim=1),
    "sigmoid": torch.sigmoid,
}


def output_activation(network: nn.Module) -> str:
    """``"softmax"`` or ``"sigmoid"``: how the network's logits become probabilities."""
    activation = getattr(network, "output_activation", None)
    if activation not in ACTIVATIONS:
        raise ValueError(f"{type(network).__name__} declares output_activation "
                         f"{activation!r}; expected one of {', '.join(ACTIVATIONS)}")
    return activation


@torch.no_grad()
def predict_probabilities(network: nn.Module, image: torch.Tensor, roi_size: Sequence[int], *,
                          overlap: float = 0.5, tta: bool = False, sw_batch_size: int = 1,
                          device: torch.device | str | None = None,
                          precision: torch.dtype | None = None) -> torch.Tensor:
    """Class (softmax) or region (sigmoid) probabilities ``(K, *spatial)`` of one volume
    ``(C, *spatial)``, on ``device``; the network is run in eval mode and restored. Pass the
    plain network, not a DistributedDataParallel wrapper (whose forward synchronises ranks).

    Probabilities, not logits, are averaged over windows and flips (``tta``: the 8 flips).
    """
    activation = ACTIVATIONS[output_activation(network)]
    device = torch.device(device) if device is not None else image.device
    was_training = network.training
    network.eval()

    def predictor(batch: torch.Tensor) -> torch.Tensor:
        with (torch.autocast(device.type, dtype=precision) if precision is not None
              else contextlib.nullcontext()):
            logits = network(batch)
        return activation(logits.float())

    # the network's own floating dtype (float32 but for float64 checks); autocast lowers it
    dtype = next((p.dtype for p in network.parameters() if p.is_floating_point()), torch.float32)
    try:
        volume = image.to(device, dtype=dtype)[None]
        return sliding_window_inference(volume, tuple(roi_size), predictor, overlap=overlap,
                                        sw_batch_size=sw_batch_size, mode="gaussian",
                                        device=device, tta_flips=tta)[0]
    finally:
        network.train(was_training)
