"""What each command does, as functions a test can call: resolve presets, open datasets from
paths (the only part of ``nas`` that does), make the run directory, call the loops.

A command module (one that defines a function of :data:`COMMANDS`) does not import another
command module; the steps commands share live in their own modules: data set-up
(``data_setup``), the 2D and 3D training flows (``image_training``, ``volume_training``), the
networks and their checkpoints' description (``networks``), cross-validation (``folds``: the
folds of any retrain; ``fold_layout``: a folds run's directory; ``cv_metrics``: its
cross-validated scores), BraTS's facts for the whole-volume
evaluation (``brats``), BraTS prediction (``brats_prediction``) and the per-case rule of
prediction (``prediction_cases``). ``lwnas run`` (``pipeline``) calls the other commands, which
it is given (``COMMANDS``), not imports; its stages are ``pipeline_stages``, their records
``stage_record``."""
from .baseline import retrain_baseline
from .brats_prediction import load_model_checkpoint, predict
from .cv_metrics import write_cv_metrics
from .data_setup import prepare_splits
from .export import export_checkpoint, export_each_fold
from .fold_layout import fold_checkpoints, fold_dir, is_folds_run, run_folds
from .networks import load_fold_ensemble, load_network, load_predictor, read_spec
from .pipeline import run_pipeline
from .prediction import predict_checkpoint, predict_images
from .prediction_cases import PredictionReport
from .random_baseline import random_baseline
from .retraining import retrain_genotype
from .searching import draw_search_pictures, search
from .training_3d import retrain_model

#: The functions the ``lwnas`` subcommands (and ``search.py`` / ``retrain.py``) call: search,
#: retrain --genotype, retrain --model (a 2D baseline, a 3D network), predict, export,
#: random-genotype, and run (the whole way, calling the others).
COMMANDS = (search, retrain_genotype, retrain_baseline, retrain_model, predict_checkpoint,
            export_checkpoint, random_baseline, run_pipeline)

__all__ = ["COMMANDS", "PredictionReport", "draw_search_pictures", "export_checkpoint", "export_each_fold",
           "fold_checkpoints", "fold_dir", "is_folds_run", "load_fold_ensemble", "load_model_checkpoint",
           "load_network", "load_predictor", "predict", "predict_checkpoint", "predict_images", "prepare_splits",
           "random_baseline", "read_spec", "retrain_baseline", "retrain_genotype", "retrain_model", "run_folds",
           "run_pipeline", "search", "write_cv_metrics"]
