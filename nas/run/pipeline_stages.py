"""The stages of ``lwnas run``, one small function each, in the order they run: check the data,
fingerprint and plan it, search, draw the cost-matched random genotype, retrain the searched, the
random and the hand-designed network on the same folds, report, export the chosen network's fold
ensemble. Each writes into ``RUN/STAGE/`` and returns what it wrote; each resumes what a kill
interrupted (a search or a retraining from its checkpoint, at the epoch it reached).

The commands a stage calls come in ``Pipeline.commands`` (``nas.run.COMMANDS`` by name): a command
module imports no other command module.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

import data
from nas.presets import SEARCH_PRESETS
from nas.train.distributed import DistributedContext, barrier, on_rank_zero
from nas.train.files import atomic_write_text

from .data_setup import data_settings
from .fold_layout import run_folds
from .networks import run_network


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """What every stage of one ``lwnas run`` knows: the data, the run directory, the settings of
    each stage (the flags given; None or absent: the command's preset) and the commands."""

    run_dir: Path
    dataset: str
    data_root: str | None
    data_options: dict[str, Any]
    seed: int
    folds: int
    search_seeds: tuple[int, ...]
    random_seed: int
    val_fraction: float | None
    skip_bad: bool
    device: str
    progress: bool
    spatial_dims: int
    baseline: str  # the hand-designed network the searched one is compared with
    search: dict[str, Any]  # keyword arguments of the search command (the flags given)
    retrain: dict[str, Any]  # of the retrain commands
    random: dict[str, Any]  # of random_baseline (tolerance, max_tries)
    export: dict[str, Any]  # of export_checkpoint (fmt)
    commands: Mapping[str, Callable[..., Any]]
    context: DistributedContext
    #: epochs of one search and of one fold's retraining (``pipeline_plan.planned_epochs``), set
    #: once the settings are checked
    epochs: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def folder(self, stage: str) -> Path:
        return self.run_dir / stage

    def relative(self, path: Path) -> str:
        return str(Path(path).relative_to(self.run_dir))

    def data_kwargs(self) -> dict[str, Any]:
        """What every command is told of the data and where it runs."""
        return dict(device=self.device, progress=self.progress, skip_bad=self.skip_bad,
                    data_options=dict(self.data_options) or None)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a stage wrote (paths relative to the run directory) and what a user should know."""

    outputs: tuple[str, ...]
    notes: dict[str, Any] = dataclasses.field(default_factory=dict)


# -- check ---------------------------------------------------------------------------------------


def check(p: Pipeline) -> Outcome:
    """``lwnas check``: every case read with the training readers; a data set with a problem is
    refused in one line naming the failing cases (with ``--skip-bad`` they are left out, and only
    a data set without a readable case is refused). Writes the summary, the cases and every
    problem or warning."""
    folder = p.folder("check")

    def work() -> Outcome:
        if p.skip_bad:
            report = data.check_dataset(p.dataset, p.data_root, progress=p.progress, **p.data_options)
            if not len(report.cases):
                raise data.DataError(f"{report.root}: no readable case; first problem: "
                                     f"{report.problems[0][1] if report.problems else 'no case found'}")
        else:
            report = data.verify_dataset(p.dataset, p.data_root, **p.data_options)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "summary.csv", report.summary().to_csv(index=False))
        atomic_write_text(folder / "cases.csv", report.cases.to_csv(index=False))
        lines = [f"problem (skipped): {message}" for _, message in report.problems]
        lines += [f"warning: {message}" for _, message in report.warnings]
        atomic_write_text(folder / "problems.txt", "".join(line + "\n" for line in lines))
        return Outcome(("check/summary.csv", "check/cases.csv", "check/problems.txt"),
                       {"cases": len(report.cases), "problems": len(report.problems),
                        "warnings": len(report.warnings)})

    return on_rank_zero(p.context, work)


# -- fingerprint and plan ------------------------------------------------------------------------


def plan(p: Pipeline) -> Outcome:
    """The cases' split (seeded; ``--val-fraction`` of the training cases validate, the search's
    architecture steps among them), the fingerprint of the training cases (nnU-Net's: shapes,
    spacings, intensities, class frequencies) and ``plan.json``: the data set's facts, the sizes
    the data is served at, the seed preset its search and retraining start from, and what the
    later stages will do."""
    folder = p.folder("plan")
    facts = data.dataset_facts(p.dataset, p.data_root, **p.data_options)

    def work() -> Outcome:
        sizes = {} if p.spatial_dims == 3 else {"image_size": p.retrain.get("image_size")}
        train = data.get_dataset(p.dataset, p.data_root, "train", p.seed, val_fraction=p.val_fraction,
                                 augment=False, skip_bad=p.skip_bad, **sizes, **p.data_options)
        splits = data.without_cases(train.splits, {case for case, _ in train.skipped})
        fingerprint = train.fingerprint or data.extract_fingerprint(
            p.dataset, p.data_root, splits["train"], options=p.data_options, skip_bad=p.skip_bad)
        _, preset = data_settings(p.dataset, p.data_root, {}, SEARCH_PRESETS, p.data_options)
        described = {
            "dataset": p.dataset, "data_root": p.data_root, "data_options": p.data_options,
            "spatial_dims": facts.spatial_dims, "channels": list(facts.channels),
            "class_names": list(facts.class_names), "target": facts.target,
            "cases": {name: len(splits[name]) for name in ("train", "val", "test")},
            "skipped": [case for case, _ in train.skipped],
            "served_at": ({"crop_size": list(facts.crop_size) if facts.crop_size else "the preset's"}
                          if facts.spatial_dims == 3 else {"image_size": int(train.image_size)}),
            "preset": preset,
            "search": {"seeds": list(p.search_seeds), "settings": p.search},
            "random": {"seed": p.random_seed, "settings": p.random},
            "retrain": {"networks": ["searched", "random", p.baseline], "folds": p.folds,
                        "seed": p.seed, "settings": p.retrain},
            "export": p.export,
        }
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "splits.json", data.splits_text(splits, folder / "splits.json"))
        atomic_write_text(folder / "fingerprint.json", json.dumps(fingerprint, indent=1) + "\n")
        atomic_write_text(folder / "plan.json", json.dumps(described, indent=2, default=str) + "\n")
        return Outcome(("plan/splits.json", "plan/fingerprint.json", "plan/plan.json"),
                       {"cases": described["cases"], "preset": preset, **described["served_at"]})

    outcome = on_rank_zero(p.context, work)
    barrier(p.context)
    return outcome


# -- search --------------------------------------------------------------------------------------


def search_dir(p: Pipeline, seed: int) -> Path:
    return p.folder("search") / f"seed_{seed}"


def search(p: Pipeline) -> Outcome:
    """One search per seed on the plan's splits (a killed one resumes from its checkpoint); with
    several, the genotype of the best validation DSC (the supernet's, at the last epoch) is the
    one retrained, noted in ``search/choice.json``."""
    scores = {}
    for seed in p.search_seeds:
        out = search_dir(p, seed)
        p.commands["search"](p.dataset, p.data_root, out, resume=(out / "checkpoint.pt").is_file(),
                             seed=seed, splits_file=p.folder("plan") / "splits.json",
                             **{**p.search, **p.data_kwargs()})
        scores[f"seed_{seed}"] = validation_score(out / "log.csv")
    chosen = max(scores, key=lambda name: (scores[name], -int(name.split("_")[1])))
    choice = {"chosen": chosen, "genotype": f"search/{chosen}/genotype.json",
              "validation": scores,
              "rule": "the supernet's validation DSC at the last epoch (log.csv); ties: the lowest seed"}
    if p.context.is_main:
        atomic_write_text(p.folder("search") / "choice.json", json.dumps(choice, indent=2) + "\n")
    barrier(p.context)
    outputs = [f"search/seed_{seed}/{name}" for seed in p.search_seeds for name in ("genotype.json", "log.csv")]
    return Outcome((*outputs, "search/choice.json"), {"chosen": chosen, "validation": scores})


#: Validation columns of a search's log.csv, the first present is the score (3D BraTS: the mean
#: Dice of the regions).
SCORE_COLUMNS = ("val_dsc", "val_dice_mean")


def validation_score(log: Path) -> float:
    """The last epoch's validation DSC of a search's ``log.csv``."""
    frame = pd.read_csv(log)
    for column in SCORE_COLUMNS:
        if column in frame and len(frame):
            return float(frame[column].iloc[-1])
    raise ValueError(f"{log}: holds no validation score ({', '.join(SCORE_COLUMNS)})")


def chosen_genotype(p: Pipeline) -> Path:
    """The genotype the search stage chose (``search/choice.json``)."""
    choice = json.loads((p.folder("search") / "choice.json").read_text())
    return p.run_dir / choice["genotype"]


# -- random --------------------------------------------------------------------------------------


def random(p: Pipeline) -> Outcome:
    """``lwnas random-genotype``: the cost-matched random genotype of the chosen one (params and
    FLOPs within the tolerance), drawn with the run's random seed."""
    out = p.folder("random") / "genotype.json"
    # the stage's own folder: a genotype there is a stage that stopped before it was recorded
    record = on_rank_zero(p.context, lambda: p.commands["random_baseline"](
        chosen_genotype(p), p.random_seed, out, overwrite=True, **p.random))
    barrier(p.context)
    return Outcome(("random/genotype.json",),
                   {key: record[key] for key in ("params_gap", "flops_gap", "tries") if key in record})


# -- retrain on folds ----------------------------------------------------------------------------


def networks(p: Pipeline) -> tuple[str, ...]:
    """The networks retrained, each in ``retrain/NAME``: the searched, its random twin, the
    hand-designed baseline."""
    return ("searched", "random", p.baseline)


def retrain(p: Pipeline) -> Outcome:
    """K-fold retraining of the searched network, the random one and the baseline on the same
    folds: the searched run cuts the folds from the plan's splits, the others train on its
    ``splits.json``. A network whose folds are all scored is not touched again; a killed one
    resumes at the fold and epoch it reached."""
    outputs = []
    for name in networks(p):
        out = p.folder("retrain") / name
        outputs.append(p.relative(out / "cv_metrics.json"))
        if (out / "cv_metrics.json").is_file():
            continue
        splits = (p.folder("plan") if name == "searched" else p.folder("retrain") / "searched") / "splits.json"
        # a folds run started (its splits.json holds the folds) continues: the folds done are kept
        kwargs = {**p.retrain, **p.data_kwargs(), "seed": p.seed, "folds": p.folds, "splits_file": splits,
                  "resume": run_folds(out) is not None}
        if name in ("searched", "random"):
            genotype = chosen_genotype(p) if name == "searched" else p.folder("random") / "genotype.json"
            kwargs.pop("model_kwargs", None)  # the 3D baseline's constructor arguments
            p.commands["retrain_genotype"](genotype, p.dataset, p.data_root, out, **kwargs)
        elif p.spatial_dims == 2:
            p.commands["retrain_baseline"](name, p.dataset, p.data_root, out, **kwargs)
        else:
            p.commands["retrain_model"](name, p.dataset, p.data_root, out, **kwargs)
    return Outcome(tuple(outputs))


# -- report --------------------------------------------------------------------------------------


def report(p: Pipeline) -> Outcome:
    """``lwnas report`` of the three folds runs: per run and per fold the test DSC (mean +- sd over
    the folds), the paired signed-rank test of the searched network against the others on the
    per-case DSC, the costs, and the pictures (DSC against cost, DSC per fold)."""
    from nas.pictures.report import report_runs
    from nas.presets import SEED_RESULTS

    def work() -> Outcome:
        tables, paths = report_runs([p.folder("retrain") / name for name in networks(p)], p.folder("report"),
                                    seed_results=SEED_RESULTS, network_of=run_network, echo=p.progress)
        runs = tables["cv_runs"]
        scores = {row["network"]: f"{row['dsc_mean']:.4f} +- {row['dsc_sd']:.4f}" for row in runs.to_dict("records")}
        verdicts = ({row["against"]: row["summary"] for row in tables["paired"].to_dict("records")}
                    if "paired" in tables else {})
        return Outcome(tuple(p.relative(path) for path in paths), {"test_dsc": scores, "paired": verdicts})

    return on_rank_zero(p.context, work)


# -- export --------------------------------------------------------------------------------------


def export(p: Pipeline) -> Outcome:
    """``lwnas export`` of the searched network's folds as one ensemble (their probabilities
    averaged), checked against the networks."""
    fmt = p.export["fmt"]
    output = p.folder("export") / f"searched_ensemble.{'onnx' if fmt == 'onnx' else 'pt'}"

    def work() -> Outcome:
        # overwrite: a file there is this stage's own, left by a run stopped before it was recorded
        made = p.commands["export_checkpoint"](p.folder("retrain") / "searched", fmt, output, overwrite=True)
        return Outcome((p.relative(made.path), p.relative(made.sidecar)),
                       {"max_abs_difference": made.max_abs_difference, "dynamic_spatial": made.dynamic_spatial})

    return on_rank_zero(p.context, work)
