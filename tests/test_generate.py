"""Generation: left padding, stopping, post-processing that keeps SMILES intact, flags, artifacts,
and models that cannot be loaded (recorded as not run) against errors while generating (raised)."""

import pytest
import torch

from conftest import PAIRS
from molmix import lm
from molmix.artifacts import read_artifact, read_metadata
from molmix.generate import generate_for_pairs, generate_step, generate_texts, load_generator
from molmix.prompts import build_prompt
from standins import remote_code_model

DECODING = {"batch_size": 4, "max_new_tokens": 6, "num_beams": 1}


class ScriptedCausalLM:
    """Stands in for a causal LM whose continuations are fixed texts, to test what happens after decoding.

    Like ``generate`` of a decoder-only model it returns the (left-padded) prompt followed by the new
    tokens, right-padded to a common length; it records the keyword arguments it was called with.
    """

    device = torch.device("cpu")

    def __init__(self, tokenizer, continuations):
        self.tokenizer, self.continuations, self.calls = tokenizer, list(continuations), []

    def generate(self, input_ids, attention_mask, max_new_tokens, **kwargs):
        self.calls.append(kwargs)
        batch = [self.continuations.pop(0) for _ in range(len(input_ids))]
        new = [self.tokenizer(t, add_special_tokens=False).input_ids[:max_new_tokens] for t in batch]
        width = max(map(len, new))
        pad = self.tokenizer.pad_token_id
        tail = torch.tensor([ids + [pad] * (width - len(ids)) for ids in new])
        return torch.cat([input_ids, tail], dim=1)


def constant_lm(model_dir, token_id):
    """A real tiny Llama whose every next-token choice is ``token_id``."""
    model = lm.load_causal_lm(model_dir)
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[token_id] = 10.0
    model.lm_head = head
    return model.eval()


def test_causal_models_pad_left_and_batching_does_not_change_outputs(tiny):
    model, tokenizer, seq2seq = load_generator(tiny / "cap2mol")
    assert not seq2seq and tokenizer.padding_side == "left"
    prompts = [build_prompt("mol2cap", s) for s in ("C", "C#CC(=O)O", "c1ccccc1[N+](=O)[O-]CCCCCC")]
    batched, _, _ = generate_texts(model, tokenizer, False, prompts, {**DECODING, "batch_size": 3})
    one_by_one, _, _ = generate_texts(model, tokenizer, False, prompts, {**DECODING, "batch_size": 1})
    assert batched == one_by_one


def test_length_sorted_batches_pad_less_and_keep_outputs_in_input_order(tiny):
    model, tokenizer, _ = load_generator(tiny / "cap2mol")
    smiles = ("c1ccccc1[N+](=O)[O-]CCCCCC", "C", "CCCCCCCCCCCCCCCCCCCC(=O)O", "O", "C#CC(=O)O", "N")
    prompts = [build_prompt("mol2cap", s) for s in smiles]
    decode = model.generate

    def run(length_sorted):
        shapes = []

        def recording(input_ids, **kwargs):
            shapes.append(input_ids.shape)
            return decode(input_ids=input_ids, **kwargs)

        model.generate = recording
        cfg = {**DECODING, "batch_size": 2, "length_sorted": length_sorted}
        outputs, truncated, _ = generate_texts(model, tokenizer, False, prompts, cfg)
        return outputs, truncated, sum(rows * width for rows, width in shapes)

    outputs, truncated, padded_tokens = run(False)
    sorted_outputs, sorted_truncated, sorted_padded_tokens = run(True)
    model.generate = decode
    assert (sorted_outputs, sorted_truncated) == (outputs, truncated)
    assert outputs == generate_texts(model, tokenizer, False, prompts, {**DECODING, "batch_size": 1})[0]
    assert sorted_padded_tokens < padded_tokens


def test_post_processing_keeps_smiles_and_cuts_at_the_next_section(tiny):
    tokenizer = lm.load_tokenizer(tiny / "cap2mol", padding_side="left")
    continuations = [
        ' C#C[C@@H](Cl)"O"/C=C\\Br</s>',
        "N#N\n### Instruction:\nmore",
        "</s>",
        "C" * 200,
    ]
    model = ScriptedCausalLM(tokenizer, continuations)
    prompts = [build_prompt("cap2mol", c) for c in PAIRS["caption"]] + [build_prompt("cap2mol", "x")]
    cfg = {**DECODING, "max_new_tokens": 40}
    predictions, truncated, stats = generate_texts(model, tokenizer, False, prompts, cfg)
    assert predictions == ['C#C[C@@H](Cl)"O"/C=C\\Br', "N#N", "", predictions[3]]
    assert predictions[3].startswith("C") and set(predictions[3]) <= {"C"}
    assert truncated == [False, False, False, True]  # only the output that never stopped
    assert model.calls[0]["stop_strings"] == ["### "]  # decoding itself stops at the marker
    assert stats["new_tokens"] > 0


@pytest.mark.parametrize(("token", "expected", "is_truncated"), [("</s>", "", False), ("#", "######", True)])
def test_empty_and_over_long_outputs_are_kept_and_flagged(tiny, token, expected, is_truncated):
    tokenizer = lm.load_tokenizer(tiny / "cap2mol", padding_side="left")
    model = constant_lm(tiny / "cap2mol", tokenizer.convert_tokens_to_ids(token))
    prompts = [build_prompt("cap2mol", c) for c in PAIRS["caption"]]
    predictions, truncated, _ = generate_texts(model, tokenizer, False, prompts, DECODING)
    assert predictions == [expected] * len(PAIRS)
    assert truncated == [is_truncated] * len(PAIRS)


def test_seq2seq_baselines_get_the_raw_input(tiny, tmp_path):
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = lm.load_tokenizer(tiny / "tok")
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=16,
        d_ff=32,
        d_kv=8,
        num_layers=1,
        num_heads=2,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    T5ForConditionalGeneration(config).save_pretrained(tmp_path / "t5")
    tokenizer.save_pretrained(tmp_path / "t5")
    assert load_generator(tmp_path / "t5")[1].padding_side == "right"
    frame, _ = generate_for_pairs(tmp_path / "t5", PAIRS, "mol2cap", DECODING, "t5")
    assert frame["input"].tolist() == PAIRS["smiles"].tolist()
    assert frame["reference"].tolist() == PAIRS["caption"].tolist()
    assert frame["model"].eq("t5").all() and len(frame) == len(PAIRS)


def test_seq2seq_task_prefix_goes_before_the_raw_input(tiny, tmp_path, monkeypatch):
    from molmix import generate

    seen = []

    def record(model, tokenizer, seq2seq, prompts, cfg):
        seen.extend(prompts)
        return [""] * len(prompts), [False] * len(prompts), {}

    monkeypatch.setattr(generate, "generate_texts", record)
    monkeypatch.setattr(generate, "load_generator", lambda path, **_: (None, None, "t5" in str(path)))
    prefix = "Caption the following SMILES: "
    frame, _ = generate_for_pairs(tmp_path / "t5", PAIRS, "mol2cap", DECODING, "txtchem", prefix)
    assert seen == [prefix + s for s in PAIRS["smiles"]]
    assert frame["input"].tolist() == PAIRS["smiles"].tolist()  # scored on the raw input
    with pytest.raises(ValueError, match="input_prefix .* is for seq2seq models"):
        generate_for_pairs(tiny / "cap2mol", PAIRS, "mol2cap", DECODING, "x", prefix)


def test_a_folder_serving_both_tasks_is_loaded_once(tiny, monkeypatch):
    from molmix import generate

    loads = []
    load = generate.load_generator
    monkeypatch.setattr(generate, "load_generator", lambda path, **kw: loads.append(path) or load(path, **kw))
    tasks = generate.generate_tasks(
        dict.fromkeys(("mol2cap", "cap2mol"), tiny / "cap2mol"), PAIRS, DECODING, "x"
    )
    assert [task for task, _, _ in tasks] == ["mol2cap", "cap2mol"]
    assert loads == [tiny / "cap2mol"]


def test_baselines_may_name_a_merge_or_carry_a_task_prefix(tmp_path, write_config):
    from conftest import run_snakemake

    config = write_config(
        {
            "baselines.slerp-only": {"mol2cap": "slerp", "cap2mol": "slerp"},
            "baselines.t5.input_prefix": {"mol2cap": "Caption: "},
        }
    )
    result = run_snakemake(
        tmp_path / "run",
        "-n",
        "--printshellcmds",
        "results/generations/demo/slerp-only/cap2mol.parquet",
        "results/generations/demo/t5/mol2cap.parquet",
        configfile=config,
    )
    assert "merge_models" in result.stdout and "download_model" not in result.stdout
    assert "results/models/demo/merged/slerp" in result.stdout


def test_generation_step_writes_each_task_with_decoding_settings(tiny, tmp_path):
    from molmix.artifacts import write_artifact

    test = tmp_path / "test.parquet"
    write_artifact(PAIRS, test, "pairs")
    outputs = {task: str(tmp_path / "gen" / f"{task}.parquet") for task in ("mol2cap", "cap2mol")}
    models = {"mol2cap": str(tiny / "mol2cap"), "cap2mol": str(tiny / "cap2mol")}
    generate_step(models, str(test), "pertask", DECODING, 0, outputs)
    frame = read_artifact(outputs["cap2mol"], "generations")
    assert frame["id"].tolist() == PAIRS["id"].tolist()
    assert frame["input"].tolist() == PAIRS["caption"].tolist()
    assert frame["reference"].tolist() == PAIRS["smiles"].tolist()
    assert frame["empty"].dtype == bool and frame["truncated"].dtype == bool
    assert read_artifact(outputs["mol2cap"], "generations")["input"].tolist() == PAIRS["smiles"].tolist()
    metadata = read_metadata(outputs["cap2mol"])
    assert metadata["decoding"] == DECODING
    assert metadata["throughput"]["new_tokens"] > 0


# ---- models that cannot be loaded: recorded as not run; errors while generating: raised


@pytest.fixture
def test_split(tmp_path):
    from molmix.artifacts import write_artifact

    path = tmp_path / "test.parquet"
    write_artifact(PAIRS, path, "pairs")
    return str(path)


@pytest.mark.parametrize(
    ("folder", "reason"),
    [
        ("remote-code", "runs only with trust_remote_code, which this configuration does not allow for it"),
        (
            "unknown-architecture",
            "transformers cannot build this model (The checkpoint you are trying to load has model type `internlm2`",
        ),
        ("missing-model", "not a model folder"),
    ],
)
def test_a_model_that_cannot_be_loaded_is_recorded_as_not_run(
    tiny, tmp_path, test_split, folder, reason, caplog
):
    if folder != "missing-model":
        remote_code_model(tiny / "cap2mol", tmp_path / folder, auto_map=folder == "remote-code")
    outputs = {task: str(tmp_path / "gen" / f"{task}.parquet") for task in ("mol2cap", "cap2mol")}
    models = dict.fromkeys(outputs, str(tmp_path / folder))
    generate_step(models, test_split, "chemllm", DECODING, 0, outputs, log_path="logs/chemllm.log")
    for path in outputs.values():
        assert len(read_artifact(path, "generations")) == 0
        metadata = read_metadata(path)
        assert metadata["log"] == "logs/chemllm.log" and metadata["decoding"] == DECODING
        assert str(tmp_path / folder) in metadata["failed"] and "\n" not in metadata["failed"]
        assert reason in metadata["failed"]
    assert f"chemllm/mol2cap: not run, its model cannot be loaded: {tmp_path / folder}" in caplog.text


def test_only_the_task_whose_model_cannot_be_loaded_is_not_run(tiny, tmp_path, test_split):
    outputs = {task: str(tmp_path / f"{task}.parquet") for task in ("mol2cap", "cap2mol")}
    models = {"mol2cap": str(tiny / "mol2cap"), "cap2mol": str(tmp_path / "missing-model")}
    generate_step(models, test_split, "x", DECODING, 0, outputs)
    assert read_artifact(outputs["mol2cap"], "generations")["id"].tolist() == PAIRS["id"].tolist()
    assert "failed" not in read_metadata(outputs["mol2cap"])
    assert len(read_artifact(outputs["cap2mol"], "generations")) == 0
    assert "not a model folder" in read_metadata(outputs["cap2mol"])["failed"]


def test_remote_code_runs_when_opted_in_with_a_revision(tiny, tmp_path, test_split):
    folder = str(remote_code_model(tiny / "cap2mol", tmp_path / "chemllm"))
    outputs = {"cap2mol": str(tmp_path / "cap2mol.parquet")}
    loading = {"cap2mol": {"trust_remote_code": True, "revision": "0123456789abcdef0123456789abcdef01234567"}}
    generate_step({"cap2mol": folder}, test_split, "chemllm", DECODING, 0, outputs, loading=loading)
    assert read_artifact(outputs["cap2mol"], "generations")["id"].tolist() == PAIRS["id"].tolist()
    assert "failed" not in read_metadata(outputs["cap2mol"])
    model, tokenizer, _ = load_generator(folder, **loading["cap2mol"])
    assert (type(model).__name__, type(tokenizer).__name__) == (
        "InternLM2ForCausalLM",
        "InternLM2TokenizerFast",
    )
    # opted in, but its code imports a package that is not installed: recorded, not a crash
    broken = remote_code_model(tiny / "cap2mol", tmp_path / "needs-a-package")
    code = broken / "modeling_internlm2.py"
    code.write_text("import molmix_not_installed_anywhere\n" + code.read_text())
    generate_step({"cap2mol": str(broken)}, test_split, "chemllm", DECODING, 0, outputs, loading=loading)
    failed = read_metadata(outputs["cap2mol"])["failed"]
    assert "needs-a-package: its code cannot be imported here (ImportError:" in failed
    assert "molmix_not_installed_anywhere" in failed


@pytest.mark.parametrize("during", ["loading", "generation"])
def test_running_out_of_memory_fails_the_job(tiny, tmp_path, test_split, monkeypatch, during):
    from transformers import AutoModelForCausalLM

    from molmix import generate

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    if during == "loading":
        monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", out_of_memory)
    else:
        monkeypatch.setattr(generate, "generate_texts", out_of_memory)
    output = tmp_path / "cap2mol.parquet"
    output.write_bytes(b"earlier output")
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        generate_step(
            {"cap2mol": str(tiny / "cap2mol")}, test_split, "x", DECODING, 0, {"cap2mol": str(output)}
        )
    assert output.read_bytes() == b"earlier output"  # no failure record: the job fails and is re-run
