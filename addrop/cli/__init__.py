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
    for command_parser in sub.choices.values():  # a command's unknown options are reported by that command
        command_parser.set_defaults(_command_parser=command_parser)
    return parser


def main(argv=None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    if extra:  # argparse would report them from the top-level parser, pointing to a --help that does not list them
        args._command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
