"""The WordPiece tokenizer of the caption metrics, loaded so that a wrong vocabulary cannot pass.

The official MolT5 and L+M-24 scorers tokenise captions with SciBERT's uncased WordPiece
vocabulary (31,090 tokens). Two traps found while measuring them: offline, transformers 5
``from_pretrained("allenai/scibert_scivocab_uncased")`` returns a 5-token vocabulary that maps
every word to ``[UNK]`` (and scores look excellent), and ``tokenize(..., truncation=True,
max_length=512)`` no longer truncates. So the loaded vocabulary size is checked against the known
size (and a floor for unknown tokenizers), and truncation to ``max_tokens`` is explicit.

``bert-base-uncased`` resolves offline to the copy of that tokenizer shipped with molmix
(``scoring/data/bert-base-uncased/tokenizer.json``, Apache-2.0, see the NOTICE beside it).

A Hub id is looked up on the Hub only when the Hub can be used (:func:`hub_unavailable`): with
``HF_HUB_OFFLINE`` set, or no answer from the Hub within :data:`HUB_CHECK_TIMEOUT` seconds, it is read
from the local Hugging Face cache alone, and when it is not there the fallback is used at once instead
of after the Hub client's retries (about 50 s).
"""

from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SCIBERT = "allenai/scibert_scivocab_uncased"
# tokenizers whose vocabulary size is known: a load that does not give this size is an error
KNOWN_VOCAB_SIZES = {SCIBERT: 31090, "bert-base-uncased": 30522}
MIN_VOCAB_SIZE = 1000  # any WordPiece vocabulary smaller than this is a broken load
# name -> folder of a tokenizer.json shipped with molmix
PACKAGED = {"bert-base-uncased": Path(__file__).parent / "data" / "bert-base-uncased"}
# tokens the official scorers drop after tokenising (special tokens written literally in a text)
DROPPED_TOKENS = frozenset({"[PAD]", "[CLS]", "[SEP]"})
HUB_CHECK_TIMEOUT = 3.0
"""Seconds the Hub may take to answer before it counts as unreachable (:func:`hub_unavailable`)."""


class TokenizerError(RuntimeError):
    """The text tokenizer cannot be loaded, or loaded with the wrong vocabulary."""


@dataclass(frozen=True)
class TextTokenizer:
    """A loaded WordPiece tokenizer: ``name`` as configured, ``source`` where it was read from."""

    name: str
    source: str
    vocab_size: int
    sha256: str
    backend: object  # tokenizers.Tokenizer with truncation and padding switched off
    max_tokens: int

    def tokenize(self, texts: list[str]) -> list[list[str]]:
        """Tokens as the official scorers use them: no added special tokens, the first
        ``max_tokens`` WordPiece tokens, then literal [PAD]/[CLS]/[SEP] removed."""
        encodings = self.backend.encode_batch(list(texts), add_special_tokens=False)
        return [
            [t for t in encoding.tokens[: self.max_tokens] if t not in DROPPED_TOKENS]
            for encoding in encodings
        ]

    def describe(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "vocab_size": self.vocab_size,
            "sha256": self.sha256,
            "max_tokens": self.max_tokens,
        }


def packaged_path(name: str) -> Path | None:
    path = PACKAGED.get(name)
    return path if path is not None and (path / "tokenizer.json").is_file() else None


def hub_unavailable(timeout: float = HUB_CHECK_TIMEOUT) -> str | None:
    """Why the Hugging Face Hub cannot be used now, or None when it can.

    Offline mode (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` set, as ``huggingface_hub`` reads
    them), or no HTTP answer from the Hub's endpoint (``HF_ENDPOINT``; proxies from the environment are
    used) within ``timeout`` seconds. Any HTTP answer, an error status included, counts as reachable.
    """
    from huggingface_hub import constants

    if constants.is_offline_mode():
        return "offline mode (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set)"
    try:
        urllib.request.urlopen(
            urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=timeout
        ).close()
    except urllib.error.HTTPError:
        return None
    except (OSError, ValueError) as err:  # URLError, a time-out, a refused connection, a bad endpoint
        reason = getattr(err, "reason", None) or err
        return f"the Hub ({constants.ENDPOINT}) is unreachable ({reason}; {timeout:g} s time-out)"
    return None


def _load_backend(name: str):
    """(tokenizers.Tokenizer, source) for a folder, a tokenizer.json, a packaged name or a Hub id."""
    from tokenizers import Tokenizer

    path = Path(name)
    if path.is_file():
        return Tokenizer.from_file(str(path)), str(path)
    if path.is_dir() and (path / "tokenizer.json").is_file():
        return Tokenizer.from_file(str(path / "tokenizer.json")), str(path)
    packaged = packaged_path(name)
    if packaged is not None:
        return Tokenizer.from_file(str(packaged / "tokenizer.json")), str(packaged)
    # a folder with only vocab.txt, or a Hub id: let transformers build the fast tokenizer
    from transformers import AutoTokenizer

    offline = None if path.is_dir() else hub_unavailable()  # a Hub id: the local cache only when offline
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=offline is not None)
    except Exception as err:  # offline, unknown id, unreadable folder: all mean "not available"
        if offline:
            raise TokenizerError(
                f"text tokenizer {name!r} cannot be loaded: {offline}, and it cannot be read from the "
                f"local Hugging Face cache ({type(err).__name__})"
            ) from err
        raise TokenizerError(f"text tokenizer {name!r} cannot be loaded: {err}") from err
    if not getattr(tokenizer, "is_fast", False):
        raise TokenizerError(f"text tokenizer {name!r} has no fast (tokenizers) backend")
    return Tokenizer.from_str(tokenizer.backend_tokenizer.to_str()), name


def load_text_tokenizer(name: str, max_tokens: int = 512) -> TextTokenizer:
    """Load ``name`` and check its vocabulary size; :class:`TokenizerError` if anything is off."""
    backend, source = _load_backend(name)
    backend.no_truncation()
    backend.no_padding()
    size = backend.get_vocab_size(with_added_tokens=True)
    expected = KNOWN_VOCAB_SIZES.get(name)
    if expected is not None and size != expected:
        raise TokenizerError(
            f"text tokenizer {name!r} loaded from {source} has {size} tokens, expected {expected}: "
            "a broken (offline?) download; scores with it would be meaningless"
        )
    if size < MIN_VOCAB_SIZE:
        raise TokenizerError(
            f"text tokenizer {name!r} loaded from {source} has only {size} tokens (< {MIN_VOCAB_SIZE}): "
            "every word would become [UNK]"
        )
    sha = hashlib.sha256(backend.to_str().encode()).hexdigest()
    return TextTokenizer(name, source, size, sha, backend, max_tokens)


def resolve_text_tokenizer(
    name: str, fallback: str | None, max_tokens: int = 512
) -> tuple[TextTokenizer, str | None]:
    """The configured tokenizer, else the fallback with the reason the first one failed."""
    try:
        return load_text_tokenizer(name, max_tokens), None
    except TokenizerError as err:
        if not fallback:
            raise
        log.warning("%s; falling back to %r", err, fallback)
        return load_text_tokenizer(fallback, max_tokens), str(err)
