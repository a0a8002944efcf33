"""``python -m nas.complexity {ops,models} ...``: the same as ``lwnas complexity``."""
import sys

from nas.cli import main

sys.exit(main(["complexity", *sys.argv[1:]]))
