"""Training fixed networks: the loop, its run-time settings, crash-safe files and checkpoints,
loaders and the distributed helpers. Given Dataset objects and networks, never paths to data."""
from .checkpoints import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint, unwrap_model
from .distributed import DistributedContext, barrier, init_distributed, resolve_device, shutdown_distributed, wrap_model
from .evaluation import evaluate_segmentation
from .files import (
                          OutputDirectoryError,
                          atomic_path,
                          atomic_write,
                          atomic_write_text,
                          check_new_file,
                          check_output_dir,
                          remove_orphaned_temp_files,
                          write_log,
)
from .loader import make_loader
from .loop import RetrainConfig, build_optimizer, run_retrain
from .runtime import NonFiniteLossError, autocast, resolve_precision, seed_everything
from .schedule import EpochSchedule

__all__ = [
    "capture_rng_state", "load_checkpoint", "restore_rng_state", "save_checkpoint",
    "unwrap_model", "DistributedContext", "barrier", "init_distributed", "resolve_device",
    "shutdown_distributed", "wrap_model", "evaluate_segmentation", "OutputDirectoryError",
    "atomic_path", "atomic_write", "atomic_write_text", "check_new_file", "check_output_dir",
    "remove_orphaned_temp_files", "write_log", "make_loader", "RetrainConfig", "build_optimizer",
    "EpochSchedule", "run_retrain", "NonFiniteLossError", "autocast", "resolve_precision",
    "seed_everything",
]
