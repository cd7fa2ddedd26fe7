"""Config blocks of library keywords: checked against the classes' fields, read from a stored list."""

import importlib.util

import pytest

from conftest import REPO
from molmix import library_settings
from molmix.config import ConfigError, load_config
from molmix.names import ALIGN_METHODS


@pytest.mark.parametrize(
    "key, value, message",
    [
        (
            "align.methods.dpo.precompute_ref_logprobs",
            True,
            "not a DPOConfig field; did you mean precompute_ref_log_probs?",
        ),
        ("align.lora.alpha", 16, "not a LoraConfig field; did you mean lora_alpha?"),
        ("align.lora_by_method.sft.dora", True, "not a LoraConfig field; did you mean use_dora?"),
        ("align.quantization.force", True, "not a BitsAndBytesConfig field"),
        ("models.negative.training.max_length", 128, "not a Seq2SeqTrainingArguments field"),
        ("models.pertask.training.epochs", 2, "not a SFTConfig field"),
        ("nli.model.training.arguments.batch_size", 8, "not a TrainingArguments field"),
        ("align.training.beta", 0.1, "not a field of SFTConfig (keys here go to every method's config"),
    ],
)
def test_a_key_the_library_does_not_have_is_refused_naming_its_path(write_config, key, value, message):
    with pytest.raises(ConfigError) as error:
        load_config(write_config({key: value}))
    assert str(error.value).startswith(f"{key}: {message}")


@pytest.mark.parametrize(
    "key, value",
    [
        ("align.training.output_dir", "elsewhere"),
        ("align.methods.kto.seed", 1),
        ("models.base.pretrain.use_cpu", True),
        ("models.pertask.training.completion_only_loss", False),
        ("nli.model.training.arguments.save_strategy", "no"),
        ("align.lora.task_type", "SEQ_CLS"),
        ("align.lora_by_method.sft.bias", "all"),
    ],
)
def test_a_key_molmix_sets_is_refused(write_config, key, value):
    with pytest.raises(ConfigError, match=rf"^{key}: molmix sets this itself \(.+\); remove it$"):
        load_config(write_config({key: value}))


def test_any_field_of_the_library_is_accepted(write_config):
    config = load_config(
        write_config(
            {
                "align.methods.dpo.precompute_ref_log_probs": True,
                "align.methods.cpo.simpo_gamma": 0.5,
                "align.training.adam_beta2": 0.95,
                "align.lora.use_rslora": True,
                "align.lora_by_method.sft.use_dora": True,
                "align.methods.sft.completion_only_loss": False,
                "align.quantization.bnb_4bit_quant_storage": "bfloat16",
                "models.negative.training.label_smoothing_factor": 0.1,
                "nli.model.training.arguments.adam_epsilon": 1e-6,
            }
        )
    )
    assert config["align"]["methods"]["dpo"]["precompute_ref_log_probs"] is True


@pytest.mark.parametrize(
    "block, value",
    [
        ("align.training", ["tensorboard"]),
        ("models.negative.training", "wandb"),
        ("align.methods.dpo", "none"),
    ],
)
def test_report_to_from_the_config_reaches_the_training_arguments(write_config, block, value):
    """report_to is passed through under transformers' name; absent, it is none (no trackers)."""
    from molmix.align import method_settings
    from molmix.training import trainer_arguments

    config = load_config(write_config({f"{block}.report_to": value}))
    if block.startswith("align"):
        settings = method_settings(config["align"], "dpo")
        default = method_settings(load_config(write_config())["align"], "dpo")
        dataclass_name = "DPOConfig"
    else:
        settings = config["models"]["negative"]["training"]
        default = load_config(write_config())["models"]["negative"]["training"]
        dataclass_name = "Seq2SeqTrainingArguments"
    assert "report_to" not in default  # a filled-in default would change every training step's params
    arguments = library_settings.library_class(dataclass_name)(**trainer_arguments(settings, "out", 0))
    assert arguments.report_to == ([] if value == "none" else [value] if isinstance(value, str) else value)
    without = library_settings.library_class(dataclass_name)(**trainer_arguments(default, "out", 0))
    assert without.report_to == []


def test_the_stored_field_lists_are_the_installed_libraries():
    """tools/library_fields.py rewrites workflow/molmix/library_fields.json after an upgrade."""
    spec = importlib.util.spec_from_file_location("library_fields", REPO / "tools/library_fields.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert library_settings.stored_fields() == tool.current()


def test_other_library_versions_are_checked_against_the_imported_classes(monkeypatch, write_config):
    stored = library_settings.stored_fields()
    stale = {
        "versions": {**stored["versions"], "trl": "0.0.1"},
        "fields": {**stored["fields"], "DPOConfig": ["beta"]},
    }
    monkeypatch.setattr(library_settings, "stored_fields", lambda: stale)
    library_settings.library_fields.cache_clear()
    try:
        assert library_settings.library_fields()["DPOConfig"] == frozenset(
            library_settings.class_fields("DPOConfig")
        )
        load_config(write_config({"align.methods.dpo.precompute_ref_log_probs": True}))
    finally:
        library_settings.library_fields.cache_clear()


def test_every_alignment_method_has_a_trl_config_and_trainer():
    from molmix.align import TRAINERS

    assert tuple(library_settings.METHOD_CONFIGS) == ALIGN_METHODS == tuple(TRAINERS)
