"""The ``molmix`` command's small things: --version, plain-text help; and where ``make demo`` says its results are."""

import os
import re
import shutil
import subprocess
import tomllib

import pytest

from conftest import REPO
from molmix import __version__
from molmix.cli import main, plain_text


def test_version_is_pyprojects(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert capsys.readouterr().out == f"molmix {version}\n" and __version__ == version


def test_the_license_file_is_the_license_pyproject_names():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]["text"]
    assert declared == "MIT" and (REPO / "LICENSE").read_text().startswith("MIT License\n")


@pytest.mark.parametrize("command", [[], ["score"], ["nli"]])
def test_help_is_plain_text(capsys, command):
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    assert "molmix" in shown and "`" not in shown and not re.search(r":[a-z]+:", shown), shown


@pytest.mark.parametrize(
    "rst, plain",
    [
        ("The ``molmix`` command", "The molmix command"),
        (
            ":func:`trainer_arguments` and :data:`~molmix.training.PIPELINE_ARGUMENTS`",
            "trainer_arguments and PIPELINE_ARGUMENTS",
        ),
        (":py:class:`molmix.cli.PlainTextHelpFormatter`", "molmix.cli.PlainTextHelpFormatter"),
        (":ref:`the report <report>`", "the report"),
        (
            "see `MolT5 <https://github.com/blender-nlp/MolT5>`_",
            "see MolT5 (https://github.com/blender-nlp/MolT5)",
        ),
        ("**not** comparable", "not comparable"),
        ("the *_fts keys (*_fts_molt5 / *_fts_lpm24)", "the *_fts keys (*_fts_molt5 / *_fts_lpm24)"),
    ],
)
def test_plain_text_drops_rst_inline_markup(rst, plain):
    assert plain_text(rst) == plain


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_ends_saying_where_the_report_and_tables_are():
    # -o: the virtual environment counts as built, so nothing is installed; -n: commands are only printed
    # run by `make test`, the child make would inherit MAKEFLAGS and MAKELEVEL and print directory lines
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", ".venv/.setup-complete", "demo"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("echo") and "results/report.html" in last and "results/tables/" in last
