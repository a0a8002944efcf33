"""Inference on whole images and volumes: sliding windows, flip test-time augmentation, and a
network's probabilities over a volume. Takes a predictor callable or a plain network; imports
torch only."""
from .sliding_window import (
                             IMPORTANCE_MODES,
                             Predictor,
                             flip_axes_subsets,
                             importance_map,
                             predict_with_flips,
                             sliding_window_inference,
                             window_starts,
)
from .volume import ACTIVATIONS, output_activation, predict_probabilities

__all__ = ["IMPORTANCE_MODES", "Predictor", "flip_axes_subsets", "importance_map",
           "predict_with_flips", "sliding_window_inference", "window_starts", "ACTIVATIONS", "output_activation",
           "predict_probabilities"]
