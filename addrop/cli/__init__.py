"""Command line: python -m addrop {attribute,train,prior,compare,sweep,replicate,faithfulness,bench} ... (`--help` on each).

One module per command, each with `add_parser(sub)` and `run(args)`; options that are settings come from the
config dataclasses (options.py). A UserError is printed as one line and exits 2.
"""
from __future__ import annotations

import argparse
import sys

from ..errors import ArgumentParser, UserError
from . import attribute, bench, compare, faithfulness, prior, replicate, sweep, train

COMMANDS = (attribute, train, prior, compare, sweep, replicate, faithfulness, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m addrop", description="AD-DROP: attribution, training, benchmarks")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
