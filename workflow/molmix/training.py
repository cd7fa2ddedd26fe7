"""The one way molmix trains: settings hash -> resume from the newest complete checkpoint -> train ->
save (the model, its tokenizer and its model card: :mod:`molmix.model_card`) -> clean up the work folder.

Every training step (base pretraining and per-task SFT in :mod:`molmix.lm`, the seq2seq negative
models in :mod:`molmix.negatives`, alignment in :mod:`molmix.align`, the demo NLI model in
:mod:`molmix.nli.train`) gives its trainer the config block's library keywords as they are plus the
arguments of :func:`trainer_arguments`, and runs it with :func:`train_and_save`. Checkpoints go to
the output folder's work folder (:func:`work_dir_for`: ``.<name>.work`` beside it); a re-run after a
kill resumes from the newest complete one when the settings are the same, and the work folder is
removed once the outputs are saved (TensorBoard's event files, with ``report_to: tensorboard``, are kept:
:func:`keep_tensorboard_logs`). With ``load_best_model_at_end`` (alignment, Fig. 14) transformers
keeps the best evaluated checkpoint besides the newest; a resumed run reads which one that is from the
newest checkpoint's ``trainer_state.json`` and still loads it at the end.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from molmix.model_card import Card

log = logging.getLogger(__name__)

PIPELINE_ARGUMENTS = {
    "output_dir": "checkpoints go to the output folder's work folder",
    "seed": "the config's top-level seed",
    "data_seed": "the config's top-level seed",
    "use_cpu": "CUDA whenever it is available",
    "save_strategy": "a checkpoint every save_steps, so that a killed run resumes",
    "save_total_limit": "only the newest checkpoint is kept (and the best, with load_best_model_at_end)",
    "dataloader_num_workers": "data is loaded in the training process",
    "disable_tqdm": "progress bars go to the step's log",
}
"""TrainingArguments that molmix sets for every training (the config may not), and why."""
DEFAULT_ARGUMENTS = {"report_to": "none"}
"""TrainingArguments that molmix sets unless the config block does: no experiment trackers by default (the
loss history is written beside the outputs); ``report_to: tensorboard``, ``wandb``, ... passes through."""
TENSORBOARD_DIR = "runs"
"""Where transformers' TensorBoard callback writes inside ``output_dir`` (the work folder) unless
``TENSORBOARD_LOGGING_DIR`` is set."""
SFT_ARGUMENTS = {"completion_only_loss": "SFT's loss covers the completion only (Eq. 2)"}
"""SFTConfig arguments molmix sets besides :data:`PIPELINE_ARGUMENTS`."""
LORA_ARGUMENTS = {"task_type": "CAUSAL_LM: the policies are causal LMs", "bias": "none: adapters only"}
"""LoraConfig arguments molmix sets."""
CPU_ARGUMENTS = {
    "bf16": False,
    "gradient_checkpointing": False,
    "optim": "adamw_torch",
    "fp16": False,
    "tf32": False,
}
"""What the settings become without CUDA (:data:`CPU_ARGUMENTS_WHERE_SET` only where the settings name them)."""
CPU_ARGUMENTS_WHERE_SET = ("optim", "fp16", "tf32")
"""CUDA-only settings changed without CUDA only where the config names them (the library's default is fine)."""


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def work_dir_for(out_dir: str | Path) -> Path:
    """The training work folder (checkpoints, settings hash) of output folder ``out_dir``: ``.<name>.work`` beside it."""
    out_dir = Path(out_dir)
    return out_dir.parent / f".{out_dir.name}.work"


def trainer_arguments(
    settings: Mapping[str, Any], out_dir: str | Path, seed: int, **pipeline: Any
) -> dict[str, Any]:
    """Keyword arguments of a TrainingArguments / TRL config: ``settings`` (a config block, library
    names) as they are, plus :data:`PIPELINE_ARGUMENTS` (``pipeline`` overrides their values) and,
    where ``settings`` do not name them, :data:`DEFAULT_ARGUMENTS`.

    Without CUDA, bf16, gradient checkpointing and a configured fp16 or tf32 are off and a configured
    optimiser (e.g. paged AdamW) becomes adamw_torch (:data:`CPU_ARGUMENTS`); each change of a configured
    value is logged.
    """
    arguments = {**DEFAULT_ARGUMENTS, **settings}
    cuda = has_cuda()
    if not cuda:
        for key, value in CPU_ARGUMENTS.items():
            if key in CPU_ARGUMENTS_WHERE_SET and key not in arguments:
                continue
            if key in arguments and arguments[key] != value:
                log.info("no CUDA: %s=%r instead of the configured %r", key, value, arguments[key])
            arguments[key] = value
    arguments.update(
        output_dir=str(work_dir_for(out_dir)),
        seed=seed,
        data_seed=seed,
        use_cpu=not cuda,
        save_strategy="steps",
        save_total_limit=1,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    unknown = set(pipeline) - set(PIPELINE_ARGUMENTS) - set(SFT_ARGUMENTS)
    if unknown:
        raise ValueError(f"not arguments molmix sets: {sorted(unknown)}")
    arguments.update(pipeline)
    return arguments


def resumable_checkpoint(work_dir: str | Path, settings: Any) -> str | None:
    """The newest complete ``checkpoint-N`` of an interrupted run with the same ``settings``, if any.

    The work folder records a hash of the settings; checkpoints of a run with other settings are
    discarded rather than resumed. A checkpoint is complete once the Trainer has written its
    ``trainer_state.json``, the last file it saves; newer, incomplete ones (the run was killed while
    writing them) are removed. :func:`finish_run` removes the folder once the outputs are saved.
    """
    from molmix.artifacts import config_hash

    work_dir = Path(work_dir)
    stamp = work_dir / "settings.hash"
    expected = config_hash(settings)
    if work_dir.is_dir() and (not stamp.exists() or stamp.read_text() != expected):
        log.info("discarding checkpoints of a run with other settings in %s", work_dir)
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(expected)
    steps = {p: p.name.removeprefix("checkpoint-") for p in work_dir.glob("checkpoint-*") if p.is_dir()}
    numbered = [p for p, step in steps.items() if step.isdigit()]
    for checkpoint in sorted(numbered, key=lambda p: int(steps[p]), reverse=True):
        if _complete_checkpoint(checkpoint):
            log.info("resuming from %s", checkpoint)
            return str(checkpoint)
        log.warning("removing %s: incomplete (the run was killed while writing it)", checkpoint)
        shutil.rmtree(checkpoint)
    return None


def _complete_checkpoint(checkpoint: Path) -> bool:
    try:
        json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def keep_tensorboard_logs(work_dir: str | Path, out_dir: str | Path) -> Path | None:
    """Move TensorBoard's event files out of the work folder, which is removed next, to
    ``<out_dir>.tensorboard`` beside the output folder (replacing those of an earlier run); returns it."""
    runs = Path(work_dir) / TENSORBOARD_DIR
    if not runs.is_dir():
        return None
    out_dir = Path(out_dir)
    kept = out_dir.parent / f"{out_dir.name}.tensorboard"
    shutil.rmtree(kept, ignore_errors=True)
    shutil.move(runs, kept)
    log.info("TensorBoard event files kept in %s", kept)
    return kept


def finish_run(work_dir: str | Path) -> None:
    """Remove a finished run's checkpoints (its outputs are saved)."""
    shutil.rmtree(work_dir, ignore_errors=True)


def train_and_save(
    make_trainer: Callable[[], Any], settings: Any, out_dir: str | Path, save: Callable[[Any], None]
) -> tuple[Any, Any]:
    """Train and save, resuming a killed run: returns the trainer and its ``train()`` output.

    ``make_trainer`` builds the trainer (arguments from :func:`trainer_arguments` with the same
    ``out_dir``); ``settings`` is everything the result depends on, hashed to tell whether the work
    folder's checkpoints may be resumed; ``save(trainer)`` writes the outputs, after which the work
    folder is removed.
    """
    work_dir = work_dir_for(out_dir)
    checkpoint = resumable_checkpoint(work_dir, settings)  # before the trainer creates the folder
    trainer = make_trainer()
    output = trainer.train(resume_from_checkpoint=checkpoint)
    save(trainer)
    keep_tensorboard_logs(work_dir, out_dir)
    finish_run(work_dir)
    return trainer, output


def save_model(trainer: Any, tokenizer: Any, out_dir: str | Path, card: Card) -> None:
    """The trained model (safetensors), its tokenizer and its model card, written atomically to ``out_dir``.

    ``card`` describes the model; the scores the trainer knows (:func:`molmix.model_card.training_results`)
    are added to it.
    """
    from molmix.artifacts import atomic_directory
    from molmix.model_card import training_results, write_card

    card = replace(card, results={**training_results(trainer), **card.results})
    with atomic_directory(out_dir) as tmp:
        trainer.model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_card(tmp, card, out_dir)
