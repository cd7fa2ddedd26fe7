"""Mol2Cap caption metrics exactly as MolT5's ``text_translation_metrics.py`` computes them.

BLEU-2/4: nltk's ``corpus_bleu`` (:mod:`.bleu`) over WordPiece tokens (one reference per caption). METEOR: nltk
``meteor_score`` per caption, averaged, with WordNet required. ROUGE-1/2/L: rouge-score's
F-measure per caption (its default tokenizer, no stemming), averaged; the n-gram overlap uses
rouge-score's own functions on reference tokens computed once, and ROUGE-L's longest common
subsequence comes from RapidFuzz (C++), because rouge-score's pure-Python LCS table dominated the
run time; the F-measure formula is rouge-score's.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from concurrent.futures import Future

import numpy as np

from molmix.scoring.bleu import corpus_bleu
from molmix.scoring.tokenizer import TextTokenizer


class WordNetMissing(RuntimeError):
    """NLTK cannot load WordNet, so METEOR cannot be computed as published."""


@functools.cache
def require_wordnet():
    """NLTK's WordNet reader for English, or :class:`WordNetMissing` saying how to provide it.

    nltk 3.9's reader maps the loaded WordNet onto itself when it loads (``map_wn``: reading
    ``index.sense`` twice, about 3 s of a 4-s load); that map serves only the multilingual (OMW)
    functions, which METEOR never calls, so this reader skips it. Synsets and lemmas are nltk's.
    """
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class EnglishWordNet(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            return None

    for resource in ("corpora/wordnet", "corpora/wordnet.zip/wordnet/"):
        try:
            root = nltk.data.find(resource)
        except LookupError:
            continue
        with warnings.catch_warnings():  # "multilingual functions are not available": not needed
            warnings.simplefilter("ignore")
            try:
                return EnglishWordNet(root, None)
            except OSError as err:  # e.g. Debian's files without `lexnames`
                raise WordNetMissing(
                    f"METEOR needs WordNet 3.0; {root} is incomplete ({err}). Run `tools/install_wordnet.sh .venv`."
                ) from None
    raise WordNetMissing(
        "METEOR needs WordNet 3.0, which NLTK cannot find (searched: "
        f"{', '.join(map(str, nltk.data.path))}). Run `tools/install_wordnet.sh .venv` "
        "(offline, from Debian's wordnet-base + wordnet-sense-index) or nltk.download('wordnet')."
    )


def strip_cls(text: str) -> str:
    """The official scorer drops a leading ``[CLS] `` from model outputs."""
    return text[6:] if text.startswith("[CLS] ") else text


class _Lemma:
    __slots__ = ("_name",)

    def __init__(self, name: str):
        self._name = name

    def name(self) -> str:
        return self._name


class _Synset:
    """All lemma names of a word's synsets as one synset: METEOR only takes their union."""

    def __init__(self, names):
        self._lemmas = [_Lemma(n) for n in names]

    def lemmas(self):
        return self._lemmas


class _CachedWordNet:
    """``synsets`` memoised per word: METEOR asks for the same words' synonyms over and over."""

    def __init__(self, wordnet):
        self._wordnet = wordnet
        self.synsets = functools.lru_cache(maxsize=None)(self._synsets)

    def _synsets(self, word: str) -> list[_Synset]:
        names = {lemma.name() for synset in self._wordnet.synsets(word) for lemma in synset.lemmas()}
        return [_Synset(sorted(names))]


class _CachedStemmer:
    def __init__(self):
        from nltk.stem.porter import PorterStemmer

        self.stem = functools.lru_cache(maxsize=None)(PorterStemmer().stem)


def corpus_bleu_scores(references: Sequence[list[str]], hypotheses: Sequence[list[str]]) -> dict[str, float]:
    bleu2, bleu4 = corpus_bleu(references, hypotheses, [(0.5, 0.5), (0.25, 0.25, 0.25, 0.25)])
    return {"bleu2": bleu2, "bleu4": bleu4}


def meteor_scores(references: Sequence[list[str]], hypotheses: Sequence[list[str]]) -> np.ndarray:
    from nltk.translate.meteor_score import meteor_score

    wordnet = _CachedWordNet(require_wordnet())
    stemmer = _CachedStemmer()
    return np.array(
        [
            meteor_score([ref], hyp, stemmer=stemmer, wordnet=wordnet)
            for ref, hyp in zip(references, hypotheses, strict=True)
        ],
        dtype=float,
    )


class MeteorWorker:
    """:func:`meteor_scores` in a forked process, which imports nltk and loads WordNet as it starts.

    nltk's import, WordNet's loading and METEOR are about 3.5 s of pure Python for 3,300
    captions, half of a Mol2Cap scoring run. In a second process they overlap with the tokenizer,
    the reference statistics, ROUGE and BLEU in this one. Create it before the text tokenizer
    loads: the fork then copies no tokenizer threads. A missing WordNet raises
    :class:`WordNetMissing` from the future of :meth:`scores`.
    """

    def __init__(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
        self._pool.submit(_load_wordnet)  # while this process works

    def scores(self, references: Sequence[list[str]], hypotheses: Sequence[list[str]]) -> Future:
        """A future of ``meteor_scores(references, hypotheses)``."""
        return self._pool.submit(meteor_scores, references, hypotheses)


def _load_wordnet() -> None:
    require_wordnet()


@functools.cache
def _rouge_tokenizer():
    from rouge_score import tokenizers

    return tokenizers.DefaultTokenizer(use_stemmer=False)


def rouge_tokens(texts: Sequence[str]) -> list[list[str]]:
    """rouge-score's tokens (lower-cased alphanumeric words), as ``RougeScorer.score`` makes them."""
    tokenizer = _rouge_tokenizer()
    return [tokenizer.tokenize(t) for t in texts]


def rouge_scores(references: Sequence[list[str]], hypotheses: Sequence[list[str]]) -> dict[str, np.ndarray]:
    """Per-caption ROUGE-1/2/L F-measures from rouge-score tokens (symmetric in the two sides)."""
    from rapidfuzz.distance import LCSseq
    from rouge_score import rouge_scorer, scoring

    scores = {"rouge1": [], "rouge2": [], "rougeL": []}
    for ref, hyp in zip(references, hypotheses, strict=True):
        for n in (1, 2):
            score = rouge_scorer._score_ngrams(
                rouge_scorer._create_ngrams(ref, n), rouge_scorer._create_ngrams(hyp, n)
            )
            scores[f"rouge{n}"].append(score.fmeasure)
        if ref and hyp:
            lcs = LCSseq.similarity(ref, hyp)
            scores["rougeL"].append(scoring.fmeasure(lcs / len(hyp), lcs / len(ref)))
        else:
            scores["rougeL"].append(0.0)
    return {k: np.array(v, dtype=float) for k, v in scores.items()}


def caption_item_scores(
    tokenizer: TextTokenizer,
    reference_tokens: Sequence[list[str]],
    reference_rouge_tokens: Sequence[list[str]],
    predictions: Sequence[str],
    meteor: MeteorWorker,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """(per-caption scores, corpus BLEU) of ``predictions`` against pre-tokenised references;
    METEOR in ``meteor``'s process while ROUGE and BLEU are computed here."""
    predictions = [strip_cls(p) for p in predictions]
    tokens = tokenizer.tokenize(predictions)
    pending = meteor.scores(reference_tokens, tokens)
    rouge = rouge_scores(reference_rouge_tokens, rouge_tokens(predictions))
    bleu = corpus_bleu_scores(reference_tokens, tokens)
    items = {
        "meteor": pending.result(),
        **rouge,
        "prediction_tokens": np.array([len(t) for t in tokens], dtype=np.int64),
    }
    return items, bleu
