import pytest

from molmix.prompts import RESPONSE_MARKER, build_prompt, extract_response, prompt_completion


def test_prompts_follow_appendix_f_in_alpaca_layout():
    prompt = build_prompt("mol2cap", "C#N")
    assert prompt.startswith("Below is an instruction that describes a task")
    assert "### Instruction:\nYou are a researcher. You can come up captions" in prompt
    assert "### Input:\nMolecule: C#N\nIn that molecule, could you formulate a caption about?" in prompt
    assert prompt.endswith(RESPONSE_MARKER)
    assert not any(line.startswith((" ", "\t")) for line in prompt.splitlines())


def test_prompt_completion_directions():
    prompt, completion = prompt_completion("cap2mol", "C#N", "The molecule is a nitrile.")
    assert (
        "Caption: The molecule is a nitrile.\nIn that caption, could you generate a molecule smile string?"
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
