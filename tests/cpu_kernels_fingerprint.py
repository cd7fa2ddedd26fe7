"""Print a hash of the float results the demo's models depend on, for comparing CPU kinds.

Run by tests/test_environment.py on this CPU and under QEMU's emulated CPUs: GEMM of the sizes a
tiny model multiplies (MKL picks other kernels for small matrices), MKL's vector math (exp, log),
torch's vectorised kernels, and a few AdamW steps and a greedy generation of a tiny Llama and T5.
"""

import hashlib

import torch
from transformers import LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration

torch.set_num_threads(1)
digest = hashlib.sha256()


def add(*tensors):
    for tensor in tensors:
        digest.update(tensor.detach().contiguous().numpy().tobytes())


generator = torch.Generator().manual_seed(0)
x = torch.randn(8, 40, 64, generator=generator)
add(
    x[0] @ torch.randn(64, 65, generator=generator),
    torch.randn(256, 512, generator=generator) @ torch.randn(512, 384, generator=generator),
)
add(
    x.exp(),
    x.abs().log(),
    x.tanh(),
    torch.softmax(x, -1),
    torch.nn.functional.silu(x),
    torch.nn.functional.gelu(x),
)
add(
    torch.nn.functional.layer_norm(x, (64,)),
    torch.nn.functional.scaled_dot_product_attention(x, x, x, is_causal=True),
)


def train(model, batch, steps=3):
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    add(*model.state_dict().values())


ids = torch.randint(3, 200, (4, 24), generator=generator)
torch.manual_seed(0)
llama = LlamaForCausalLM(
    LlamaConfig(
        vocab_size=200,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
)
train(llama, {"input_ids": ids, "labels": ids})
add(llama.generate(ids[:2, :8], max_new_tokens=8, do_sample=False))
t5 = T5ForConditionalGeneration(
    T5Config(
        vocab_size=200,
        d_model=64,
        d_ff=128,
        d_kv=16,
        num_layers=2,
        num_heads=4,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=2,
    )
)
train(t5, {"input_ids": ids, "labels": ids.flip(1)})
add(t5.generate(input_ids=ids[:2], max_new_tokens=8, do_sample=False))
print(torch.backends.cpu.get_cpu_capability(), digest.hexdigest())
