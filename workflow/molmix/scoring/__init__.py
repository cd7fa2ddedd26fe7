"""The MolT5 / L+M-24 evaluation metrics, reproducing the official scorers' numbers, with the
statistics of a reference set computed once and reused for every system scored against it.

- :mod:`.text`: Mol2Cap caption metrics (BLEU-2/4, ROUGE-1/2/L, METEOR) on WordPiece tokens.
- :mod:`.molecules`: Cap2Mol metrics (character BLEU, InChI exact match, Levenshtein, validity,
  MACCS / RDK / Morgan Tanimoto) and :mod:`.fcd` (Fréchet ChemNet Distance).
- :mod:`.references`: the per-reference-set statistics and their cache.
- :mod:`.io`: MolT5-format TSV and ``generations`` Parquet readers.
- :mod:`.core`: scoring a set of predictions, the corpus summary, the pipeline steps.
"""
