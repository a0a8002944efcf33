"""Dataset integrity check: `python -m data.check --dataset NAME [--data-root DIR] [--skip-bad]`.

Reads every case with the same readers training uses, collects every problem
(nnU-Net's verify_dataset_integrity style) instead of stopping at the first,
prints a summary table and the problems, and exits non-zero if there are any.
With --skip-bad, bad cases are listed as skipped and only a data root with no
usable case fails. `verify_dataset` is the same check as a gate: it raises one
DataError naming every failing case (search and retrain call it first).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from data.errors import DataError, data_error
from data.presets import get_preset, list_datasets
from data.sample import sample_root
from data.sources import source_for


@dataclass
class CheckReport:
    dataset: str
    root: Path
    cases: pd.DataFrame  # one row per readable case
    problems: list[tuple[str, str]] = field(default_factory=list)  # (case or root, one-line message)
    # usable but suspicious: cases without foreground (one-line messages naming the file)
    warnings: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def failing(self) -> list[str]:
        """The cases (or the data root) with problems, each once, in the order found."""
        return list(dict.fromkeys(case for case, _ in self.problems))

    def summary(self) -> pd.DataFrame:
        """One row per property: cases, slices, shapes, spacings, labels, class balance, channels."""
        rows = [("dataset", self.dataset), ("data root", str(self.root)),
                ("cases", f"{len(self.cases)} readable, {len(self.failing)} with problems")]
        if len(self.cases):
            c = self.cases
            rows += [
                ("slices", f"{int(c['slices'].sum())} (per case {c['slices'].min()}-{c['slices'].max()})"),
                ("shapes", _distinct(c["shape"])),
                ("spacings", _spacing_range(c["spacing"])),
                ("label values", ", ".join(str(v) for v in sorted({v for vs in c["labels"] for v in vs}))),
                ("class balance", _balance(c)),
                ("channels", _distinct(c["channels"])),
            ]
        return pd.DataFrame(rows, columns=["property", "value"])


def check_dataset(name: str, root: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                  progress: bool = True, **dataset_options) -> CheckReport:
    """Read every case of `name` under `root` (None: the sample data) and report."""
    preset = get_preset(name)
    unknown = sorted(set(dataset_options) - set(preset.options))
    if unknown:
        raise TypeError(f"{name} has no option(s) {', '.join(unknown)}; valid: {', '.join(preset.options) or 'none'}")
    options = {**preset.options, **dataset_options}
    root = sample_root(name, cache_dir) if root is None else Path(root).expanduser()
    empty = pd.DataFrame(columns=["case", "slices", "shape", "spacing", "labels", "counts", "channels"])
    try:
        source = source_for(name, root, options)
        case_paths = source.find(root, options)
    except DataError as exc:
        return CheckReport(name, root, empty, [(str(root), str(exc))])
    rows, warnings = [], []
    problems = [(str(root), message) for message in (source.audit(case_paths, options) if source.audit else [])]
    for path in tqdm(case_paths, desc=f"checking {name}", unit="case", disable=None if progress else True):
        case = source.case_id(path)
        # the readers reject NaN / inf voxels, naming the file and channel
        if source.inspect is not None:  # every problem of the case, not only the first
            arrays, case_problems = source.inspect(path, options)
            if case_problems:
                problems += [(case, message) for message in case_problems]
                continue
            image, label, meta = arrays
        else:
            try:
                image, label, meta = source.read(path, options)
            except DataError as exc:
                problems.append((case, str(exc)))
                continue
        counts = np.bincount(label.ravel(), minlength=1)
        values = np.flatnonzero(counts)
        if not (values > 0).any():
            warnings.append((case, f"{path}: no foreground (every label is 0); "
                                   "expected the structure to segment in most cases"))
        rows.append({
            "case": case,
            # 2D-from-3D and 3D cases: slices along the first / last axis (or the reader's
            # slice_axis); images: 1.
            "slices": 1 if source.kind == "images" else int(label.shape[meta["slice_axis"]] if "slice_axis" in meta
                                                            else label.shape[0] if source.kind == "slices"
                                                            else label.shape[-1]),
            "shape": "x".join(map(str, label.shape)),
            "spacing": tuple(round(float(s), 3) for s in meta["spacing"]),
            "labels": tuple(int(v) for v in values),
            "counts": {int(v): int(counts[v]) for v in values},
            "channels": ",".join(source.channels(options)),
        })
    cases = pd.DataFrame(rows, columns=empty.columns) if rows else empty
    if rows and not _any_foreground(rows):
        problems.append((str(root), f"{root}: no case has foreground (every label is 0); expected labelled cases"))
    return CheckReport(name, root, cases, problems, warnings)


def verify_dataset(name: str, root: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                   **dataset_options) -> CheckReport:
    """`check_dataset` as a gate before a search or retraining: the report when the data set has
    no problem (warnings allowed), else one DataError.

    Its message is one line (the commands print errors as one line) that starts with the data
    root, counts the problems and the failing cases, names the cases (the first 10, then how
    many more; "the data set" for problems of dataset.json or the root) and quotes the first
    problem; `python -m data.check` prints every problem on its own line, and the error's
    `report` attribute holds them all.
    """
    report = check_dataset(name, root, cache_dir=cache_dir, progress=False, **dataset_options)
    if report.ok:
        return report
    # problems of the data set as a whole are filed under the root
    failing = ["the data set" if key == str(report.root) else key for key in report.failing]
    shown = ", ".join(failing[:10]) + (f", ... {len(failing) - 10} more" if len(failing) > 10 else "")
    error = data_error(report.root, f"{len(report.problems)} problem(s) in {len(failing)} case(s) ({shown}); "
                       f"expected a data set that passes python -m data.check --dataset {name} --data-root "
                       f"{report.root} (which lists every problem); first: {report.problems[0][1]}")
    error.report = report
    raise error


def _any_foreground(rows: list[dict]) -> bool:
    """Whether any readable case has a label above 0."""
    return any(value > 0 for row in rows for value in row["labels"])


def _distinct(values: pd.Series, limit: int = 4) -> str:
    counts = values.value_counts()
    shown = ", ".join(f"{value} ({count})" for value, count in counts.head(limit).items())
    return shown + (f", ... {len(counts) - limit} more" if len(counts) > limit else "")


def _spacing_range(spacings: pd.Series) -> str:
    array = np.array(spacings.tolist(), dtype=float)
    text = {name: "x".join(f"{v:.3g}" for v in values)
            for name, values in (("median", np.median(array, 0)), ("min", array.min(0)), ("max", array.max(0)))}
    return ", ".join(f"{name} {values}" for name, values in text.items())


def _balance(cases: pd.DataFrame) -> str:
    totals: dict[int, int] = {}
    for counts in cases["counts"]:
        for value, count in counts.items():
            totals[value] = totals.get(value, 0) + count
    everything = sum(totals.values())
    return ", ".join(f"{value}: {100 * count / everything:.2f}%" for value, count in sorted(totals.items()))


def _parse_option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value  # a bare word such as MR


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of the check command (``python -m data.check``, ``lwnas check``)."""
    parser.add_argument("--dataset", required=True, choices=list_datasets())
    parser.add_argument("--data-root", default=None, help="dataset folder (default: the bundled sample data)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="list bad cases as skipped; fail only if none is usable")
    parser.add_argument("--per-case", action="store_true", help="also print one row per case")
    parser.add_argument("--option", action="append", type=_parse_option, default=[], metavar="KEY=VALUE",
                        help="dataset option, e.g. modality=MR, sequence=T1DUAL_InPhase or spatial_dims=3 (repeatable)")


def run(args: argparse.Namespace) -> int:
    """Check the data set, print the summary and every problem; 0 when the data set is usable."""
    report = check_dataset(args.dataset, args.data_root, **dict(args.option))
    print(_table(report.summary()))
    if args.per_case and len(report.cases):
        print()
        print(_table(report.cases.drop(columns=["counts"])))
    if report.warnings:
        print(f"\n{len(report.warnings)} warning(s):")
        for _, message in report.warnings:
            print(f"  {message}")
    if report.problems:
        heading = "skipped (--skip-bad)" if args.skip_bad else "problems"
        print(f"\n{len(report.problems)} {heading}:")
        for _, message in report.problems:
            print(f"  {message}")
    if args.skip_bad:
        return 0 if len(report.cases) else 1
    return 0 if report.ok else 1


def _table(frame: pd.DataFrame) -> str:
    return frame.to_string(index=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.check", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
