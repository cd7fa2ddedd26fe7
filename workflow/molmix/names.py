"""Names the whole pipeline shares, defined once: the rules, the package and the CLIs import them.

The schema's enums (workflow/schemas/config.schema.yaml) spell the same names for the config's
documentation; ``tests/test_names.py`` checks that they agree with these.
"""

from __future__ import annotations

CAPTION_TASK = "mol2cap"
"""Molecule (SMILES) -> caption."""
MOLECULE_TASK = "cap2mol"
"""Caption -> molecule (SMILES)."""
TASKS = (CAPTION_TASK, MOLECULE_TASK)

SPLITS = ("train", "validation", "test")

ALIGN_METHODS = ("sft", "dpo", "cpo", "kto")
"""Alignment fine-tuning methods (§3.2.2, Table 1)."""

MERGE_METHODS = ("slerp", "ties", "task_arithmetic", "linear")
"""mergekit methods of §3.2.1 (linear is the model soup)."""

NLI_BASELINES = ("full", "sentence", "summac")
"""The full-text and the two sentence-level NLI baselines (§4.2.3, Fig. 6 B, C, D)."""
NLI_METHODS = ("atomic", *NLI_BASELINES)
"""Atomic-level cross-NLI (§3.3) and its baselines."""

BASELINE_ROLES = ("pertask", "negative", "base")
"""A baseline's model per task, when not a merge or a Hub id: the per-task model of that direction,
the seq2seq negative model or the shared base."""


class UnknownName(ValueError):
    """A task or method name that is not one of the pipeline's; the message lists the known ones."""


def check_task(task: str) -> str:
    """``task`` if it is one of :data:`TASKS`, else an :class:`UnknownName` error naming it."""
    if task not in TASKS:
        raise UnknownName(f"unknown task {task!r}; expected one of {TASKS}")
    return task
