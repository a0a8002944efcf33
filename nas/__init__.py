"""The toolkit's search and training side, one subpackage per concept:

- ``nas.search``: the architect, expected costs, derivation, genotype files, the search loop;
- ``nas.train``: the training loop of fixed networks, runtime, files, checkpoints, DDP;
- ``nas.losses``, ``nas.metrics``, ``nas.complexity``: usable alone (torch/numpy/scipy);
- ``nas.inference``: sliding windows and test-time augmentation over a predictor;
- ``nas.pictures``: pictures and reports of runs;
- ``nas.presets``: every default as data;
- ``nas.run``: what each command does (the only code that opens data sets from paths);
- ``nas.cli``: the ``lwnas`` command's parsers.
"""

#: The project version (setup.cfg reads it: ``version = attr: nas.__version__``); every
#: checkpoint's inference description records it.
__version__ = "0.1.0"
