"""The paper's instruction templates (Appx. F), in the Alpaca layout of the Meditron-LPM24 checkpoints.

The text is character for character the ``prompt_template`` on the model cards of
language-plus-molecules/Meditron7b-{smiles2caption,caption2smiles}-LPM24 (the paper's per-task
models): a space after the source, three newlines before ``### Response:`` and nothing after it.
One place for every prompt: per-task training, negatives, alignment and generation all call
:func:`build_prompt`, so a model always sees at inference exactly the text it was trained on.
"""

from __future__ import annotations

from molmix.names import CAPTION_TASK, MOLECULE_TASK, check_task

PREAMBLE = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request."
)
INSTRUCTIONS = {
    CAPTION_TASK: (
        "You are a researcher. You can come up captions based on your existing knowledge. "
        "Captions are given against the following input. You should be as detailed as possible."
    ),
    MOLECULE_TASK: (
        "You are a researcher. You can come up molecule smile strings based on your existing knowledge. "
        "Molecule smile strings are given against the following input. You should be as detailed as possible."
    ),
}
INPUTS = {
    CAPTION_TASK: "Molecule: {source} \nIn that molecule, could you formulate a caption about?",
    MOLECULE_TASK: "Caption: {source} \nIn that caption, could you generate a molecule smile string?",
}
RESPONSE_MARKER = "### Response:"
SECTION_MARKER = "### "  # a new section after the response ends it


def template_parts(task: str) -> tuple[str, str]:
    """The fixed text of ``task``'s prompt before and after the source."""
    before, after = INPUTS[check_task(task)].split("{source}")
    head = f"{PREAMBLE}\n\n### Instruction:\n{INSTRUCTIONS[task]}\n\n### Input:\n{before}"
    return head, f"{after}\n\n\n{RESPONSE_MARKER}"


def build_prompt(task: str, source: str) -> str:
    """The full instruction prompt for ``source`` (a SMILES for mol2cap, a caption for cap2mol)."""
    head, tail = template_parts(task)
    return head + source + tail


def source_and_target(task: str, smiles: str, caption: str) -> tuple[str, str]:
    """(input, expected output) of a molecule-caption pair for ``task``."""
    return (smiles, caption) if check_task(task) == CAPTION_TASK else (caption, smiles)


def prompt_completion(task: str, smiles: str, caption: str) -> tuple[str, str]:
    """(prompt, completion) for supervised training on one pair."""
    source, target = source_and_target(task, smiles, caption)
    return build_prompt(task, source), target


def extract_response(text: str) -> str:
    """The response part of a generated continuation: up to the next ``### `` section, unaltered.

    Only surrounding whitespace is removed; characters inside the response (``#``, brackets, quotes in
    SMILES) are kept exactly.
    """
    end = text.find(SECTION_MARKER)
    return (text if end < 0 else text[:end]).strip()
