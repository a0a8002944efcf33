"""Write a sample data set in the exact on-disk format of the real one."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from data.sample.cli import add_arguments as add_sample_arguments

    add_sample_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from data.sample.cli import run as run_sample

    return run_sample(args)
