"""The ``molmix`` command: the evaluation parts of the pipeline, usable on their own.

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and ``run(args)``;
modules are imported only when their subcommand runs, so ``molmix score`` never loads NLI code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "score": ("molmix.scoring.cli", "score a predictions file with the MolT5 / L+M-24 metrics"),
    "nli": ("molmix.nli.cli", "atomic-level cross-NLI hallucination and coverage of caption pairs"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="molmix", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    command = argv[0] if argv and argv[0] in COMMANDS else None
    for name, (_, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text)
        if name == command:
            importlib.import_module(COMMANDS[name][0]).add_arguments(sub)
    args = parser.parse_args(argv)
    return importlib.import_module(COMMANDS[args.command][0]).run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
