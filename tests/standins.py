"""Tiny stand-ins for Hub models that tests cannot download."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

INTERNLM2_CODE = {
    "configuration_internlm2.py": """from transformers import LlamaConfig


class InternLM2Config(LlamaConfig):
    model_type = "internlm2"
""",
    "modeling_internlm2.py": """from transformers import LlamaForCausalLM

from .configuration_internlm2 import InternLM2Config


class InternLM2ForCausalLM(LlamaForCausalLM):
    config_class = InternLM2Config
""",
    "tokenization_internlm2_fast.py": """from transformers import PreTrainedTokenizerFast


class InternLM2TokenizerFast(PreTrainedTokenizerFast):
    pass
""",
}


def remote_code_model(source: Path, out: Path, auto_map: bool = True) -> Path:
    """A copy of a tiny Llama folder (``source``) whose config names a model type transformers does not
    ship, ``internlm2`` as ChemLLM-7B-Chat's. With ``auto_map``, model and tokenizer classes are custom
    code in the folder, as in ChemLLM's Hub repository: transformers loads them only with
    trust_remote_code. Without, transformers has no class for the model at all."""
    shutil.copytree(source, out)
    config = json.loads((out / "config.json").read_text())
    config |= {"model_type": "internlm2", "architectures": ["InternLM2ForCausalLM"]}
    if auto_map:
        config["auto_map"] = {
            "AutoConfig": "configuration_internlm2.InternLM2Config",
            "AutoModelForCausalLM": "modeling_internlm2.InternLM2ForCausalLM",
        }
        tokenizer = json.loads((out / "tokenizer_config.json").read_text())
        tokenizer |= {
            "tokenizer_class": "InternLM2TokenizerFast",
            "auto_map": {"AutoTokenizer": [None, "tokenization_internlm2_fast.InternLM2TokenizerFast"]},
        }
        (out / "tokenizer_config.json").write_text(json.dumps(tokenizer))
        for name, code in INTERNLM2_CODE.items():
            (out / name).write_text(code)
    (out / "config.json").write_text(json.dumps(config))
    return out
