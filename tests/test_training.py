"""The one training helper: pipeline arguments, resume after a kill, checkpoints of other settings."""

import logging

import pytest

from molmix import training
from molmix.training import (
    DEFAULT_ARGUMENTS,
    PIPELINE_ARGUMENTS,
    SFT_ARGUMENTS,
    train_and_save,
    trainer_arguments,
    work_dir_for,
)


def test_the_work_folder_is_hidden_beside_the_output(tmp_path):
    assert work_dir_for(tmp_path / "models" / "nli") == tmp_path / "models" / ".nli.work"
    assert work_dir_for("results/aligned/demo/slerp/cpo/adapter") == work_dir_for(
        "results/aligned/demo/slerp/cpo/adapter/"
    )


def test_the_arguments_molmix_adds_are_the_ones_the_config_may_not_set(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "has_cuda", lambda: True)  # no CPU adjustments
    arguments = trainer_arguments({"learning_rate": 0.1}, tmp_path / "out", 3, completion_only_loss=True)
    assert set(arguments) == {"learning_rate", *PIPELINE_ARGUMENTS, *SFT_ARGUMENTS, *DEFAULT_ARGUMENTS}
    assert arguments["report_to"] == "none"  # no experiment trackers unless the config names them
    assert trainer_arguments({"report_to": ["tensorboard"]}, tmp_path, 0)["report_to"] == ["tensorboard"]
    assert arguments["output_dir"] == str(work_dir_for(tmp_path / "out")) and arguments["data_seed"] == 3
    with pytest.raises(ValueError, match="not arguments molmix sets"):
        trainer_arguments({}, tmp_path, 0, learning_rate=1.0)


def test_without_cuda_bf16_checkpointing_and_fused_adamw_are_switched_off(tmp_path, monkeypatch, caplog):
    settings = {"bf16": True, "gradient_checkpointing": True, "optim": "adamw_torch_fused"}
    monkeypatch.setattr(training, "has_cuda", lambda: False)
    with caplog.at_level(logging.INFO):
        arguments = trainer_arguments(settings, tmp_path, 0)
    assert (arguments["bf16"], arguments["gradient_checkpointing"], arguments["optim"]) == (
        False,
        False,
        "adamw_torch",
    )
    assert "no CUDA: optim='adamw_torch' instead of the configured 'adamw_torch_fused'" in caplog.text
    assert "optim" not in trainer_arguments({}, tmp_path, 0)  # the library's default stays
    # the author's SFT (fp16, paged AdamW) and DPO/CPO/KTO (tf32) settings run without CUDA too
    cuda_only = trainer_arguments({"fp16": True, "tf32": True, "optim": "paged_adamw_32bit"}, tmp_path, 0)
    assert (cuda_only["fp16"], cuda_only["tf32"], cuda_only["optim"]) == (False, False, "adamw_torch")
    assert not {"fp16", "tf32"} & set(trainer_arguments({}, tmp_path, 0))
    monkeypatch.setattr(training, "has_cuda", lambda: True)
    assert trainer_arguments(settings, tmp_path, 0) | settings == trainer_arguments(settings, tmp_path, 0)


class Killed(Exception):
    pass


EVALUATION = {
    "eval_strategy": "steps",
    "eval_steps": 3,
    "load_best_model_at_end": True,
    "metric_for_best_model": "eval_loss",
    "greater_is_better": False,
}
"""Fig. 14's best-checkpoint settings as the schema's align.training defaults give them (eval_steps = save_steps)."""


def tiny_run(out_dir, settings, kill_at=None, learning_rate=0.1, best=False):
    """train_and_save of a linear model (8 examples, batch 2, 2 epochs = 8 steps, a checkpoint every 3
    steps), killed after step ``kill_at``; returns (trainer, final weights). ``best``: evaluated every 3
    steps on data the training moves away from (the labels negated), keeping the best checkpoint."""
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.layer = torch.nn.Linear(2, 1)

        def forward(self, x, labels):
            return {"loss": ((self.layer(x).squeeze(-1) - labels) ** 2).mean()}

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == kill_at:
                raise Killed

    data = [{"x": [i / 8, 1.0], "labels": i / 4} for i in range(8)]
    keywords = {"num_train_epochs": 2, "per_device_train_batch_size": 2, "learning_rate": learning_rate}
    keywords.update(save_steps=3, logging_steps=1)
    if best:
        keywords.update(EVALUATION)
    away = [{"x": row["x"], "labels": -row["labels"]} for row in data]

    def make_trainer():
        args = TrainingArguments(**trainer_arguments(keywords, out_dir, 0, disable_tqdm=True))
        evaluation = {"eval_dataset": away} if best else {}
        return Trainer(model=Linear(), args=args, train_dataset=data, callbacks=[Kill()], **evaluation)

    saved = {}
    trainer, _ = train_and_save(make_trainer, settings, out_dir, lambda t: saved.update(t.model.state_dict()))
    return trainer, saved


def losses(trainer):
    return {row["step"]: row["loss"] for row in trainer.state.log_history if "loss" in row}


def test_a_killed_run_resumes_and_checkpoints_of_other_settings_are_discarded(tmp_path, caplog):
    import torch

    out = tmp_path / "model"
    trainer, uninterrupted = tiny_run(out, {"lr": 0.1})
    assert not work_dir_for(out).exists()  # removed once the outputs are saved

    with pytest.raises(Killed):
        tiny_run(out, {"lr": 0.1}, kill_at=7)
    assert [p.name for p in work_dir_for(out).glob("checkpoint-*")] == ["checkpoint-6"]
    with caplog.at_level(logging.INFO):
        resumed, weights = tiny_run(out, {"lr": 0.1})
    assert f"resuming from {work_dir_for(out) / 'checkpoint-6'}" in caplog.text
    assert losses(resumed) == losses(trainer)  # steps 1-6 restored from the checkpoint, 7-8 trained
    assert all(torch.equal(weights[name], uninterrupted[name]) for name in uninterrupted)
    assert not work_dir_for(out).exists()

    with pytest.raises(Killed):
        tiny_run(out, {"lr": 0.1}, kill_at=7)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        other, _ = tiny_run(out, {"lr": 0.2}, learning_rate=0.2)
    assert "discarding checkpoints of a run with other settings" in caplog.text
    assert "resuming" not in caplog.text and sorted(losses(other)) == list(range(1, 9))


def evaluations(trainer):
    return {row["step"]: row["eval_loss"] for row in trainer.state.log_history if "eval_loss" in row}


def test_a_killed_run_resumes_and_still_keeps_the_best_checkpoint(tmp_path, caplog):
    """With load_best_model_at_end the best checkpoint is kept besides the newest (save_total_limit 1):
    a run killed after a newer checkpoint resumes from that one and ends with the best's weights."""
    import torch

    out = tmp_path / "model"
    trainer, uninterrupted = tiny_run(out, {"lr": 0.1}, best=True)
    evaluated = evaluations(trainer)
    assert sorted(evaluated) == [3, 6, 8]  # every eval_steps and after the last step
    best = min(evaluated, key=evaluated.get)
    assert best == 3 and trainer.state.best_model_checkpoint.endswith("checkpoint-3")  # moving away
    # the weights saved are the best step's, not the last step's
    _, last = tiny_run(tmp_path / "last", {"lr": 0.1})
    assert not all(torch.equal(uninterrupted[name], last[name]) for name in last)

    with pytest.raises(Killed):
        tiny_run(out, {"lr": 0.1}, kill_at=7, best=True)
    kept = sorted(p.name for p in work_dir_for(out).glob("checkpoint-*"))
    assert kept == ["checkpoint-3", "checkpoint-6"]  # the best besides the newest
    with caplog.at_level(logging.INFO):
        resumed, weights = tiny_run(out, {"lr": 0.1}, best=True)
    assert f"resuming from {work_dir_for(out) / 'checkpoint-6'}" in caplog.text
    assert evaluations(resumed) == evaluated and resumed.state.best_metric == trainer.state.best_metric
    assert all(torch.equal(weights[name], uninterrupted[name]) for name in uninterrupted)
    assert not work_dir_for(out).exists()


def test_tensorboard_event_files_outlive_the_work_folder(tmp_path):
    """transformers writes them to output_dir/runs (the work folder, removed after saving): they are moved
    beside the output folder, replacing those of an earlier run."""
    out_dir = tmp_path / "models" / "nli"

    class Trainer:
        def train(self, resume_from_checkpoint=None):
            events = work_dir_for(out_dir) / training.TENSORBOARD_DIR / "Dec05_host"
            events.mkdir(parents=True)
            (events / "events.out.tfevents.1").write_text("loss")

    for _ in range(2):
        train_and_save(Trainer, {"a": 1}, out_dir, lambda trainer: out_dir.mkdir(exist_ok=True))
    kept = tmp_path / "models" / "nli.tensorboard"
    assert (kept / "Dec05_host" / "events.out.tfevents.1").read_text() == "loss"
    assert not work_dir_for(out_dir).exists()
