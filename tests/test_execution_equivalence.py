"""Faster execution of the same experiment (#22) against the plain path, through ``molmix.align.trainer_for``
on the tiny stand-in Llama with LoRA (CPU, float32, SDPA attention), the training pairs read as the
pipeline reads them (:func:`molmix.align.read_records`).

What is compared: the first ``loss`` of the trainer's log history (logging every step: the loss of the
first optimizer step) and every LoRA parameter's gradient when that step is about to be taken
(``on_pre_optimizer_step``, after the last micro-batch's backward pass; clipping off). How transformers
5.24 and TRL 1.16 scale the loss over gradient accumulation decides what agrees:

- SFT: the Trainer counts the completion tokens of all micro-batches of an optimizer step
  (``num_items_in_batch``) and TRL divides each micro-batch's summed token loss by that count, so
  1 x 4 and 4 x 1 both take the token mean over the four examples.
- DPO, CPO and KTO scale their own loss (``loss_is_scaled_for_ga = False``): each micro-batch's mean over
  its examples, divided by the accumulation steps, which for equal micro-batches is the mean over the
  step's examples. For DPO that is all.
- CPO's NLL term (``cpo_alpha``) is not equivalent: TRL takes it as a token mean over the chosen
  completions of one micro-batch, so 1 x 4 averages four per-completion means where 4 x 1 takes one mean
  over all their tokens; the two agree only when the chosen completions have one length. The preference
  term agrees (``cpo_alpha: 0``), and the losses differ by exactly ``cpo_alpha`` times the difference of
  the logged ``nll_loss``.
- KTO agrees at the first step only. Its KL reference point is estimated per micro-batch from mismatched
  pairs that TRL makes by rotating the completions within each group of ``per_device_train_batch_size``
  records, so 2 x 2 and 4 x 1 pair other completions and average over other groups. At the first step
  the policy is the reference (LoRA's B is zero), so the estimate is 0 in both (it is detached and
  clamped at 0); from the second step on the runs differ.
"""

import importlib.util

import pytest

from conftest import REPO

LOSS_TOLERANCE = 1e-6
"""Relative tolerance of a loss (float32 sums taken in another order)."""
EXECUTION_KEYS = {
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "padding_free",
    "train_sampling_strategy",
    "precompute_ref_log_probs",
}
"""Settings of configs/paper-faster.yaml that change how a run executes, not its losses (and SFT's
``max_length: null``, which TRL's padding-free batches need: they truncate nothing)."""
GRADIENT_TOLERANCE = {"rtol": 1e-5, "atol": 1e-7}
"""``torch.allclose`` tolerance of a gradient (the largest LoRA gradient here is about 0.04)."""
SETTINGS = {
    "learning_rate": 1e-3,
    "logging_steps": 1,
    "save_steps": 100,
    "max_grad_norm": 0,  # no clipping: the gradients as accumulated
    "eval_strategy": "no",
    "load_best_model_at_end": False,
}
"""align.training of every run here; each test adds its batch settings."""
LORA = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": "all-linear"}
EFFECTIVE_BATCH = 4
REFERENCE_COLUMNS = {
    "dpo": {"chosen_ids": "ref_chosen_logps", "rejected_ids": "ref_rejected_logps"},
    "kto": {"completion_ids": "ref_logps", "KL_completion_ids": "ref_KL_logps"},
}
"""The completion columns of each method's tokenised records and the reference log-prob column that
``precompute_ref_log_probs`` adds for each."""


def alignment_trainer(tiny, negatives_file, folder, method, own=None, **training):
    """``method``'s TRL trainer as ``train_alignment`` builds it, with :data:`SETTINGS` and ``training`` as
    align.training, ``own`` as align.methods.<method>; the LoRA initialisation seeded as each pipeline step."""
    from molmix.align import lora_config, method_lora, read_records, trainer_for
    from molmix.lm import load_causal_lm, load_tokenizer
    from molmix.runtime import seed_everything

    cfg = {
        "training": {**SETTINGS, **training},
        "methods": {method: {"max_length": 128, **(own or {})}},
        "lora": LORA,
    }
    seed_everything(0)
    records = read_records([str(negatives_file)], method, "train", 0)
    model, tokenizer = load_causal_lm(tiny / "cap2mol"), load_tokenizer(tiny / "cap2mol")
    lora = lora_config(method_lora(cfg, method))
    return trainer_for(method, model, tokenizer, records, cfg, 0, folder / "adapter", lora)


def first_step(trainer):
    """Train; the log of the first optimizer step and the LoRA gradients that step applies."""
    from transformers import TrainerCallback

    class Gradients(TrainerCallback):
        grads = None

        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            if state.global_step == 0:
                self.grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    gradients = Gradients()
    trainer.add_callback(gradients)
    trainer.train()
    return next(entry for entry in trainer.state.log_history if "loss" in entry), gradients.grads


def same_gradients(a, b):
    import torch

    return a.keys() == b.keys() and all(torch.allclose(a[n], b[n], **GRADIENT_TOLERANCE) for n in a)


def assert_same_step(a, b):
    (log_a, grads_a), (log_b, grads_b) = a, b
    assert log_a["loss"] == pytest.approx(log_b["loss"], rel=LOSS_TOLERANCE)
    assert same_gradients(grads_a, grads_b)


@pytest.mark.parametrize(
    ("method", "own", "micro_batch"),
    [("sft", {}, 1), ("dpo", {}, 1), ("cpo", {"cpo_alpha": 0.0}, 1), ("kto", {}, 2)],
    ids=["sft", "dpo", "cpo-preference-term", "kto-first-step"],
)
def test_accumulated_micro_batches_give_the_loss_and_gradients_of_one_batch(
    tiny, negatives_file, tmp_path, method, own, micro_batch
):
    """1 x 4 (KTO, which needs 2 a device: 2 x 2) against 4 x 1 (per-device batch x accumulation steps)."""
    steps = {
        batch: first_step(
            alignment_trainer(
                tiny,
                negatives_file,
                tmp_path / str(batch),
                method,
                own,
                max_steps=1,
                per_device_train_batch_size=batch,
                gradient_accumulation_steps=EFFECTIVE_BATCH // batch,
            )
        )
        for batch in (micro_batch, EFFECTIVE_BATCH)
    }
    assert_same_step(steps[micro_batch], steps[EFFECTIVE_BATCH])


def test_cpo_nll_term_is_a_token_mean_per_micro_batch(tiny, negatives_file, tmp_path):
    """Not equivalent: 1 x 4 and 4 x 1 differ by cpo_alpha times the difference of their NLL terms."""
    alpha = 1.0
    (accumulated, accumulated_grads), (batched, batched_grads) = (
        first_step(
            alignment_trainer(
                tiny,
                negatives_file,
                tmp_path / str(batch),
                "cpo",
                {"cpo_alpha": alpha},
                max_steps=1,
                per_device_train_batch_size=batch,
                gradient_accumulation_steps=EFFECTIVE_BATCH // batch,
            )
        )
        for batch in (1, EFFECTIVE_BATCH)
    )
    # the chosen completions' lengths differ (an untrained model's token losses are all near log(vocabulary),
    # so the two means differ by only about 4e-4 of their value here)
    assert accumulated["nll_loss"] != pytest.approx(batched["nll_loss"], rel=10 * LOSS_TOLERANCE)
    difference = alpha * (accumulated["nll_loss"] - batched["nll_loss"])
    assert accumulated["loss"] - batched["loss"] == pytest.approx(difference, abs=1e-6)
    assert not same_gradients(accumulated_grads, batched_grads)


def test_kto_kl_pairs_depend_on_the_per_device_batch(tiny, negatives_file, tmp_path):
    """Why KTO's later steps differ: each record's mismatched KL completion comes from its per-device batch."""
    kl_completions = {
        batch: alignment_trainer(
            tiny, negatives_file, tmp_path / str(batch), "kto", per_device_train_batch_size=batch
        ).train_dataset["KL_completion_ids"]
        for batch in (2, EFFECTIVE_BATCH)
    }
    assert kl_completions[2] != kl_completions[EFFECTIVE_BATCH]


@pytest.mark.parametrize("method", sorted(REFERENCE_COLUMNS))
def test_precomputed_reference_log_probs_equal_the_on_the_fly_ones(tiny, negatives_file, tmp_path, method):
    """One epoch at batch 4 with and without ``precompute_ref_log_probs``. On the fly, the reference is
    the forward pass without gradients and with the adapter disabled; each sequence's log-probability
    there equals the precomputed column's, and every step's loss is the same. The learning rate is
    high enough that the policy has left the reference after the first step."""
    import torch
    from peft.tuners.tuners_utils import BaseTunerLayer

    def run(folder, **own):
        return alignment_trainer(
            tiny,
            negatives_file,
            tmp_path / folder,
            method,
            own,
            learning_rate=1e-2,
            per_device_train_batch_size=EFFECTIVE_BATCH,
        )

    reference = {}

    def record_reference(module, args, kwargs, output):
        adapters_off = any(m.disable_adapters for m in module.modules() if isinstance(m, BaseTunerLayer))
        if torch.is_grad_enabled() or not adapters_off:
            return
        for ids, mask, logp in zip(
            kwargs["input_ids"], kwargs["attention_mask"], output.log_probs.sum(-1), strict=True
        ):
            reference[tuple(ids[mask.bool()].tolist())] = logp.item()

    on_the_fly = run("on-the-fly")
    on_the_fly.model.register_forward_hook(record_reference, with_kwargs=True)
    on_the_fly.train()
    precomputed = run("precomputed", precompute_ref_log_probs=True)
    precomputed.train()

    columns = REFERENCE_COLUMNS[method]
    rows = precomputed.train_dataset
    stored = {
        tuple(row["prompt_ids"] + row[ids]): row[logps] for row in rows for ids, logps in columns.items()
    }
    assert stored.keys() <= reference.keys()
    assert all(stored[k] == pytest.approx(reference[k], rel=LOSS_TOLERANCE) for k in stored)
    losses = [[e["loss"] for e in t.state.log_history if "loss" in e] for t in (on_the_fly, precomputed)]
    assert len(losses[0]) > 1 and losses[0] == pytest.approx(losses[1], rel=LOSS_TOLERANCE)
    assert losses[0][-1] != pytest.approx(losses[0][0], rel=1e-4)  # the policy moved: not the reference


def test_sft_padding_free_gives_the_loss_and_gradients_of_padded_batches(tiny, negatives_file, tmp_path):
    """One flattened sequence of four examples: on SDPA, transformers 5.24 masks attention between the
    examples from the position ids it restarts at each one (flash attention's varlen kernels do so too)."""
    batch = {"max_steps": 1, "per_device_train_batch_size": EFFECTIVE_BATCH}
    padded = first_step(alignment_trainer(tiny, negatives_file, tmp_path / "padded", "sft", **batch))
    trainer = alignment_trainer(
        tiny,
        negatives_file,
        tmp_path / "padding-free",
        "sft",
        {"padding_free": True, "max_length": None},
        **batch,
    )
    assert trainer.data_collator.padding_free and trainer.model.config._attn_implementation == "sdpa"
    assert_same_step(padded, first_step(trainer))


def test_execution_options_reach_trl_and_what_trl_refuses_is_refused_at_load(tiny, write_config, tmp_path):
    """Under TRL's own names in align.training / align.methods.<method> (molmix names none of them); the
    combinations TRL refuses only once a run starts are a config error naming the key."""
    from molmix.align import lora_config, trainer_for
    from molmix.config import ConfigError, load_config
    from molmix.lm import load_causal_lm, load_tokenizer

    options = {
        "sft": {"padding_free": True, "max_length": None, "train_sampling_strategy": "group_by_length"},
        "dpo": {"precompute_ref_log_probs": True},
        "kto": {"precompute_ref_log_probs": True},
    }
    overrides = {
        f"align.methods.{m}.{key}": value for m, own in options.items() for key, value in own.items()
    }
    align = load_config(write_config({**overrides, "align.training.use_liger_kernel": True}))["align"]
    records = {
        "sft": [{"prompt": "p", "completion": "a"}] * 2,
        "dpo": [{"prompt": "p", "chosen": "a", "rejected": "b"}] * 2,
    }
    records["kto"] = [{"prompt": "p", "completion": c, "label": c == "a"} for c in "ab"]
    trainers = {}
    for method, own in options.items():
        cfg = {
            "training": align["training"],
            "methods": {method: align["methods"][method]},
            "lora": align["lora"],
        }
        model, tokenizer = load_causal_lm(tiny / "cap2mol"), load_tokenizer(tiny / "cap2mol")
        lora = lora_config(cfg["lora"])
        trainers[method] = trainer_for(
            method, model, tokenizer, records[method], cfg, 0, tmp_path / method, lora, records[method]
        )
        assert {key: getattr(trainers[method].args, key) for key in own} == own
        assert trainers[method].args.use_liger_kernel
    # liger-kernel's Triton kernels need a GPU: not in requirements.lock, so training stops as it starts
    assert importlib.util.find_spec("liger_kernel") is None
    with pytest.raises(ImportError, match="liger-kernel"):
        trainers["sft"].train()

    with pytest.raises(ConfigError, match="align.methods.sft.max_length: SFT's padding_free without packing"):
        load_config(write_config({"align.methods.sft.padding_free": True}))
    with pytest.raises(
        ConfigError, match="align.training.train_sampling_strategy: group_by_length is not possible for cpo"
    ):
        load_config(write_config({"align.training.train_sampling_strategy": "group_by_length"}))


def test_bf16_lora_mode_is_opt_in_and_off_in_the_paper_config(tiny, write_config):
    """align.policy_dtype bfloat16 with 4-bit off: LoRA on a bf16 policy (a deviation from Appx. J's QLoRA)."""
    import torch

    from molmix.align import load_policy
    from molmix.config import load_config

    align = load_config(
        write_config({"align.policy_dtype": "bfloat16", "align.quantization.load_in_4bit": False})
    )["align"]
    policy, quantized = load_policy(tiny / "cap2mol", align["quantization"], dtype=align["policy_dtype"])
    assert not quantized and policy.dtype == torch.bfloat16
    paper = load_config(REPO / "configs/paper.yaml")["align"]
    assert paper["quantization"]["load_in_4bit"] and "policy_dtype" not in paper


def test_the_faster_paper_config_changes_only_how_the_grid_runs():
    """configs/paper-faster.yaml, layered on configs/paper.yaml as a second --configfile, is valid and keeps
    every method's effective batch (per-device batch x accumulation) and every other value of the
    paper's alignment settings; it sets only the execution options of docs/paper-scale.md."""
    import yaml
    from snakemake.utils import update_config

    from molmix.config import validate_config
    from molmix.names import ALIGN_METHODS

    def effective(align, method):
        settings = {**align["training"], **align["methods"][method]}
        batch = settings["per_device_train_batch_size"] * settings["gradient_accumulation_steps"]
        return batch, {k: v for k, v in settings.items() if k not in EXECUTION_KEYS}

    paper = yaml.safe_load((REPO / "configs/paper.yaml").read_text())
    faster = yaml.safe_load((REPO / "configs/paper-faster.yaml").read_text())
    layered = yaml.safe_load((REPO / "configs/paper.yaml").read_text())
    update_config(layered, faster)
    validate_config(paper)
    validate_config(layered)
    assert layered["align"]["methods"]["sft"].pop("max_length") is None
    paper["align"]["methods"]["sft"].pop("max_length")
    for method in ALIGN_METHODS:
        assert effective(layered["align"], method) == effective(paper["align"], method), method
    assert {k: v for k, v in layered["align"].items() if k not in ("training", "methods")} == {
        k: v for k, v in paper["align"].items() if k not in ("training", "methods")
    }
    for block in ("generate", "negatives"):
        assert {**layered[block], "length_sorted": False} == paper[block]
        assert layered[block]["length_sorted"]
