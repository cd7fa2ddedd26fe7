"""Print the hub.revisions block that pins every Hugging Face Hub repository a config fetches.

    python tools/pin_revisions.py configs/paper.yaml                 # print the block
    python tools/pin_revisions.py configs/paper.yaml --output pins.yaml

Needs internet (and a token, from HF_TOKEN or `hf auth login`, for gated models): each repository the
config uses (molmix.config.hub_references: the Hub models, baseline models, NLI and decomposer models,
the L+M-24 dataset repositories) is resolved to the commit its main branch points at now, with
huggingface_hub's HfApi. Paste the printed block into the config; a pin already in the config that
differs from main is shown in a comment, so updating a pin is a deliberate edit.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from molmix.config import hub_references, load_config  # noqa: E402

Resolver = Callable[[str, str], str]
"""(repository id, repository type "model" | "dataset") -> commit of its main branch."""


def hub_resolver() -> Resolver:
    """Resolve a repository's main branch to its commit with the Hub API."""
    from huggingface_hub import HfApi

    api = HfApi()

    def resolve(repo_id: str, repo_type: str) -> str:
        return api.repo_info(repo_id, repo_type=repo_type, revision="main").sha

    return resolve


def revisions_block(config: Mapping[str, Any], resolve: Resolver) -> str:
    """The ``hub: revisions:`` YAML block of ``config``'s Hub repositories, each with its current commit
    and the config keys that name it (and the differing pin the config has, if any)."""
    pinned = config["hub"]["revisions"]
    lines = ["hub:", "  revisions:"]
    references = hub_references(config)
    if not references:
        return "hub:\n  revisions: {}   # this configuration fetches nothing from the Hub\n"
    for repo, ref in references.items():
        commit = resolve(repo, ref["repo_type"])
        note = f"  # {ref['repo_type']}: {', '.join(ref['keys'])}"
        if repo in pinned and pinned[repo] != commit:
            note += f"; the config pins {pinned[repo]}"
        lines.append(f"    {repo}: {commit}{note}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", type=Path, help="a molmix config file, e.g. configs/paper.yaml")
    parser.add_argument("--output", type=Path, help="write the block to this file instead of printing it")
    args = parser.parse_args(argv)
    block = revisions_block(load_config(args.config), hub_resolver())
    if args.output:
        args.output.write_text(block)
    else:
        sys.stdout.write(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
