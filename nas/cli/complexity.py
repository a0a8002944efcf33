"""The papers' complexity tables, reproduced from code with the published figures beside ours:

    lwnas complexity ops --size 32 --channels 32     # seed 002 Table 1, per search op
    lwnas complexity models --size 128               # the 3D networks against their papers
    lwnas complexity models --size 128 --genotype RUN/genotype.json   # ... and a searched one
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    tables = parser.add_subparsers(dest="table", required=True)
    ops_parser = tables.add_parser("ops", help="seed 002 Table 1: params/FLOPs per search op")
    ops_parser.add_argument("--size", type=int, default=32, help="input height = width")
    ops_parser.add_argument("--channels", type=int, default=32)
    ops_parser.add_argument("--spatial-dims", type=int, default=2, choices=(2, 3))
    ops_parser.add_argument("--latency", action="store_true",
                            help="the search ops' latency (batch 1) and activation memory "
                                 "beside their params and FLOPs, as ratios to sep_conv_3x3")
    ops_parser.add_argument("--device", default="cpu", help="where to time (with --latency)")
    ops_parser.add_argument("--repeats", type=int, default=30, help="timed runs (median)")
    models_parser = tables.add_parser("models", help="the 3D networks against their papers")
    models_parser.add_argument("--size", type=int, default=128, help="crop edge (cubic input)")
    models_parser.add_argument("--in-channels", type=int, default=4)
    models_parser.add_argument("--genotype", action="append", default=[], metavar="FILE",
                               help="also a searched 3D network: the genotype.json of a 3D "
                                    "search (repeatable)")
    for each in (ops_parser, models_parser):
        each.add_argument("--csv", help="also write the table as CSV to this file")
        each.add_argument("--markdown", action="store_true", help="print as a markdown table")


def run(args: argparse.Namespace) -> int:
    from nas.complexity import paper_tables

    if args.table == "ops" and args.latency:
        frame = paper_tables.latency_table(args.size, args.channels, args.spatial_dims,
                                           args.device, args.repeats)
        print(frame.to_markdown(index=False) if args.markdown else frame.to_string(index=False))
        if args.csv:
            frame.to_csv(args.csv, index=False)
        return 0
    if args.table == "ops":
        frame = paper_tables.ops_table(args.size, args.channels, args.spatial_dims)
    else:
        frame = paper_tables.models_table(args.size, args.in_channels,
                                          _genotype_networks(args.genotype))
    print(frame.to_markdown(index=False) if args.markdown else frame.to_string(index=False))
    note = paper_tables.table_notes(args.table)
    if note:
        print("\n" + note)
    if args.csv:
        frame.to_csv(args.csv, index=False)
        print(f"\nwrote {args.csv}")
    return 0


def _genotype_networks(paths):
    """label -> (builder, input channels) of each 3D genotype file (checked when read)."""
    from functools import partial

    from nas.run.networks import build_network, genotype_entry
    from nas.search import load_genotype_file

    networks = {}
    for path in paths:
        genotype, metadata = load_genotype_file(path)
        if genotype.spatial_dims != 3:
            raise ValueError(f"{path}: a {genotype.spatial_dims}D genotype; the models table is "
                             "of 3D networks (lwnas report RUN compares a 2D one with its U-Net)")
        networks[f"searched {path}"] = (partial(build_network, genotype_entry(genotype, metadata)),
                                        genotype.in_channels)
    return networks
