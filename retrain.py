"""Train a searched network from scratch: ``python retrain.py --genotype FILE``.

The same as ``lwnas retrain``; ``python retrain.py --help`` lists the flags.
"""
import sys

from nas.cli import retrain
from nas.cli.common import script_main

if __name__ == "__main__":
    sys.exit(script_main(retrain, None, "retrain.py"))
