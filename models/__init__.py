"""Hand-designed 3D brain-tumour segmentation networks, assembled from ``ops`` units.

``build(name, in_channels=4, num_classes=None, **kwargs)`` constructs a registered network;
``list_models()`` names them. Every network returns logits and exposes ``output_activation``
("softmax": classes 0 background, 1 necrosis/NCR, 2 oedema, 3 enhancing = BraTS label 4;
"sigmoid": overlapping regions WT/TC/ET) and ``num_classes``.
"""
from . import mf_res2net, multi_fiber, unet3d, vae_unet  # noqa: F401  (register)
from .common import OUTPUT_ACTIVATIONS
from .mf_res2net import MultiFiberRes2Net
from .multi_fiber import FIBER_LAYOUTS, MultiFiberNet
from .registry import build, list_models, register_model
from .unet3d import UNET_2D_WIDTHS, UNet3D, plain_unet
from .vae_unet import VAEOutput, VAEUNet

__all__ = ["build", "list_models", "register_model", "OUTPUT_ACTIVATIONS", "MultiFiberNet",
           "FIBER_LAYOUTS", "MultiFiberRes2Net", "VAEUNet", "VAEOutput", "UNet3D", "plain_unet",
           "UNET_2D_WIDTHS"]
