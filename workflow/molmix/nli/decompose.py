"""Atomic decomposition of captions (§3.3, Appx. E): backends, the bullet-list parser, the cache.

Three backends split a caption into atomic facts, each stating one piece of information:

- ``llm``: a causal LM through transformers with the Appx. E instruction (Fig. 11), the tokenizer's
  chat template with ``add_generation_prompt``, greedy decoding in left-padded batches; the answer is
  parsed by :func:`parse_bullets`. Paper scale: ``meta-llama/Meta-Llama-3-8B-Instruct``.
- ``openai``: the same messages sent to an OpenAI-compatible endpoint (a local vLLM server, say),
  temperature 0, with the client's timeout and retries.
- ``rules``: :func:`decompose_rules`, a deterministic splitter for template captions such as
  L+M-24's and the demo's ("The molecule is a X, Y, and Z that impacts A and B." gives one fact per
  item). No library parses these templates, so it is hand-written; it needs no model.

Each backend returns a :class:`Decomposition` per text: the facts, and whether the answer was cut off
at ``max_new_tokens`` (``truncated``: the llm backend's greedy answer reached the limit without an end
token, the openai endpoint answered with ``finish_reason`` "length"; the rules backend never
truncates). A truncated answer may miss its last facts, so the flag is kept per item and counted in
the NLI summaries.

Decompositions are cached in a :class:`~molmix.nli.cache.ParquetStore` keyed by (backend, model,
prompt version, batch plan, sha256 of the text): a re-run decomposes nothing. The rules and openai
backends answer each text on its own (empty batch plan), so a text is decomposed once for every
system; the llm backend's greedy answers depend on the left-padded batch they were decoded in, so its
decompositions are reused only by a call with the same texts in the same order (see
:mod:`molmix.nli.cache`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from tqdm import tqdm

from molmix.nli.cache import ParquetStore, batch_plan, text_hash

log = logging.getLogger(__name__)

BACKENDS = ("rules", "llm", "openai")

# Bumped whenever the instruction, the one-shot example or the rules splitter changes what comes out,
# so cached decompositions of an older version are not reused.
PROMPT_VERSION = "appx-e-1"
RULES_VERSION = "rules-1"

# Appx. E, Fig. 11 (the figure shows the caption in braces as a placeholder; the text goes in bare)
INSTRUCTION = (
    "Please breakdown the following text into independent facts:\n{text}\n\n**\n"
    "IMPORTANT: No words or explanation is needed. Only include truths that are factual. You should "
    "NOT include any prior knowledge, and take the text at face value when extracting facts.\n**"
)
# Fig. 11's own example, used as a one-shot exchange before the real request (nli.decomposer.one_shot)
EXAMPLE_TEXT = (
    "It impacts both atherosclerosis and cardiovascular disease. The molecule is a nutrient, thyroxine "
    "treatment, fat storage that impacts pancreatitis and metabolic syndrome."
)
EXAMPLE_FACTS = (
    "The molecule impacts atherosclerosis.",
    "The molecule impacts cardiovascular disease.",
    "The molecule is a nutrient.",
    "The molecule is a thyroxine treatment.",
    "The molecule impacts pancreatitis.",
    "The molecule impacts metabolic syndrome.",
    "The molecule is involved in fat storage.",
)
# Fig. 11's "### User: / ### Assistant:" layout, for tokenizers without a chat template
FALLBACK_TEMPLATE = "### User:\n{content}\n### Assistant:\n"


class DecompositionError(ValueError):
    """A decomposer that cannot run (unknown backend, unreachable endpoint, bad model)."""


class Decomposition(NamedTuple):
    """The atomic facts of one text, and whether the decomposer's answer was cut off at its token limit."""

    atoms: list[str]
    truncated: bool = False


class Answer(NamedTuple):
    """One raw answer of an LLM and whether it stopped at the token limit instead of an end token."""

    text: str
    truncated: bool


Decomposer = Callable[[Sequence[str]], Sequence[Decomposition | Sequence[str]]]
"""texts -> one decomposition each (a plain list of facts counts as not truncated)."""


def messages_for(text: str, one_shot: bool = True) -> list[dict[str, str]]:
    """Chat messages asking for the atomic facts of ``text`` (Fig. 11, optionally with its example)."""
    messages = []
    if one_shot:
        messages += [
            {"role": "user", "content": INSTRUCTION.format(text=EXAMPLE_TEXT)},
            {"role": "assistant", "content": "\n".join(f"- {fact}" for fact in EXAMPLE_FACTS)},
        ]
    return messages + [{"role": "user", "content": INSTRUCTION.format(text=text)}]


# ---------------------------------------------------------------------------------------------
# Bullet lists

BULLET = re.compile(r"^\s*(?:[-*•‣–]|\(?\d{1,3}[.)])\s+")
# a bullet starting mid-line after a sentence end: "- A. - B." (Fig. 11 prints its answer this way)
INLINE_BULLET = re.compile(r"(?<=[.!?;])\s+(?=(?:[-*•‣–]|\(?\d{1,3}[.)])\s+\S)")


def parse_bullets(answer: str) -> list[str]:
    """The items of an LLM's bullet list: ``-``, ``*``, ``•``, ``1.``, ``1)`` or ``(1)`` markers.

    Bullets may be one per line or run together on one line after sentence ends ("- A. - B.").
    When any line is a bullet, non-bullet lines (a preamble such as "Here are the facts:") are
    dropped; an answer without bullets counts each non-empty line as one fact. Items are stripped
    of surrounding whitespace and quotes, and exact duplicates are dropped (order kept).
    """
    lines = [part for line in answer.splitlines() for part in INLINE_BULLET.split(line)]
    bulleted = [line for line in lines if BULLET.match(line)]
    items = [BULLET.sub("", line, count=1) for line in bulleted] if bulleted else lines
    facts = []
    for item in items:
        fact = " ".join(item.split()).strip("\"'` ")
        if fact and fact not in facts:
            facts.append(fact)
    return facts


# ---------------------------------------------------------------------------------------------
# The rules backend

SUBJECT = re.compile(
    r"^(?:it|the molecule|this molecule|the compound|this compound)\s+(?P<rest>.+)$", re.IGNORECASE
)
VERBS = frozenset(
    "is are has have impacts affects carries contains belongs violates satisfies bears prefers "
    "shows exhibits acts plays inhibits treats binds targets occurs derives".split()
)
PARTICIPLES = {
    "impacting": "impacts",
    "affecting": "affects",
    "belonging": "belongs",
    "having": "has",
    "carrying": "carries",
    "containing": "contains",
    "being": "is",
}
FILLERS = ("also", "both")
ARTICLES = ("a", "an", "the")
ITEM_SEPARATOR = re.compile(r",\s+and\s+|,\s+|\s+and\s+")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def split_sentences(text: str) -> list[str]:
    """Sentences of a caption, split after ``.``/``!``/``?`` followed by a capital letter."""
    return [s.strip() for s in SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


def _drop_fillers(words: list[str]) -> list[str]:
    while words and words[0].lower() in FILLERS:
        words = words[1:]
    return words


def _sentence_facts(sentence: str) -> list[str]:
    body = sentence.rstrip(".!?").strip()
    match = SUBJECT.match(body)
    if not match:
        return [sentence]
    rest = match["rest"]
    if rest.split()[0].lower() == "is":  # "is a X, Y that P and Q": the relative clause is a predicate
        rest = re.sub(r"\s+(?:that|which)\s+", ", ", rest, count=1)
    facts: list[str] = []
    verb, noun_list = None, False
    for item in ITEM_SEPARATOR.split(rest):
        words = item.split()
        if words and words[0].lower() == "it":
            words = words[1:]
        if not words:
            continue
        first = PARTICIPLES.get(words[0].lower(), words[0].lower())
        if first in VERBS:
            verb, complement = first, _drop_fillers(words[1:])
            noun_list = bool(complement) and complement[0].lower() in ARTICLES
        elif verb is None:
            return [sentence]  # not a list of predicates: keep the sentence whole
        else:
            complement = _drop_fillers(words)
            if verb == "is" and noun_list and complement[0].lower() not in ARTICLES:
                complement = [_article(complement[0]), *complement]
        if complement:
            facts.append(f"The molecule {verb} {' '.join(complement)}.")
    return facts or [sentence]


def decompose_rules(text: str) -> list[str]:
    """Atomic facts of a template caption, without a model.

    Each sentence whose subject is "It" / "The molecule" is split into its listed items at
    commas and "and": an item starting with a verb ("is", "impacts", "has", a participle such as
    "impacting" normalised to "impacts") opens a predicate, and the items after it share that verb
    ("impacts A and B" gives "The molecule impacts A." and "The molecule impacts B."; in "is a X,
    Y" the article is restored, a/an by the first letter). "that"/"which" after "is ..." joins the
    relative clause's predicates to the list; "also" and "both" are dropped. Any other sentence is
    one fact. Limitation: a name that itself contains "and" or a comma is split.
    """
    facts: list[str] = []
    for sentence in split_sentences(text):
        for fact in _sentence_facts(sentence):
            if fact not in facts:
                facts.append(fact)
    return facts


# ---------------------------------------------------------------------------------------------
# LLM backends


class LLMDecomposer:
    """Greedy, batched decomposition with a local causal LM (transformers)."""

    def __init__(self, model_path: str, batch_size: int, max_new_tokens: int, one_shot: bool):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(self.device).eval()
        self.batch_size, self.max_new_tokens, self.one_shot = batch_size, max_new_tokens, one_shot
        if not self.tokenizer.chat_template:
            log.warning(
                "%s has no chat template: using Fig. 11's '### User: / ### Assistant:' layout", model_path
            )

    def prompt(self, text: str) -> str:
        messages = messages_for(text, self.one_shot)
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        turns = []
        for message in messages:
            if message["role"] == "user":
                turns.append(FALLBACK_TEMPLATE.format(content=message["content"]))
            else:
                turns.append(message["content"] + "\n")
        return "".join(turns)

    def end_tokens(self) -> set[int]:
        """Token ids that end an answer: the generation config's eos (one id or a list) and the tokenizer's."""
        ids = self.model.generation_config.eos_token_id
        ends = set(ids if isinstance(ids, list | tuple) else [] if ids is None else [ids])
        if self.tokenizer.eos_token_id is not None:
            ends.add(self.tokenizer.eos_token_id)
        return ends

    def generate(self, prompts: Sequence[str]) -> list[Answer]:
        """Greedy answers for one batch of prompts, each flagged if it hit ``max_new_tokens``."""
        import torch

        inputs = self.tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
        inputs = inputs.to(self.device)
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                do_sample=False,
                max_new_tokens=self.max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        generated = output[:, inputs["input_ids"].shape[1] :]
        texts = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
        cut = cut_off(generated.tolist(), self.end_tokens(), self.max_new_tokens)
        return [Answer(text, flag) for text, flag in zip(texts, cut, strict=True)]

    def __call__(self, texts: Sequence[str]) -> list[Decomposition]:
        answers: list[Answer] = []
        for begin in tqdm(range(0, len(texts), self.batch_size), desc="decompose", mininterval=5):
            batch = texts[begin : begin + self.batch_size]
            answers += self.generate([self.prompt(text) for text in batch])
        return [Decomposition(parse_bullets(answer.text), answer.truncated) for answer in answers]


def cut_off(generated: Sequence[Sequence[int]], end_tokens: set[int], max_new_tokens: int) -> list[bool]:
    """Which generated rows stopped at ``max_new_tokens`` without an end token (batched rows that ended
    early are padded, with the end token or after it, up to the longest row)."""
    return [len(row) >= max_new_tokens and not any(token in end_tokens for token in row) for row in generated]


class OpenAIDecomposer:
    """The same messages against an OpenAI-compatible chat endpoint (e.g. ``vllm serve``)."""

    def __init__(
        self, url: str, model: str, max_new_tokens: int, one_shot: bool, timeout: float, max_retries: int
    ):
        import os

        from openai import OpenAI

        self.client = OpenAI(
            base_url=url,
            api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"),
            timeout=timeout,
            max_retries=max_retries,
        )
        self.url, self.model, self.max_new_tokens, self.one_shot = url, model, max_new_tokens, one_shot

    def answer(self, text: str) -> Answer:
        """The endpoint's answer; truncated when it stopped for length (``finish_reason`` "length")."""
        import openai

        try:
            response = self.client.chat.completions.create(
                model=self.model,
                messages=messages_for(text, self.one_shot),
                temperature=0.0,
                max_tokens=self.max_new_tokens,
            )
        except openai.OpenAIError as err:
            raise DecompositionError(
                f"openai decomposer: request to {self.url} (model {self.model!r}) failed: {err}"
            ) from err
        choice = response.choices[0]
        return Answer(choice.message.content or "", choice.finish_reason == "length")

    def __call__(self, texts: Sequence[str]) -> list[Decomposition]:
        answers = [self.answer(text) for text in tqdm(texts, desc="decompose", mininterval=5)]
        return [Decomposition(parse_bullets(answer.text), answer.truncated) for answer in answers]


def decomposer_identity(cfg: Mapping[str, Any]) -> tuple[str, str]:
    """(model, version) naming what produced a decomposition, the cache key besides backend and text.

    The llm backend is named by its configured id, wherever its weights are loaded from.
    """
    backend = cfg["backend"]
    if backend not in BACKENDS:
        raise DecompositionError(f"nli.decomposer.backend: unknown backend {backend!r} (one of {BACKENDS})")
    if backend == "rules":
        return "rules", RULES_VERSION
    model = cfg["openai"]["model"] if backend == "openai" else cfg["model"]
    shot = "one-shot" if cfg["one_shot"] else "zero-shot"
    return f"{model}|max_new_tokens={cfg['max_new_tokens']}", f"{PROMPT_VERSION}|{shot}"


def make_decomposer(cfg: Mapping[str, Any], model_path: str | None = None) -> Decomposer:
    """The configured backend as a function: texts -> a :class:`Decomposition` of each."""
    backend = cfg["backend"]
    if backend == "rules":
        return lambda texts: [Decomposition(decompose_rules(text)) for text in texts]
    if backend == "llm":
        return LLMDecomposer(
            model_path or cfg["model"], cfg["batch_size"], cfg["max_new_tokens"], cfg["one_shot"]
        )
    if backend == "openai":
        api = cfg["openai"]
        return OpenAIDecomposer(
            api["url"],
            api["model"],
            cfg["max_new_tokens"],
            cfg["one_shot"],
            api["timeout"],
            api["max_retries"],
        )
    raise DecompositionError(f"nli.decomposer.backend: unknown backend {backend!r} (one of {BACKENDS})")


DECOMPOSITION_COLUMNS = ("backend", "model", "version", "batch_plan", "text_hash")
DECOMPOSITION_VALUES = ("atoms", "truncated")


def _as_decomposition(item: Decomposition | Sequence[str]) -> Decomposition:
    if isinstance(item, Decomposition):
        return Decomposition(list(item.atoms), bool(item.truncated))
    return Decomposition(list(item), False)


def decompose_items(
    texts: Sequence[str],
    cfg: Mapping[str, Any],
    store: ParquetStore | None,
    model_path: str | None = None,
    decomposer: Decomposer | None = None,
) -> list[Decomposition]:
    """The :class:`Decomposition` of each text: cached ones from ``store``, the rest from the configured
    backend (or ``decomposer``).

    Each distinct text is decomposed once; the backend (a model load) is only built when some text
    is missing from the cache. New decompositions are added to the store. A blank text has no facts
    and never reaches the backend (an LLM would invent some for it).
    """
    if any(not text.strip() for text in texts):
        kept = [text for text in texts if text.strip()]
        facts = iter(decompose_items(kept, cfg, store, model_path, decomposer) if kept else [])
        return [next(facts) if text.strip() else Decomposition([], False) for text in texts]
    backend = cfg["backend"]
    model, version = decomposer_identity(cfg)
    hashes = {text: text_hash(text) for text in texts}
    # batched greedy decoding: every text of this call is decoded again unless all of them are cached
    plan = batch_plan(cfg["batch_size"], list(hashes.values())) if backend == "llm" else ""
    keys = {text: (backend, model, version, plan, digest) for text, digest in hashes.items()}
    cached = store.lookup(list(keys.values())) if store is not None else {}
    cached = {key: Decomposition(list(atoms), bool(truncated)) for key, (atoms, truncated) in cached.items()}
    missing = [text for text, key in keys.items() if key not in cached]
    if plan and missing:
        missing = list(keys)
    log.info(
        "decompose (%s): %d distinct texts, %d cached, %d to decompose",
        backend,
        len(keys),
        len(keys) - len(missing),
        len(missing),
    )
    if missing:
        decomposer = decomposer or make_decomposer(cfg, model_path)
        new = {t: _as_decomposition(d) for t, d in zip(missing, decomposer(missing), strict=True)}
        if store is not None:
            store.add(
                [
                    {**dict(zip(DECOMPOSITION_COLUMNS, keys[t], strict=True)), **d._asdict()}
                    for t, d in new.items()
                ]
            )
        cached.update({keys[t]: d for t, d in new.items()})
    return [Decomposition(list(cached[keys[text]].atoms), cached[keys[text]].truncated) for text in texts]


def decompose(
    texts: Sequence[str],
    cfg: Mapping[str, Any],
    store: ParquetStore | None,
    model_path: str | None = None,
    decomposer: Decomposer | None = None,
) -> list[list[str]]:
    """The atomic facts of each text (:func:`decompose_items` without the truncation flags)."""
    return [item.atoms for item in decompose_items(texts, cfg, store, model_path, decomposer)]
