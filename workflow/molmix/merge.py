"""Merging the two per-task models into a universal one with mergekit (§3.2.1, Fig. 2, Appx. A).

Methods: ``slerp`` (spherical interpolation between the Mol2Cap and Cap2Mol models), ``ties``
(trim each task vector to its top ``density`` share, elect signs, merge; needs the shared base),
``task_arithmetic`` (weighted sum of task vectors on the base) and ``linear`` (the model-soup baseline).

Mixing ratio r1:r2 (Mol2Cap:Cap2Mol, e.g. the paper's 1:18) maps onto mergekit as follows; the
author's code does not show it, so this is our definition:
- slerp: the Mol2Cap model is mergekit's ``base_model`` (t = 0) and the Cap2Mol model the far end
  (t = 1), so ``t = r2 / (r1 + r2)`` (1:18 -> t = 0.947), on every layer (or a per-layer gradient list).
- ties / task_arithmetic / linear: model weights ``w1 = r1 / (r1 + r2)``, ``w2 = r2 / (r1 + r2)``.

The exact mergekit YAML is written into each merged model's folder (``mergekit.yaml``), so a merge
can be re-run by hand with ``mergekit-yaml``, beside molmix's model card (``README.md``,
:mod:`molmix.model_card`; mergekit's own is not written).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from molmix.artifacts import atomic_directory
from molmix.lm import ModelError, check_model_dir
from molmix.model_card import Card, write_card

log = logging.getLogger(__name__)

ARCHITECTURE_KEYS = (
    "model_type",
    "architectures",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
)


def merge_specs(cfg: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every configured merge by name: the named merges, then one per ratio of the sweep.

    Sweep merges are named ``<method>-<r1>to<r2>`` (e.g. ``slerp-1to18``); the config validator
    refuses a sweep name that a named merge has taken already.
    """
    from molmix.config import definition_defaults

    specs = {name: dict(spec) for name, spec in cfg["merges"].items()}
    sweep = cfg["ratio_sweep"]
    for r1, r2 in sweep["ratios"]:
        spec = {**definition_defaults("merge"), "method": sweep["method"], "ratio": [r1, r2]}
        if sweep["method"] == "ties":
            spec["density"] = sweep["density"]
        specs.setdefault(sweep_merge_name(sweep["method"], r1, r2), spec)
    return specs


def sweep_merge_name(method: str, r1: float, r2: float) -> str:
    return f"{method}-{r1:g}to{r2:g}"


def ratio_weights(ratio: tuple[float, float]) -> tuple[float, float]:
    """Mol2Cap and Cap2Mol weights of a mixing ratio r1:r2 (both parts positive, as the schema requires)."""
    r1, r2 = ratio
    return r1 / (r1 + r2), r2 / (r1 + r2)


def _tokenizer_fingerprint(path: Path) -> str:
    """A hash of the token -> id mapping (added and special tokens included).

    The mapping, not the files: checkpoints saved by different library versions serialise the same
    vocabulary differently, or as tokenizer.model instead of tokenizer.json.
    """
    from transformers import AutoTokenizer

    try:
        vocabulary = AutoTokenizer.from_pretrained(str(path)).get_vocab()
    except (OSError, ValueError) as err:
        raise ModelError(f"{path}: cannot load the tokenizer ({err})") from None
    return hashlib.sha256(json.dumps(sorted(vocabulary.items())).encode()).hexdigest()


def check_compatible(paths: Mapping[str, str | Path]) -> None:
    """The models share architecture, sizes, vocabulary and tokenizer, or a ModelError says which differ."""
    configs, tokenizers = {}, {}
    for role, path in paths.items():
        path = check_model_dir(path)
        configs[role] = json.loads((path / "config.json").read_text())
        tokenizers[role] = _tokenizer_fingerprint(path)
    roles = list(paths)
    first = roles[0]
    for role in roles[1:]:
        for key in ARCHITECTURE_KEYS:
            if configs[role].get(key) != configs[first].get(key):
                raise ModelError(
                    f"cannot merge {paths[first]} and {paths[role]}: {key} differs "
                    f"({configs[first].get(key)!r} vs {configs[role].get(key)!r})"
                )
        if tokenizers[role] != tokenizers[first]:
            raise ModelError(f"cannot merge {paths[first]} and {paths[role]}: their tokenizers differ")


def mergekit_config(
    spec: Mapping[str, Any], mol2cap: str, cap2mol: str, base: str | None, dtype: str = "float32"
) -> dict[str, Any]:
    """The mergekit YAML (as a dict) for one merge ``spec`` (a ``merge.merges`` entry; keys it leaves
    out take the schema's defaults)."""
    from molmix.config import definition_defaults

    spec = {**definition_defaults("merge"), **spec}
    method = spec["method"]
    w1, w2 = ratio_weights(tuple(spec["ratio"]))
    if method == "slerp":
        t = w2 if spec["t"] is None else spec["t"]
        return {
            "merge_method": "slerp",
            "base_model": mol2cap,
            "models": [{"model": mol2cap}, {"model": cap2mol}],
            "parameters": {"t": t},
            "dtype": dtype,
        }
    if method == "linear":
        return {
            "merge_method": "linear",
            "models": [
                {"model": mol2cap, "parameters": {"weight": w1}},
                {"model": cap2mol, "parameters": {"weight": w2}},
            ],
            "dtype": dtype,
        }
    if not base:
        raise ValueError(f"merge method {method!r} needs the shared base model")
    per_model = {"density": spec["density"]} if method == "ties" else {}
    return {
        "merge_method": method,
        "base_model": base,
        "models": [
            {"model": mol2cap, "parameters": {**per_model, "weight": w1}},
            {"model": cap2mol, "parameters": {**per_model, "weight": w2}},
        ],
        "parameters": {"normalize": spec["normalize"]},
        "dtype": dtype,
    }


def merge_models(
    spec: Mapping[str, Any], mol2cap: str, cap2mol: str, base: str | None, out_dir: str | Path, seed: int
) -> dict[str, Any]:
    """Run one merge with mergekit into ``out_dir`` (atomically) and return its YAML dict."""
    import torch
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    models = {"mol2cap": mol2cap, "cap2mol": cap2mol, **({"base": base} if base else {})}
    check_compatible(models)
    config = mergekit_config(
        spec, mol2cap, cap2mol, base if spec["method"] in ("ties", "task_arithmetic") else None
    )
    log.info("mergekit config:\n%s", yaml.safe_dump(config, sort_keys=False))
    options = MergeOptions(
        cuda=torch.cuda.is_available(),
        copy_tokenizer=True,
        lazy_unpickle=True,
        low_cpu_memory=True,
        random_seed=seed,
        write_model_card=False,
        quiet=True,
    )
    card = merge_card(spec, config, seed)
    with atomic_directory(out_dir) as tmp:
        run_merge(MergeConfiguration.model_validate(config), str(tmp), options=options)
        (tmp / "mergekit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        write_card(tmp, card, out_dir)
    return config


def merge_card(spec: Mapping[str, Any], config: Mapping[str, Any], seed: int) -> Card:
    """The model card of the merge ``spec`` run as the mergekit ``config``."""
    from molmix.config import definition_defaults

    spec = {**definition_defaults("merge"), **spec}
    merged = [*(m["model"] for m in config["models"]), config.get("base_model", config["models"][0]["model"])]
    r1, r2 = spec["ratio"]
    return Card(
        what=f"A universal model: the Mol2Cap and Cap2Mol per-task models merged with {spec['method']} "
        f"(§3.2.1), mixing ratio {r1:g}:{r2:g} (Mol2Cap:Cap2Mol).",
        base_models=list(dict.fromkeys(str(m) for m in merged)),
        relation="merge",
        method=f"mergekit's `{config['merge_method']}`; no training and no data. The exact mergekit "
        "configuration is `mergekit.yaml` in this folder (`mergekit-yaml mergekit.yaml <out>` re-runs it).",
        settings=spec,
        seed=seed,
        tags=["merge", "mergekit"],
    )
