"""The ``molmix`` command: the evaluation parts of the pipeline, usable on their own.

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and ``run(args)``;
modules are imported only when their subcommand runs, so ``molmix score`` never loads NLI code.
Descriptions may be taken from the modules' docstrings: :class:`PlainTextHelpFormatter` shows their
reStructuredText markup as plain text.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from molmix import __version__

COMMANDS = {
    "score": ("molmix.scoring.cli", "score a predictions file with the MolT5 / L+M-24 metrics"),
    "nli": ("molmix.nli.cli", "atomic-level cross-NLI hallucination and coverage of caption pairs"),
}

_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`([^`]+)`")  # :func:`x`, :py:class:`x`, :ref:`title <target>`
_LINK = re.compile(r"`([^`<]+?)\s*<([^`>]+)>`__?")  # `title <https://...>`_
_LITERAL = re.compile(r"``(.+?)``")
_INTERPRETED = re.compile(r"`([^`]+)`_{0,2}")
_STRONG = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")


def _role_text(match: re.Match) -> str:
    text = match.group(1)
    if text.endswith(">") and "<" in text:  # an explicit title
        return text[: text.rindex("<")].strip()
    if text.startswith("~"):  # ~molmix.training.trainer_arguments: shown as its last part
        return text[1:].rsplit(".", 1)[-1]
    return text.lstrip("!")


def plain_text(text: str) -> str:
    """``text`` (reStructuredText, as in docstrings) without its inline markup: ``literals``,
    :role:`targets`, `links <url>`_ and **strong** become plain words. Single ``*`` is left alone
    (help texts write metric names such as ``*_fts``)."""
    text = _ROLE.sub(_role_text, text)
    text = _LITERAL.sub(r"\1", text)
    text = _LINK.sub(r"\1 (\2)", text)
    text = _INTERPRETED.sub(r"\1", text)
    return _STRONG.sub(r"\1", text)


class PlainTextHelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, showing descriptions, epilogs and argument help as :func:`plain_text`."""

    def _format_text(self, text: str) -> str:
        return super()._format_text(plain_text(text))

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = super()._get_help_string(action)
        return None if help_text is None else plain_text(help_text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="molmix", description=__doc__.splitlines()[0], formatter_class=PlainTextHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    command = argv[0] if argv and argv[0] in COMMANDS else None
    for name, (_, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, formatter_class=PlainTextHelpFormatter)
        if name == command:
            importlib.import_module(COMMANDS[name][0]).add_arguments(sub)
    args = parser.parse_args(argv)
    return importlib.import_module(COMMANDS[args.command][0]).run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
