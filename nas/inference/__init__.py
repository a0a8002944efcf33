"""Inference on whole images and volumes: sliding windows, flip test-time augmentation, a
network's probabilities over a volume, and an ensemble of networks (the folds of a
cross-validation). Takes a predictor callable or a plain network; imports
torch only."""
from .ensemble import FoldEnsemble, probabilities_to_logits
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

__all__ = ["FoldEnsemble", "IMPORTANCE_MODES", "Predictor", "flip_axes_subsets", "importance_map",
           "predict_with_flips", "sliding_window_inference", "window_starts", "ACTIVATIONS", "output_activation",
           "predict_probabilities", "probabilities_to_logits"]
