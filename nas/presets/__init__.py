"""Every default as data: seed 002's search and retrain settings per dataset, and each 3D
network's training settings from its paper. Commands start from a preset and override only
the flags a user set (None = unset)."""
from .models import (
    BASELINE_MODELS_2D,
    GENOTYPE_PRESETS_3D,
    MODEL_PRESETS,
    SAMPLE_BATCH_SIZE,
    TRAINING_FIELDS,
    TRAINING_TARGETS,
    WINDOW_OVERLAP,
    ModelPreset,
    defaults_table,
    model_preset,
    network_kwargs,
    training_values,
)
from .pipeline import RUN_BASELINES, RUN_PRESET, RunPreset
from .search import (
    ACTIVATION_FOR_TARGET,
    LOSS_FOR_TARGET,
    MACROS,
    RETRAIN_PRESETS,
    SEARCH_PRESETS,
    SEED_RESULTS,
    VOLUME_SEARCH_PRESETS,
    RetrainPreset,
    SearchPreset,
    VolumeSearchPreset,
    closest_seed_dataset,
    merge,
    retrain_preset,
    search_preset,
)

__all__ = [
    "BASELINE_MODELS_2D", "GENOTYPE_PRESETS_3D", "MODEL_PRESETS", "SAMPLE_BATCH_SIZE", "TRAINING_FIELDS",
    "TRAINING_TARGETS", "WINDOW_OVERLAP", "ModelPreset",
    "defaults_table", "model_preset", "network_kwargs", "training_values", "LOSS_FOR_TARGET",
    "ACTIVATION_FOR_TARGET",
    "MACROS", "RETRAIN_PRESETS", "SEARCH_PRESETS", "SEED_RESULTS", "RetrainPreset", "SearchPreset",
    "VOLUME_SEARCH_PRESETS", "VolumeSearchPreset",
    "closest_seed_dataset", "merge", "retrain_preset", "search_preset", "RUN_BASELINES", "RUN_PRESET", "RunPreset",
]
