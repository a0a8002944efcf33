"""Verify a data set before training: every case read with the training readers, a summary
table, every problem one line naming its file (exit 1 if any)."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from data.check import add_arguments as add_check_arguments

    add_check_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from data.check import run as run_check

    return run_check(args)
