"""Every command README.md and docs/*.md show still parses, and the README's own-data example validates.

Commands are taken from fenced ```bash blocks and from any code (fenced or inline) that starts with
`snakemake`, `molmix` or `make`, `\\` continuations joined, comments and pipes after the first command
dropped. Each is checked as far as it can be offline, without training:
- `snakemake ...`: a dry run (`-n`) of the repository's Snakefile in a temporary working directory,
  with the command's own options and config files (paths relative to the repository root);
- `molmix <command> ...`: the arguments parsed by molmix's own argument parser (nothing runs);
- `make <target>`: `make -n <target>` (the target exists; nothing runs);
- `python <script> ...`: the script's `--help`, which must list every option the command uses.
Anything else is an external program (SLURM, tmux, the Hub client, ...), named in EXTERNAL with why it
is not run. Also: docs/configuration.md is tools/config_reference.py's output for the current schema.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from molmix.config import validate_config

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# Programs the docs show that are not molmix's: they need a cluster, a terminal, the network or root,
# so a test here cannot run them.
EXTERNAL = {
    "sacct": "SLURM accounting (docs/cluster.md); tests/test_slurm.py runs it on a real cluster",
    "squeue": "SLURM (docs/cluster.md)",
    "scancel": "SLURM (docs/cluster.md)",
    "sinfo": "SLURM (docs/cluster.md)",
    "scontrol": "SLURM (docs/cluster.md)",
    "tmux": "a terminal multiplexer (docs/cluster.md)",
    "screen": "a terminal multiplexer (docs/cluster.md)",
    "hf": "the Hugging Face client: `hf auth login` needs the network",
    "tensorboard": "TensorBoard, an optional tracker's viewer",
    "mergekit-yaml": "re-runs a merge by hand; needs a finished run's models",
    "rm": "deletes a run's outputs",
    "cd": "shell built-in",
    "git": "needs the network (clone)",
    "dot": "Graphviz, fed by snakemake --rulegraph (checked on its own)",
    "pip": "needs the network",
    "apt-get": "needs root and the network",
    "export": "shell built-in",
    "cat": "shows a file",
    "tail": "shows a file",
    "ls": "lists a folder",
}
# Commands of molmix's own that cannot be planned here, with the reason.
SKIPPED = {
    "snakemake --configfile configs/rehearsal.yaml": "its models are the stand-ins `python -m molmix.rehearsal`"
    " builds under resources/rehearsal/ first (make rehearsal; tests/test_rehearsal.py runs it)",
}
SNAKEMAKE = ("snakemake", ".venv/bin/snakemake")
PYTHON = ("python", "python3", ".venv/bin/python")
STARTS = re.compile(r"^(?:\.venv/bin/)?(?:snakemake|molmix|make)(?:\s|$)")
# Options that make Snakemake do something other than plan: dropped, the rest of the command is planned.
SNAKEMAKE_ACTIONS = {"--report": 1, "--unlock": 0, "--lint": 0}


def _commands_of(text: str) -> list[str]:
    commands = []
    for fence, body in re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.M | re.S):
        for line in body.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line and not line.startswith("#") and (fence in ("bash", "sh") or STARTS.match(line)):
                commands.append(line)
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    for span in re.findall(r"`([^`\n]+)`", prose):
        if STARTS.match(span.strip()):
            commands.append(span.strip())
    return commands


def _words(command: str) -> list[str]:
    words = shlex.split(command, comments=True)
    for stop in ("|", "&&", ";", ">", "2>&1"):
        if stop in words:
            words = words[: words.index(stop)]
    return words


def documented_commands() -> list[tuple[str, str]]:
    """(first page showing it, command), each command once: `.venv/bin/` and comments dropped."""
    found = {}
    for page in PAGES:
        for command in _commands_of(page.read_text()):
            key = shlex.join(shlex.split(command.removeprefix(".venv/bin/"), comments=True))
            found.setdefault(key, page.relative_to(REPO).as_posix())
    return [(page, command) for command, page in found.items()]


COMMANDS = documented_commands()


def test_the_docs_show_commands():
    pages = {page for page, _ in COMMANDS}
    assert "README.md" in pages and len(COMMANDS) > 20, COMMANDS


def _workdir(tmp_path: Path) -> Path:
    """A working directory that looks like the checkout to a command (config.yaml, configs/, profiles/),
    with the README's own-data example saved as my-data.yaml and a table with the columns it lists."""
    for name in ("config.yaml", "configs", "profiles"):
        (tmp_path / name).symlink_to(REPO / name)
    example = _readme_example()
    (tmp_path / "my-data.yaml").write_text(yaml.safe_dump(example))
    table = tmp_path / example["dataset"]["table"]["path"]
    table.parent.mkdir(parents=True)
    table.write_text("smiles,caption,split\nCCO,The molecule is an alcohol.,train\n")
    return tmp_path


def _snakemake(words: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    args, skip = [], 0
    for word in words[1:]:
        if skip:
            skip -= 1
        elif word in SNAKEMAKE_ACTIONS:
            skip = SNAKEMAKE_ACTIONS[word]
        elif word != "...":  # a placeholder for more options
            args.append(word)
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), *args]
    command += ["-n", "--quiet", "rules"]
    if not {"--cores", "-c", "--jobs", "-j"} & set(args):
        command += ["--cores", "1"]
    result = subprocess.run(command, cwd=_workdir(tmp_path), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(words)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _molmix(words: list[str]) -> None:
    from molmix import cli

    parser = argparse.ArgumentParser(prog="molmix")
    parser.add_argument("--version", action="version", version="molmix")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (module, _) in cli.COMMANDS.items():
        importlib.import_module(module).add_arguments(commands.add_parser(name))
    if len(words) == 2 and words[1] in cli.COMMANDS:  # the command named in prose
        return
    try:
        parser.parse_args(words[1:])
    except SystemExit as exit_:
        if exit_.code == 0:  # --help, --version
            return
        pytest.fail(f"{' '.join(words)}: molmix's parser refused it (exit {exit_.code})")


def _make(words: list[str]) -> None:
    result = subprocess.run(["make", "-n", *words[1:]], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(words)}\n{result.stderr}"


def _python(words: list[str]) -> None:
    script = REPO / words[1]
    assert script.is_file(), f"{' '.join(words)}: no {words[1]}"
    result = subprocess.run(
        [sys.executable, str(script), "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{words[1]} --help\n{result.stderr[-3000:]}"
    for option in (w.split("=")[0] for w in words[2:] if w.startswith("--")):
        assert option in result.stdout, f"{' '.join(words)}: {words[1]} --help has no {option}"


@pytest.mark.parametrize("page, command", COMMANDS, ids=[c for _, c in COMMANDS])
def test_documented_command_parses(page, command, tmp_path):
    words = _words(command)
    program = words[0]
    if any(command.startswith(prefix) for prefix in SKIPPED):
        return
    if program in SNAKEMAKE:
        _snakemake(words, tmp_path)
    elif program in ("molmix", ".venv/bin/molmix"):
        _molmix(words)
    elif program == "make":
        _make(words)
    elif program in PYTHON and words[1:2] == ["-m"]:
        assert words[2] == "molmix.rehearsal", f"{page}: {command}: add a check for python -m {words[2]}"
        assert importlib.util.find_spec(words[2]) is not None
    elif program in PYTHON:
        _python(words)
    else:
        assert program in EXTERNAL, f"{page}: {command}: add a check for {program}, or name it in EXTERNAL"


def _readme_example() -> dict:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Bring your own data")[1].split("\n## ")[0]
    return yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, flags=re.S).group(1))


def _layered(base: dict, overlay: dict) -> dict:
    """Config files layered as Snakemake layers them: mappings merged key by key, the rest replaced."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _layered(merged[key], value)
        else:
            merged[key] = value
    return merged


def test_the_readme_own_data_example_validates_and_plans(tmp_path):
    """The README's "Bring your own data" config, layered on config.yaml, validates and plans every stage
    on a table with the columns the README lists."""
    example = _readme_example()
    assert example["dataset"]["source"] == "table"
    config = _layered(yaml.safe_load((REPO / "config.yaml").read_text()), example)
    validate_config(config)
    assert config["dataset"]["name"] == "mydata" and config["nli"]["model"]["source"] == "hub"
    validate_config(_layered(yaml.safe_load((REPO / "configs/paper.yaml").read_text()), example))  # README
    command = "snakemake --configfile config.yaml my-data.yaml --workflow-profile profiles/cpu --cores 2"
    planned = _snakemake(_words(command), tmp_path).stdout
    for rule in ("download_dataset", "train_alignment", "score_nli", "make_tables"):
        assert rule in planned, planned


def test_configuration_reference_is_generated_from_the_schema():
    """docs/configuration.md is what tools/config_reference.py writes; re-run it when this fails."""
    sys.path.insert(0, str(REPO / "tools"))
    import config_reference

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    assert (REPO / "docs/configuration.md").read_text() == config_reference.render(schema), (
        "docs/configuration.md is stale: .venv/bin/python tools/config_reference.py"
    )


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    headings = re.findall(r"^#+\s+(.*)$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_links_between_the_pages_resolve():
    """Every relative link of README.md, CHANGELOG.md and docs/*.md names a file that exists, and an
    anchor names a heading of that page (content moved between pages keeps its links)."""
    broken = []
    for page in [*PAGES, REPO / "CHANGELOG.md"]:
        text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
