import pytest

from molmix.prompts import RESPONSE_MARKER, build_prompt, extract_response, prompt_completion

# The prompt_template of the Meditron7b-{smiles2caption,caption2smiles}-LPM24 model cards, verbatim.
MODEL_CARD_TEMPLATES = {
    "mol2cap": (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n"
        "You are a researcher. You can come up captions based on your existing knowledge. "
        "Captions are given against the following input. You should be as detailed as possible.\n\n"
        "### Input:\nMolecule: %s \nIn that molecule, could you formulate a caption about?\n\n\n### Response:"
    ),
    "cap2mol": (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n"
        "You are a researcher. You can come up molecule smile strings based on your existing knowledge. "
        "Molecule smile strings are given against the following input. You should be as detailed as possible.\n\n"
        "### Input:\nCaption: %s \nIn that caption, could you generate a molecule smile string?\n\n\n### Response:"
    ),
}


@pytest.mark.parametrize("task, source", [("mol2cap", "C#N"), ("cap2mol", "The molecule is a nitrile.")])
def test_prompts_are_the_meditron_lpm24_templates(task, source):
    prompt = build_prompt(task, source)
    assert prompt == MODEL_CARD_TEMPLATES[task] % source
    assert prompt.endswith(RESPONSE_MARKER)
    assert not any(line.startswith((" ", "\t")) for line in prompt.splitlines())


def test_prompt_completion_directions():
    prompt, completion = prompt_completion("cap2mol", "C#N", "The molecule is a nitrile.")
    assert (
        "Caption: The molecule is a nitrile. \nIn that caption, could you generate a molecule smile string?"
        in prompt
    )
    assert completion == "C#N"
    assert prompt_completion("mol2cap", "C#N", "x")[1] == "x"
    with pytest.raises(ValueError, match="unknown task"):
        build_prompt("smiles2caption", "C")


def test_extract_response_keeps_smiles_characters():
    assert extract_response(' C#C[C@@H](Cl)"O"\n### Instruction:\nmore') == 'C#C[C@@H](Cl)"O"'
    assert extract_response("   ") == ""
    assert extract_response("N#N") == "N#N"


def test_generation_tokenizes_prompts_as_sft_training_does(tmp_path):
    """A BOS-adding tokenizer (Meditron's Llama) gets its BOS at generation, as TRL's SFT tokenization has it."""
    import torch
    from tokenizers.processors import TemplateProcessing

    from conftest import PAIRS
    from molmix import lm
    from molmix.generate import generate_texts

    lm.train_tokenizer(lm.corpus_texts(PAIRS), 300, tmp_path / "tok")
    tokenizer = lm.load_tokenizer(tmp_path / "tok", padding_side="left")
    bos = [(tokenizer.bos_token, tokenizer.bos_token_id)]
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(single="<s> $A", special_tokens=bos)

    class RecordingLM:
        device = torch.device("cpu")

        def generate(self, input_ids, attention_mask, max_new_tokens, **kwargs):
            self.input_ids = input_ids
            eos = torch.full((len(input_ids), 1), tokenizer.eos_token_id)
            return torch.cat([input_ids, eos], dim=1)

    model = RecordingLM()
    prompt = build_prompt("mol2cap", "C#N")
    generate_texts(model, tokenizer, False, [prompt], {"batch_size": 1, "max_new_tokens": 4})
    trained_on = tokenizer(text=prompt).input_ids  # what trl.SFTTrainer tokenizes for the prompt
    assert trained_on[0] == tokenizer.bos_token_id
    assert model.input_ids[0].tolist() == trained_on
