"""Search a lightweight segmentation cell: ``python search.py --dataset chaos``.

The same as ``lwnas search``; ``python search.py --help`` lists the flags.
"""
import sys

from nas.cli import search
from nas.cli.common import script_main

if __name__ == "__main__":
    sys.exit(script_main(search, None, "search.py"))
