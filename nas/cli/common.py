"""What every subcommand shares: argument types, ``--debug``, and the rule that an error a user
can cause ends in one line ``error: ...`` and exit status 2 (a traceback only with --debug)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable, Sequence

from nas.train.files import OutputDirectoryError
from nas.train.optional import MissingPackageError
from nas.train.runtime import AUTO_PRECISION_RULE, NonFiniteLossError
from nas.train.stopping import StopRequested

#: Exit status of a command stopped by bad input (argparse uses 2 for bad flags as well).
USAGE_ERROR = 2
#: What a user's flags, files or data can raise; anything else is a bug and keeps its traceback.
#: (DataError and GenotypeError are ValueErrors; FileNotFoundError and friends are OSErrors; an
#: optional package a flag needs, e.g. tensorboard, is a MissingPackageError.)
USER_ERRORS = (ValueError, OSError, NonFiniteLossError, OutputDirectoryError, MissingPackageError)


def key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers, lists), else a string."""
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def sizes(text: str) -> tuple[int, ...] | int:
    """``128`` or ``160x192x128``."""
    try:
        values = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or NxNxN, got {text!r}") from None
    if len(values) not in (1, 3) or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected N or NxNxN (positive), got {text!r}")
    return values[0] if len(values) == 1 else values


def add_run_arguments(parser: argparse.ArgumentParser, network: str) -> None:
    """Where and how a training run executes (search and retrain alike)."""
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"),
                        help=AUTO_PRECISION_RULE)
    parser.add_argument("--channels-last", action="store_true", default=None)
    parser.add_argument("--compile", action="store_true", default=None,
                        help=f"torch.compile the {network}'s forward")
    parser.add_argument("--deterministic", action="store_true", default=None,
                        help="deterministic kernels only (slower on CUDA)")
    parser.add_argument("--workers", type=int, dest="num_workers", help="loader workers")
    parser.add_argument("--skip-bad", action="store_true", help="skip unreadable cases")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--option", type=key_value, action="append", default=[],
                        metavar="KEY=VALUE", dest="data_options",
                        help="data set option, e.g. modality=MR (CHAOS MR: four organs), "
                             "sequence=T1DUAL_InPhase (repeatable; see lwnas check)")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also log every epoch to RUN/tensorboard/ (scalars, op weights, cell "
                             "pictures; needs the tensorboard package); log.csv stays the record")


def run_directory_of(args: argparse.Namespace) -> str | None:
    """The run directory of ``--out`` or ``--resume``: a resumed run continues in its own directory,
    so ``--resume RUN --out OTHER`` is refused rather than ``--out`` ignored."""
    if args.resume and args.out and Path(args.resume).resolve() != Path(args.out).resolve():
        raise ValueError(f"--resume {args.resume} --out {args.out}: a resumed run continues in its own "
                         f"directory; drop --out, or start a new run in {args.out} without --resume")
    return args.resume or args.out


def add_overwrite_flag(parser: argparse.ArgumentParser, what: str) -> None:
    """``--overwrite``: the one flag, in every command, that lets a command replace ``what``."""
    parser.add_argument("--overwrite", action="store_true", help=f"replace {what} (refused without it)")


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of one line")


def guarded(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """``run(args)``, with a user's error turned into one line on stderr and status 2, and a
    run stopped by SIGTERM (its checkpoint written) into one line on stdout and status 0."""
    try:
        return run(args)
    except StopRequested as stop:
        if stop.is_main:
            print(stop, flush=True)
        return 0
    except USER_ERRORS as error:
        if getattr(args, "debug", False):
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        return USAGE_ERROR


def script_main(command: ModuleType, argv: Sequence[str] | None, prog: str) -> int:
    """``python search.py ...``: one subcommand as a stand-alone script with the same flags."""
    parser = argparse.ArgumentParser(prog=prog, description=command.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_arguments(parser)
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    args.parser = parser
    return guarded(command.run, args)
