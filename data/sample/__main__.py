"""`python -m data.sample --dataset NAME --out DIR`: write a sample data set."""

from __future__ import annotations

import argparse
import sys

from data.sample.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.sample", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
