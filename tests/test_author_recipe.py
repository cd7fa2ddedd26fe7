"""The author's recipe (configs/author-code.yaml) beside the paper's: what it changes, that it plans,
that each of its options does what the author's code did (the ``kto_pair`` loss against its formula,
DoRA, the full-sequence SFT loss, near-greedy sampling, the SMILES post-processing), and that it trains
and generates end to end on tiny models."""

import math
import subprocess
import sys

import pytest
import torch
import yaml
from snakemake.utils import update_config

from conftest import PAIRS, REPO
from molmix.align import (
    completion_logps,
    kto_pair_loss,
    lora_config,
    method_lora,
    train_alignment,
    trainer_for,
)
from molmix.artifacts import read_artifact, read_metadata, write_artifact
from molmix.config import load_config, validate_config
from molmix.generate import (
    generate_for_pairs,
    generate_step,
    generate_texts,
    load_generator,
    postprocess_smiles,
)
from molmix.lm import load_causal_lm, load_tokenizer
from molmix.prompts import build_prompt

PAPER, AUTHOR = REPO / "configs/paper.yaml", REPO / "configs/author-code.yaml"
AUTHOR_KEYS = yaml.safe_load(AUTHOR.read_text())
SIZES = {"num_train_epochs", "eval_steps", "save_steps", "max_new_tokens"}
"""Keys of the author's recipe that set the run's length, scaled down for tiny models."""
TINY_TRAINING = {
    "num_train_epochs": 1,
    "max_steps": 2,
    "per_device_train_batch_size": 2,
    "learning_rate": 1e-3,
    "logging_steps": 1,
    "save_steps": 1,
    "eval_strategy": "steps",
    "eval_steps": 1,
    "per_device_eval_batch_size": 2,
    "load_best_model_at_end": True,
    "metric_for_best_model": "eval_loss",
    "greater_is_better": False,
}
TINY_METHODS = {
    "sft": {"max_length": 128},
    "dpo": {"beta": 0.1, "max_length": 128},
    "cpo": {"beta": 0.1, "max_length": 128, "max_completion_length": 64},
    "kto": {"beta": 0.1, "max_length": 128},
}


def leaves(node, prefix=()):
    """(path, value) of every leaf of a nested mapping."""
    for key, value in node.items():
        if isinstance(value, dict):
            yield from leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def effective(config, path):
    """The value ``path`` has in a validated config; a method's TRL keyword falls back to align.training's."""
    node = config
    for key in path:
        if not isinstance(node, dict) or key not in node:
            if path[:2] == ("align", "methods"):
                return config["align"]["training"].get(path[-1])
            return None
        node = node[key]
    return node


def author_alignment(method):
    """The alignment rule's settings for ``method`` under the author's recipe, its lengths scaled down."""
    align = AUTHOR_KEYS["align"]
    own = {k: v for k, v in align["methods"].get(method, {}).items() if k not in SIZES}
    shared = {k: v for k, v in align["training"].items() if k not in SIZES}
    return {
        "training": {**TINY_TRAINING, **shared},
        "methods": {method: {**TINY_METHODS[method], **own}},
        "lora": {"r": 4, "lora_alpha": 8, "target_modules": "all-linear", **align["lora"]},
        "lora_by_method": align["lora_by_method"],
        "sft_learns_eos": align["sft_learns_eos"],
        "quantization": {},
    }


def test_the_author_recipe_sets_only_what_differs_from_the_paper():
    paper = load_config(PAPER)
    same = [".".join(p) for p, value in leaves(AUTHOR_KEYS) if effective(paper, p) == value]
    assert not same, f"configs/author-code.yaml repeats the paper's values: {same}"


def test_the_author_recipe_is_a_valid_config_with_every_option_switched():
    config = yaml.safe_load(PAPER.read_text())
    update_config(config, AUTHOR_KEYS)  # as Snakemake layers a second --configfile
    validate_config(config)
    align, generate = config["align"], config["generate"]
    assert align["methods"]["dpo"]["loss_type"] == "kto_pair"
    assert align["methods"]["sft"]["completion_only_loss"] is False
    assert method_lora(align, "sft")["use_dora"] and "use_dora" not in method_lora(align, "cpo")
    assert (generate["do_sample"], generate["max_new_tokens"]) == (True, 300)
    assert generate["postprocess_smiles"] == {"delete_hash": True, "first_token_methods": ["sft", "kto"]}
    assert config["baselines"]["txtchem-t5"]["cap2mol"].endswith("t5-base-standard")


def planned_jobs(tmp_path, *configfiles):
    """{rule: job count} of a dry run of the repository's Snakefile with ``configfiles``, offline."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
    command += ["--directory", str(tmp_path), "--workflow-profile", "none", "--cores", "1"]
    command += ["--configfile", *map(str, configfiles), "-n", "--quiet", "rules"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout.split("Job stats:")[-1].splitlines()
    return {
        line.split()[0]: int(line.split()[1]) for line in table if line.strip() and line.split()[-1].isdigit()
    }


def test_the_author_recipe_plans_the_whole_experiment(tmp_path):
    """snakemake -n --configfile configs/paper.yaml configs/author-code.yaml (one flag: Snakemake keeps only the
    last of repeated --configfile flags): every job of the paper."""
    author = planned_jobs(tmp_path / "author", PAPER, AUTHOR)
    assert author == planned_jobs(tmp_path / "paper", PAPER)
    assert author["train_alignment"] == 13 and author["generate_responses"] == 16


def test_kto_pair_loss_is_the_published_formula():
    chosen, rejected, beta = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0]), 0.1
    z_chosen, z_rejected = max(0.0, (1.0 - 2.0) / 2), max(0.0, (0.5 + 3.0) / 2)  # 0 and 1.75

    def sigmoid(x):
        return 1 / (1 + math.exp(-x))

    terms = [1 - sigmoid(beta * (c - z_rejected)) for c in (1.0, -2.0)]
    terms += [1 - sigmoid(beta * (z_chosen - r)) for r in (0.5, 3.0)]
    assert kto_pair_loss(chosen, rejected, beta).item() == pytest.approx(sum(terms) / 4, rel=1e-6)
    # policy = reference: every term is 1 - σ(0)
    assert kto_pair_loss(torch.zeros(3), torch.zeros(3), beta).item() == pytest.approx(0.5)


def test_the_reference_point_is_not_detached():
    """TRL's kto_pair let gradients flow through the batch means z, so they differ from a detached z's."""
    chosen = torch.tensor([2.0, 4.0], requires_grad=True)
    rejected = torch.tensor([1.0, 5.0], requires_grad=True)
    kto_pair_loss(chosen, rejected, 1.0).backward()
    c, r = chosen.detach().requires_grad_(), rejected.detach().requires_grad_()
    z_chosen, z_rejected = c.mean().detach(), r.mean().detach()  # both positive here
    detached = torch.cat([1 - torch.sigmoid(c - z_rejected), 1 - torch.sigmoid(z_chosen - r)]).mean()
    detached.backward()
    assert not torch.allclose(chosen.grad, c.grad) and not torch.allclose(rejected.grad, r.grad)


def test_completion_logps_sums_the_completion_tokens_only():
    logits = torch.randn(2, 4, 5)
    input_ids = torch.tensor([[1, 2, 3, 4], [0, 4, 3, 2]])
    mask = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 0]])
    logps = torch.log_softmax(logits, dim=-1)
    expected = [logps[0, 1, 3] + logps[0, 2, 4], logps[1, 0, 4] + logps[1, 1, 3]]
    assert completion_logps(logits, input_ids, mask).tolist() == pytest.approx([e.item() for e in expected])


def dpo_trainer(tiny, tmp_path, loss_type):
    cfg = author_alignment("dpo")
    cfg["methods"]["dpo"]["loss_type"] = loss_type
    records = [
        {"prompt": build_prompt("mol2cap", s), "chosen": c, "rejected": "x"}
        for s, c in zip(PAIRS["smiles"], PAIRS["caption"], strict=True)
    ]
    model, tokenizer = load_causal_lm(tiny / "cap2mol"), load_tokenizer(tiny / "cap2mol")
    return trainer_for(
        "dpo", model, tokenizer, records, cfg, 0, tmp_path / "adapter", lora_config(cfg["lora"]), records
    )


def test_kto_pair_scores_the_log_ratios_trl_computes(tiny, tmp_path):
    """On one batch, with the policy moved away from the reference, kto_pair's log-probabilities and
    rewards are the ones TRL's own DPO loss computes."""
    from trl import DPOTrainer

    trainer = dpo_trainer(tiny, tmp_path, "kto_pair")
    assert type(trainer).__name__ == "KTOPairDPOTrainer"
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    trainer.model.train()
    with torch.no_grad():
        for name, parameter in trainer.model.named_parameters():
            if "lora_B" in name:
                parameter.fill_(0.05)
        trainer.compute_loss(trainer.model, batch)
        ours = {key: values[-1] for key, values in trainer._metrics["train"].items()}
        trainer.loss_types = ["sigmoid"]
        DPOTrainer.compute_loss(trainer, trainer.model, batch)
        trl = {key: values[-1] for key, values in trainer._metrics["train"].items()}
    assert ours["rewards/margins"] != 0
    for key in ("logps/chosen", "logps/rejected", "rewards/chosen", "rewards/rejected", "rewards/margins"):
        assert ours[key] == pytest.approx(trl[key], rel=1e-4, abs=1e-6), key


def test_kto_pair_is_not_combined_with_other_dpo_losses(tiny, tmp_path):
    with pytest.raises(ValueError, match="kto_pair cannot be combined"):
        dpo_trainer(tiny, tmp_path, ["sigmoid", "kto_pair"])


def sft_batch(tiny, tmp_path, sft_learns_eos=True, **sft):
    """A SFT trainer with the author's adapters (DoRA) and TRL keywords ``sft``, and its first batch."""
    cfg = {**author_alignment("sft"), "sft_learns_eos": sft_learns_eos}
    cfg["methods"]["sft"] = {**TINY_METHODS["sft"], **sft}
    records = [
        {"prompt": build_prompt("cap2mol", c), "completion": s}
        for s, c in zip(PAIRS["smiles"], PAIRS["caption"], strict=True)
    ]
    model, tokenizer = load_causal_lm(tiny / "cap2mol"), load_tokenizer(tiny / "cap2mol")
    lora = lora_config(method_lora(cfg, "sft"))
    trainer = trainer_for("sft", model, tokenizer, records, cfg, 0, tmp_path / "adapter", lora, records)
    return trainer, next(iter(trainer.get_train_dataloader()))


def test_sft_learns_the_completion_only_unless_the_full_sequence_is_asked_for(tiny, tmp_path):
    _, completion_only = sft_batch(tiny, tmp_path / "a")
    _, full = sft_batch(tiny, tmp_path / "b", completion_only_loss=False)
    attended = completion_only["attention_mask"].bool()
    assert (completion_only["labels"][attended] == -100).any()  # the prompt is not learned (Eq. 2)
    assert (full["labels"][full["attention_mask"].bool()] != -100).all()  # sft.py: every token is


def test_sft_without_eos_never_learns_to_stop(tiny, tmp_path):
    eos = load_tokenizer(tiny / "cap2mol").eos_token_id
    _, with_eos = sft_batch(tiny, tmp_path / "a", sft_learns_eos=True)
    _, without = sft_batch(tiny, tmp_path / "b", sft_learns_eos=False)
    assert (with_eos["labels"] == eos).sum() == len(with_eos["labels"])  # each completion ends with EOS
    assert (
        not (without["labels"] == eos).any()
        and not (without["input_ids"][without["attention_mask"].bool()] == eos).any()
    )
    assert (without["labels"][without["attention_mask"].bool()] == -100).any()  # still the completion only


def test_dora_reaches_peft_for_the_method_that_asks_for_it(tiny, tmp_path):
    trainer, _ = sft_batch(tiny, tmp_path)
    assert trainer.model.peft_config["default"].use_dora
    assert any("lora_magnitude_vector" in name for name, _ in trainer.model.named_parameters())
    assert not lora_config(method_lora(author_alignment("dpo"), "dpo")).use_dora


def test_near_greedy_sampling_gives_the_greedy_outputs(tiny):
    model, tokenizer, seq2seq = load_generator(tiny / "cap2mol")
    prompts = [build_prompt("cap2mol", c) for c in PAIRS["caption"]]
    decoding = {"batch_size": 3, "max_new_tokens": 8}
    greedy, _, _ = generate_texts(model, tokenizer, seq2seq, prompts, decoding)
    author = {k: v for k, v in AUTHOR_KEYS["generate"].items() if k not in SIZES | {"postprocess_smiles"}}
    torch.manual_seed(0)
    sampled, _, _ = generate_texts(model, tokenizer, seq2seq, prompts, {**decoding, **author})
    assert sampled == greedy


@pytest.mark.parametrize(
    ("system", "settings", "expected"),
    [
        ("cap2mol+kto", {}, ["C#N CC", "CC"]),
        ("cap2mol+kto", {"delete_hash": True}, ["CN CC", "CC"]),
        ("cap2mol+kto", {"first_token_methods": ["sft", "kto"]}, ["C#N", "CC"]),
        ("cap2mol+cpo", {"delete_hash": True, "first_token_methods": ["kto"]}, ["CN CC", "CC"]),
        ("meditron", {"delete_hash": True, "first_token_methods": ["kto"]}, ["CN CC", "CC"]),
    ],
)
def test_smiles_post_processing_as_the_author_did(system, settings, expected):
    assert postprocess_smiles(["C#N CC", "CC"], system, settings) == expected


def test_post_processing_edits_smiles_outputs_only(monkeypatch):
    monkeypatch.setattr(
        "molmix.generate.generate_texts", lambda *a: (["C#C the molecule"] * 3, [False] * 3, {})
    )
    cfg = {
        "batch_size": 3,
        "max_new_tokens": 8,
        "postprocess_smiles": {"delete_hash": True, "first_token_methods": ["sft"]},
    }
    generator = (None, None, True)  # a seq2seq stand-in: prompts are the raw inputs
    molecules, _ = generate_for_pairs("m", PAIRS, "cap2mol", cfg, "cap2mol+sft", generator=generator)
    captions, _ = generate_for_pairs("m", PAIRS, "mol2cap", cfg, "cap2mol+sft", generator=generator)
    assert molecules["prediction"].eq("CC").all() and captions["prediction"].eq("C#C the molecule").all()


def test_the_author_recipe_trains_and_generates_end_to_end(tiny, negatives_file, tmp_path):
    """Every method with the author's settings (lengths scaled down) on tiny models, then the author's
    decoding and post-processing on the SFT model: kto_pair DPO, DoRA SFT over the full sequence,
    CPO with the old CPOConfig's defaults, paged AdamW, fp16 and tf32 switched off without CUDA."""
    models = {}
    for method in ("sft", "dpo", "cpo", "kto"):
        out = {name: tmp_path / method / name for name in ("adapter", "model")}
        out |= {"history": tmp_path / method / "history.parquet", "curve": tmp_path / method / "loss.png"}
        history = train_alignment(
            str(tiny / "cap2mol"),
            [str(negatives_file)],
            method,
            author_alignment(method),
            0,
            out,
            validation_paths=[str(negatives_file)],
        )
        assert history["loss"].notna().any() and history["eval_loss"].notna().any()
        models[method] = out["model"]
    first_dpo = (
        read_artifact(tmp_path / "dpo" / "history.parquet", "training_log").dropna(subset=["loss"]).iloc[0]
    )
    assert first_dpo["loss"] == pytest.approx(0.5, abs=1e-5)  # kto_pair with policy = reference: 1 - σ(0)
    assert '"use_dora": true' in (tmp_path / "sft" / "adapter" / "adapter_config.json").read_text()
    assert '"use_dora": false' in (tmp_path / "cpo" / "adapter" / "adapter_config.json").read_text()

    test_path = tmp_path / "test.parquet"
    write_artifact(PAIRS, test_path, "pairs")
    generate = {**AUTHOR_KEYS["generate"], "batch_size": 3, "max_new_tokens": 16}
    outputs = {task: tmp_path / f"{task}.parquet" for task in ("mol2cap", "cap2mol")}
    generate_step(
        {task: str(models["sft"]) for task in outputs}, str(test_path), "cap2mol+sft", generate, 0, outputs
    )
    molecules = read_artifact(outputs["cap2mol"], "generations")["prediction"]
    assert not molecules.str.contains("#| ", regex=True).any()
    assert read_metadata(outputs["cap2mol"])["decoding"]["do_sample"] is True
