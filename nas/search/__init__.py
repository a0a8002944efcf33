"""The architecture search: the bilevel architect, expected-cost penalties, derivation of a
genotype, genotype files, and the search loop with its settings."""
from .architect import Architect
from .config import RESUME_MAY_CHANGE, SearchConfig
from .costs import CostModel, level_size, network_complexity, op_cost
from .derive import derive_cell, derive_genotype, parameter_free_share, skip_connect_count
from .genotype_file import (
                            FORMAT_VERSION,
                            GenotypeError,
                            genotype_from_dict,
                            genotype_to_dict,
                            load_genotype,
                            load_genotype_file,
                            save_genotype,
)
from .loop import run_search

__all__ = ["Architect", "RESUME_MAY_CHANGE", "SearchConfig", "CostModel", "level_size",
           "network_complexity", "op_cost", "derive_cell", "derive_genotype",
           "parameter_free_share", "skip_connect_count", "FORMAT_VERSION", "GenotypeError",
           "genotype_from_dict", "genotype_to_dict", "load_genotype", "load_genotype_file",
           "save_genotype", "run_search"]
