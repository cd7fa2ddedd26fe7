"""Paper-scale check on one GPU: a QLoRA alignment run and generation on a 7B-shaped model.

Usage (in the repository root, on a CUDA machine):
    python bench/gpu_paper_scale.py --json OUT.json [--run RUN_DIR] [--method dpo] [--steps 3] [--overlay FILE]
RUN_DIR (default: this checkout) is a finished demo run; its tokenizer (results/models/demo/tokenizer)
and preference pairs (results/negatives/demo/*.parquet) are the inputs. The tokenizer is padded with
placeholder tokens to Llama-2's 32,000 so every id the model can emit decodes.

A Llama with Meditron-7B's shape (Llama-2-7B: 32 layers, hidden 4096, MLP 11008, 32 heads, vocabulary
32,000; 6.7B parameters) gets random bf16 weights and is saved to local disk; then the pipeline's own
code runs on it with configs/paper.yaml's settings: `align.train_alignment` (4-bit NF4 loading,
LoRA r=64 on all linear layers, the TRL trainer, the adapter merged into the bf16 base and saved),
cut to `--steps` optimizer steps of `--examples-per-step` examples (`--batch-size` per forward pass;
the paper's is 1), and `generate.generate_texts` on one batch at the paper's decoding settings and one
larger batch. Per phase it records wall time, peak GPU memory and throughput, into OUT.json after
each phase (a run cut short keeps what it measured). The demo tokenizer writes each prompt template's
fixed text as one token, so its prompts (≈ 35 tokens) are shorter than at paper scale, where Llama's
tokenizer needs roughly 100 tokens for the template alone.
`--overlay configs/paper-faster.yaml` measures the paper's grid run faster (docs/paper-scale.md).
`--shape tiny` runs the same code on a small model on CPU, with 4-bit forced (bitsandbytes' CPU
kernels), to try the script before spending GPU time.
"""

import argparse
import itertools
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import yaml
from snakemake.utils import update_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from molmix import align, generate, lm  # noqa: E402
from molmix.config import validate_config  # noqa: E402
from molmix.names import ALIGN_METHODS  # noqa: E402

SHAPES = {  # Llama-2-7B, Meditron-7B's architecture (its config.json on the Hub)
    "7b": dict(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        max_position_embeddings=4096,
        vocab_size=32000,
    ),
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=1024,
        vocab_size=None,  # the tokenizer's
    ),
}

# tokens through the network per training example (p prompt, c chosen, r rejected): paired methods run
# prompt + chosen and prompt + rejected; KTO's examples are single completions, half of each kind
TOKENS_PER_EXAMPLE = {
    "sft": lambda p, c, r: p + c,
    "dpo": lambda p, c, r: 2 * p + c + r,
    "cpo": lambda p, c, r: 2 * p + c + r,
    "kto": lambda p, c, r: p + (c + r) / 2,
}
# FLOPs per token in units of N parameters: LoRA's forward (2N) and backward through the frozen base
# (2N, no weight gradients), plus the adapter-disabled reference forward (2N) for DPO and KTO
FLOPS_PER_TOKEN = {"sft": 4, "dpo": 6, "cpo": 4, "kto": 6}


class Recorder:
    """Phase timings, peak GPU memory and extra numbers, rewritten to ``path`` after each phase."""

    def __init__(self, path: Path, context: dict):
        self.path, self.result = path, {**context, "phases": {}}

    def phase(self, name: str, seconds: float, **numbers) -> None:
        entry = {"seconds": round(seconds, 2), **numbers}
        if torch.cuda.is_available():
            entry["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            torch.cuda.reset_peak_memory_stats()
        self.result["phases"][name] = entry
        logging.info("%s: %s", name, entry)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.result, indent=2) + "\n")


def timed(function, seconds: dict, key: str):
    """``function`` that adds its wall time to ``seconds[key]``."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - start

    return wrapper


def with_step_timer(trainer_for, step_ends: list):
    """``trainer_for`` whose trainers append each optimizer step's end time to ``step_ends``."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            step_ends.append(time.perf_counter())

    def wrapper(*args, **kwargs):
        trainer = trainer_for(*args, **kwargs)
        trainer.add_callback(StepTimer())
        return trainer

    return wrapper


def build_model(tokenizer_dir: Path, shape: dict, out_dir: Path) -> int:
    """Random bf16 (fp32 on CPU) Llama of ``shape`` saved with the padded tokenizer; its parameter count."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = lm.load_tokenizer(tokenizer_dir)
    vocab = shape["vocab_size"] or len(tokenizer)
    tokenizer.add_tokens([f"<unused{i}>" for i in range(len(tokenizer), vocab)])
    config = LlamaConfig(
        **{**shape, "vocab_size": vocab},
        num_key_value_heads=shape["num_attention_heads"],
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    cuda = torch.cuda.is_available()
    torch.manual_seed(0)
    with torch.device("cuda" if cuda else "cpu"):
        model = LlamaForCausalLM._from_config(config, dtype=torch.bfloat16 if cuda else torch.float32)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return model.num_parameters()


def example_tokens(negatives: pd.DataFrame, tokenizer) -> dict:
    """Mean tokens of a prompt, a chosen and a rejected completion."""
    lengths = {
        c: negatives[c].map(lambda t: len(tokenizer(t).input_ids)).mean()
        for c in ("prompt", "chosen", "rejected")
    }
    return {k: round(float(v), 1) for k, v in lengths.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=ROOT, help="a finished demo run (default: this checkout)")
    parser.add_argument("--json", type=Path, required=True, help="where the measurements go")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="7b")
    parser.add_argument("--method", choices=ALIGN_METHODS, default="dpo")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps")
    parser.add_argument("--examples-per-step", type=int, default=16, help="examples per optimizer step")
    parser.add_argument("--batch-size", type=int, help="per-device training batch (default: the paper's)")
    parser.add_argument("--batches", type=int, nargs="*", default=[16, 64], help="generation batch sizes")
    parser.add_argument("--max-new-tokens", type=int, help="default: configs/paper.yaml's")
    parser.add_argument("--work", type=Path, help="scratch folder for the models (default: /dev/shm or /tmp)")
    parser.add_argument(
        "--overlay",
        type=Path,
        help="a config layered over configs/paper.yaml, e.g. configs/paper-faster.yaml",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)

    paper = yaml.safe_load((ROOT / "configs/paper.yaml").read_text())
    if args.overlay:
        update_config(paper, yaml.safe_load(args.overlay.read_text()) or {})  # as a second --configfile
    validate_config(paper)  # with the schema's defaults, as the pipeline
    cfg = paper["align"]
    settings = cfg["methods"][args.method]
    batch_key = "per_device_train_batch_size"
    batch_size = args.batch_size or settings.pop(batch_key, cfg["training"][batch_key])
    settings.pop("gradient_accumulation_steps", None)
    cfg["training"].update(
        max_steps=args.steps,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=args.examples_per_step // batch_size,
        logging_steps=1,
        save_steps=10**6,
        eval_strategy="no",  # training throughput only: no evaluation, the last step kept
        load_best_model_at_end=False,
    )
    cuda = torch.cuda.is_available()
    if not cuda:
        cfg["quantize_without_cuda"] = True
    decoding = dict(paper["generate"])
    if args.max_new_tokens:
        decoding["max_new_tokens"] = args.max_new_tokens
    negatives_paths = sorted(str(p) for p in (args.run / "results/negatives/demo/train").glob("*.parquet"))
    validation_paths = sorted(
        str(p) for p in (args.run / "results/negatives/demo/validation").glob("*.parquet")
    )
    if not negatives_paths or not validation_paths:
        sys.exit(
            f"{args.run}: no results/negatives/demo/{{train,validation}}/*.parquet; run the demo there first (make demo)"
        )
    negatives = pd.concat(pd.read_parquet(p) for p in negatives_paths)

    shm = Path("/dev/shm")
    default_work = shm if shm.is_dir() and shutil.disk_usage(shm).free > 60 * 2**30 else None
    work = Path(tempfile.mkdtemp(prefix="molmix-gpu-", dir=args.work or default_work))
    recorder = Recorder(
        args.json,
        {
            "device": torch.cuda.get_device_name() if cuda else "cpu",
            "torch": torch.__version__,
            "shape": args.shape,
            "method": args.method,
            "overlay": str(args.overlay) if args.overlay else None,
            "training": cfg["training"],
            "lora": cfg["lora"],
            "quantization": cfg["quantization"],
            "decoding": decoding,
            "work": str(work),
        },
    )
    try:
        start = time.perf_counter()
        init_dir = work / "init"
        parameters = build_model(args.run / "results/models/demo/tokenizer", SHAPES[args.shape], init_dir)
        if cuda:
            torch.cuda.empty_cache()
        recorder.result["parameters"] = parameters
        recorder.phase("build_and_save_random_model", time.perf_counter() - start)

        seconds: dict[str, float] = {}
        align.load_policy = timed(align.load_policy, seconds, "load_4bit")
        align.merge_adapter = timed(align.merge_adapter, seconds, "merge_adapter_and_save")
        step_ends: list[float] = []
        align.trainer_for = with_step_timer(align.trainer_for, step_ends)
        outputs = {
            "adapter": work / "aligned" / "adapter",
            "model": work / "aligned" / "model",
            "history": work / "aligned" / "history.parquet",
            "curve": work / "aligned" / "curve.png",
        }
        start = time.perf_counter()
        history = align.train_alignment(
            str(init_dir), negatives_paths, args.method, cfg, 42, outputs, validation_paths=validation_paths
        )
        total = time.perf_counter() - start
        summary = history.dropna(subset=["train_runtime"]).iloc[-1]
        examples = args.steps * args.examples_per_step
        steady = pd.Series(step_ends).diff().dropna().median()  # later steps: no warm-up
        tokens = example_tokens(negatives, lm.load_tokenizer(init_dir))
        per_example = TOKENS_PER_EXAMPLE[args.method](tokens["prompt"], tokens["chosen"], tokens["rejected"])
        train_seconds = float(summary["train_runtime"])
        tokens_per_second = examples * per_example / train_seconds
        recorder.phase(
            f"train_alignment_{args.method}",
            total,
            **{k: round(v, 2) for k, v in seconds.items()},
            train_seconds=round(train_seconds, 2),
            examples=examples,
            mean_tokens=tokens,
            seconds_per_example=round(train_seconds / examples, 3),
            later_step_seconds=[round(b - a, 2) for a, b in itertools.pairwise(step_ends)],
            steady_seconds_per_example=round(float(steady) / args.examples_per_step, 3),
            tokens_per_second=round(tokens_per_second, 1),
            model_tflops=round(FLOPS_PER_TOKEN[args.method] * parameters * tokens_per_second / 1e12, 1),
            losses=[round(float(x), 4) for x in history["loss"].dropna()],
            quantized=bool(history["quantized"].iloc[0]),
        )

        start = time.perf_counter()
        model, tokenizer, seq2seq = generate.load_generator(outputs["model"])
        recorder.phase("load_merged_model", time.perf_counter() - start)
        prompts = negatives["prompt"].tolist()
        for batch in args.batches:
            start = time.perf_counter()
            responses, truncated, stats = generate.generate_texts(
                model, tokenizer, seq2seq, (prompts * batch)[:batch], {**decoding, "batch_size": batch}
            )
            recorder.phase(
                f"generate_batch_{batch}",
                time.perf_counter() - start,
                new_tokens=stats["new_tokens"],
                tokens_per_second=round(stats["tokens_per_second"], 1),
                truncated=int(sum(truncated)),
                empty=sum(not r for r in responses),
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
