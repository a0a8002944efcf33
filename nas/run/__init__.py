"""What each command does, as functions a test can call: resolve presets, open datasets from
paths (the only part of ``nas`` that does), make the run directory, call the loops."""
from .baseline import retrain_baseline
from .data_setup import prepare_splits
from .export import export_checkpoint
from .network_spec import load_network, read_spec
from .prediction import PredictionReport, load_model_checkpoint, predict
from .prediction_2d import predict_checkpoint, predict_images
from .retraining import retrain_genotype
from .searching import draw_search_pictures, search
from .training_3d import CHECKPOINT_KIND, retrain_model

__all__ = ["prepare_splits", "PredictionReport",
           "load_model_checkpoint", "predict", "retrain_genotype", "CHECKPOINT_KIND",
           "retrain_model", "draw_search_pictures", "search", "export_checkpoint", "load_network",
           "predict_checkpoint", "predict_images", "read_spec", "retrain_baseline"]
