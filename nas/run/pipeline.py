"""``lwnas run``: from a data set to a deployed model in one command.

    check -> plan -> search -> random -> retrain -> report -> export

Each stage writes into ``RUN/STAGE/`` and records its settings, the digests of the files it read
and what it wrote in ``RUN/STAGE/stage.json`` (``nas.run.stage_record``). Starting the same
command again skips the stages done, resumes the one a crash or ``kill`` interrupted (the search
and the retraining from their checkpoints, at the epoch reached) and goes on; a stage recorded
with other settings, or made from other files than the earlier stages hold now, is refused
before anything runs, naming what differs. ``stages`` runs a part (the stages it needs must be
done already or run too).
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import data
from nas.presets import RUN_BASELINES, RUN_PRESET
from nas.train.distributed import barrier, init_distributed, on_rank_zero, say
from nas.train.files import atomic_write_text, check_output_dir
from nas.train.settings import require_int
from nas.train.stopping import StopRequested, stop_on_signals

from . import pipeline_stages as stages
from .data_setup import check_val_fraction
from .pipeline_plan import planned_epochs
from .stage_record import StageRecord, changed_settings, digest, read_record, write_record

#: Settings a run may change between its starts: where it runs and what it prints, not what it
#: computes.
RUN_LEVEL = ("device", "progress", "num_workers", "pictures", "tensorboard")
#: The commands the stages call (``nas.run.COMMANDS``, by name).
NEEDED_COMMANDS = ("search", "random_baseline", "retrain_genotype", "retrain_baseline", "retrain_model",
                   "export_checkpoint")
RUN_FILE = "run.json"


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[stages.Pipeline], stages.Outcome]
    needs: tuple[str, ...]  # the stages whose outputs it reads
    settings: Callable[[stages.Pipeline], dict[str, Any]]
    inputs: Callable[[stages.Pipeline], list[Path]]  # files of earlier stages it reads
    what: Callable[[stages.Pipeline], str]  # the progress line's description


#: Keyword arguments whose flag is not their name with dashes.
_FLAG_NAMES = {"data_options": "option", "max_tries": "tries", "model_kwargs": "model-option", "fmt": "format",
               "num_workers": "workers"}


def _flags(prefix: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Settings by the flag that sets them (``--search-epochs``), so that a refusal names it."""
    return {f"--{prefix}{_FLAG_NAMES.get(key, key.replace('_', '-'))}": value for key, value in kwargs.items()
            if key not in RUN_LEVEL}


def _data(p: stages.Pipeline) -> dict[str, Any]:
    return _flags("", {"dataset": p.dataset, "data_root": p.data_root, "data_options": p.data_options,
                       "skip_bad": p.skip_bad})


STAGES: tuple[Stage, ...] = (
    Stage("check", stages.check, (), _data, lambda p: [],
          lambda p: f"every case of {p.dataset} read"),
    Stage("plan", stages.plan, ("check",),
          lambda p: {**_data(p), **_flags("", {"seed": p.seed, "val_fraction": p.val_fraction})},
          lambda p: [], lambda p: "splits, fingerprint and plan"),
    Stage("search", stages.search, ("plan",),
          lambda p: {"--search-seeds": len(p.search_seeds), **_flags("search-", p.search)},
          lambda p: [p.folder("plan") / "splits.json"],
          lambda p: f"{len(p.search_seeds)} seed(s) x {p.epochs['search']} epochs"),
    Stage("random", stages.random, ("search",),
          lambda p: {"--random-seed": p.random_seed, **_flags("random-", p.random)},
          lambda p: [stages.chosen_genotype(p)],
          lambda p: f"the cost-matched random genotype (draw {p.random_seed})"),
    Stage("retrain", stages.retrain, ("plan", "search", "random"),
          lambda p: {"--folds": p.folds, "--seed": p.seed, "baseline": p.baseline, **_flags("retrain-", p.retrain)},
          lambda p: [p.folder("plan") / "splits.json", stages.chosen_genotype(p),
                     p.folder("random") / "genotype.json"],
          lambda p: f"searched, random and {p.baseline}: {p.folds} folds x {p.epochs['retrain']} epochs"),
    Stage("report", stages.report, ("retrain",), lambda p: {},
          lambda p: [p.folder("retrain") / name / "cv_metrics.json" for name in stages.networks(p)],
          lambda p: "the cross-validated comparison and its pictures"),
    Stage("export", stages.export, ("retrain",), lambda p: _flags("export-", p.export),
          lambda p: [p.folder("retrain") / "searched" / "cv_metrics.json"],
          lambda p: f"the searched network's fold ensemble as {p.export['fmt']}"),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)


@stop_on_signals()  # SIGTERM: the running search or retraining writes its checkpoint and stops
def run_pipeline(dataset: str, data_root: str | Path | None, out: str | Path, *,
                 commands: Iterable[Callable[..., Any]], stages_to_run: Sequence[str] | None = None,
                 seed: int = 0, folds: int | None = None, search_seeds: int | None = None,
                 random_seed: int | None = None, val_fraction: float | None = None,
                 skip_bad: bool = False, device: str = "auto", progress: bool = True,
                 data_options: Mapping[str, Any] | None = None,
                 search: Mapping[str, Any] | None = None, retrain: Mapping[str, Any] | None = None,
                 random: Mapping[str, Any] | None = None, export: Mapping[str, Any] | None = None
                 ) -> dict[str, Any]:
    """Run the stages of ``lwnas run`` (all, or ``stages_to_run``) for ``dataset`` under
    ``data_root`` (None: the bundled sample) into ``out``.

    ``commands``: ``nas.run.COMMANDS`` (the stages call them by name). ``search``, ``retrain``,
    ``random`` and ``export``: keyword arguments of the search, retrain, random-genotype and
    export commands (the flags given; absent: their presets). ``folds``, ``search_seeds`` and
    ``random_seed`` None: ``nas.presets.RUN_PRESET``'s. Returns what each stage did
    (``ran``/``skipped``) and its wall time."""
    # every setting, and every earlier start's record, is checked before any stage runs
    context = init_distributed(device)
    chosen = _chosen_stages(stages_to_run)
    folds = RUN_PRESET.folds if folds is None else folds
    search_seeds = RUN_PRESET.search_seeds if search_seeds is None else search_seeds
    require_int("folds", folds, minimum=2)
    require_int("search_seeds", search_seeds)
    check_val_fraction(val_fraction)
    data_options = dict(data_options or {})
    try:
        facts = data.dataset_facts(dataset, data_root, **data_options)
    except TypeError as error:  # an option the data set does not take
        raise ValueError(f"--option: {error}") from None
    named = {command.__name__: command for command in commands}
    missing = [name for name in NEEDED_COMMANDS if name not in named]
    if missing:
        raise TypeError(f"run_pipeline needs the commands {', '.join(missing)} (pass nas.run.COMMANDS)")
    root = None if data_root is None else str(Path(data_root).expanduser().resolve())
    p = stages.Pipeline(
        run_dir=Path(out), dataset=dataset, data_root=root, data_options=data_options, seed=seed,
        folds=folds, search_seeds=tuple(range(seed, seed + search_seeds)),
        random_seed=RUN_PRESET.random_seed if random_seed is None else random_seed,
        val_fraction=val_fraction, skip_bad=skip_bad, device=device, progress=progress,
        spatial_dims=facts.spatial_dims, baseline=RUN_BASELINES[facts.spatial_dims],
        search=dict(search or {}), retrain=dict(retrain or {}), random=dict(random or {}),
        export={"fmt": RUN_PRESET.export_format, **(export or {})}, commands=named, context=context)
    p = dataclasses.replace(p, epochs=planned_epochs(p))  # the search's and the retraining's settings, checked now
    _check_run_dir(p)
    _refuse_changed_settings(p)
    _refuse_missing_needs(p, chosen)
    _write_run_file(p)
    started, outcome = time.monotonic(), {}
    for index, stage in enumerate(STAGES, 1):
        if stage.name not in chosen:
            continue
        outcome[stage.name] = _run_stage(p, stage, f"[{index}/{len(STAGES)}]", started, chosen)
    total = time.monotonic() - started
    timings = ", ".join(f"{name} {_duration(result['seconds'])}" for name, result in outcome.items()
                        if result["status"] == "ran")
    say(context, f"lwnas run: {', '.join(outcome)} in {_duration(total)}"
                 + (f" ({timings})" if timings else "") + f" -> {p.run_dir}")
    return outcome


def _chosen_stages(names: Sequence[str] | None) -> list[str]:
    if names is None:
        return list(STAGE_NAMES)
    unknown = [name for name in names if name not in STAGE_NAMES]
    if unknown or not names:
        raise ValueError(f"--stages {','.join(names)}: expected some of {','.join(STAGE_NAMES)}")
    return [name for name in STAGE_NAMES if name in names]


def _check_run_dir(p: stages.Pipeline) -> None:
    """The run directory: writable, and either new, empty or one of ``lwnas run``'s (its
    ``run.json``), so a run never writes into another command's directory."""
    def check() -> None:
        if p.run_dir.is_dir() and any(p.run_dir.iterdir()) and not (p.run_dir / RUN_FILE).is_file():
            raise FileExistsError(f"{p.run_dir}: holds files but no {RUN_FILE} of lwnas run; choose another "
                                  "--out (a new or empty directory, or an earlier lwnas run's)")
        check_output_dir(p.run_dir)

    on_rank_zero(p.context, check)


def _write_run_file(p: stages.Pipeline) -> None:
    """``run.json``: what this run was asked (its stages' records hold what each did)."""
    if p.context.is_main:
        described = {"command": "lwnas run", "dataset": p.dataset, "data_root": p.data_root,
                     "data_options": p.data_options, "seed": p.seed, "folds": p.folds,
                     "search_seeds": list(p.search_seeds), "random_seed": p.random_seed,
                     "val_fraction": p.val_fraction, "skip_bad": p.skip_bad, "baseline": p.baseline,
                     "search": p.search, "retrain": p.retrain, "random": p.random, "export": p.export}
        atomic_write_text(p.run_dir / RUN_FILE, json.dumps(described, indent=2, default=str) + "\n")
    barrier(p.context)


def _refuse_changed_settings(p: stages.Pipeline) -> None:
    """Every recorded stage against the settings asked now, all differences in one line."""
    problems = []
    for stage in STAGES:
        record = read_record(p.run_dir, stage.name)
        if record is None:
            continue
        changes = changed_settings(record.settings, stage.settings(p))
        if changes:
            problems.append(f"{stage.name} ({'; '.join(changes)})")
    if problems:
        raise ValueError(f"{p.run_dir}: cannot continue this run with different settings: "
                         f"{', '.join(problems)}; run it with its settings ({p.run_dir / RUN_FILE}), "
                         "remove the folder of the first stage named (and the stages after it) to run "
                         "them again, or choose another --out")


def _refuse_missing_needs(p: stages.Pipeline, chosen: Sequence[str]) -> None:
    for stage in STAGES:
        if stage.name not in chosen:
            continue
        absent = [need for need in stage.needs if need not in chosen and not _done(p, need)]
        if absent:
            raise ValueError(f"--stages {','.join(chosen)}: {stage.name} needs the outputs of "
                             f"{', '.join(absent)}, not done in {p.run_dir}; run those stages too")


def _done(p: stages.Pipeline, name: str) -> bool:
    record = read_record(p.run_dir, name)
    return record is not None and record.done and not record.missing_outputs(p.run_dir)


def _run_stage(p: stages.Pipeline, stage: Stage, counter: str, started: float,
               chosen: Sequence[str]) -> dict[str, Any]:
    """Skip the stage when done with these settings and inputs, else run (or resume) it between
    two records: one saying it started, one saying what it wrote."""
    record = read_record(p.run_dir, stage.name)
    inputs = {p.relative(path): digest(path) for path in stage.inputs(p)}
    if record is not None and record.inputs != inputs:
        changed = sorted(name for name in set(record.inputs) | set(inputs)
                         if record.inputs.get(name) != inputs.get(name))
        raise ValueError(f"{p.folder(stage.name)}: made from other files than the run holds now "
                         f"({', '.join(changed)} changed since); remove {p.folder(stage.name)} and the "
                         "stages after it to run them again")
    if record is not None and record.done and not record.missing_outputs(p.run_dir):
        say(p.context, f"{counter} {stage.name}: done already ({p.relative(p.folder(stage.name))}/"
                       f"stage.json), skipped")
        return {"status": "skipped", "seconds": record.seconds}
    resumed = record is not None
    say(p.context, f"{counter} {stage.name}: {stage.what(p)} -> {p.folder(stage.name)}"
                   f"{' (resumed)' if resumed else ''}; {_duration(time.monotonic() - started)} so far, "
                   f"{stages_eta(p, stage.name, chosen)}")
    settings = stage.settings(p)
    if p.context.is_main:
        write_record(p.run_dir, StageRecord(stage.name, settings, inputs))
    barrier(p.context)
    began = time.monotonic()
    try:
        outcome = stage.run(p)
    except StopRequested as stop:  # SIGTERM: its search or retraining wrote a checkpoint
        raise StopRequested(f"lwnas run stopped in its {stage.name} stage ({stop.checkpoint} written); "
                            "continue with the same lwnas run command", stop.checkpoint, stop.is_main) from None
    seconds = time.monotonic() - began
    if p.context.is_main:
        write_record(p.run_dir, StageRecord(stage.name, settings, inputs, tuple(outcome.outputs), True,
                                            seconds, {**outcome.notes, **({"resumed": True} if resumed else {})}))
    barrier(p.context)
    return {"status": "ran", "seconds": seconds, "notes": outcome.notes}


def stages_eta(p: stages.Pipeline, current: str, chosen: Sequence[str]) -> str:
    """The time the training epochs still to run will take, at the seconds per epoch measured
    so far in this run (``log.csv``); the other stages take seconds."""
    from .pipeline_plan import remaining_seconds

    pending = STAGE_NAMES[STAGE_NAMES.index(current):]
    seconds = remaining_seconds(p, [name for name in pending if name in chosen])
    return "ETA after the first epochs" if seconds is None else f"ETA {_duration(seconds)}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60}:{seconds % 60:02d} min" if seconds < 3600 \
        else f"{seconds // 3600}:{seconds % 3600 // 60:02d} h"


__all__ = ["RUN_LEVEL", "STAGES", "STAGE_NAMES", "Stage", "run_pipeline"]
