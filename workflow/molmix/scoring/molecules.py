"""Cap2Mol metrics as MolT5's ``mol_translation_metrics.py`` and ``fingerprint_metrics.py`` compute them.

A prediction is *valid* when RDKit parses it into a molecule with at least one atom
(``Chem.MolFromSmiles("")`` returns an empty molecule, not ``None``: an empty output is invalid).
Exact match compares InChI strings; Levenshtein and character BLEU compare the raw strings of every
pair, valid or not. Fingerprint similarities are Tanimoto on MACCS keys, RDKit path fingerprints and
Morgan count fingerprints (radius 2, the official ``GetMorganFingerprint``), computed with
RDKit's fingerprint generators; they are undefined
(NaN per item) for invalid predictions, and the corpus value follows one of two conventions:
``molt5`` averages over valid predictions only (MolT5's scripts), ``lpm24`` counts each invalid
prediction as 0 (the L+M-24 copy of the scripts).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from molmix.scoring.bleu import corpus_bleu

FINGERPRINTS = ("maccs", "rdk", "morgan")
# Longer strings are not parsed (so invalid): RDKit's recursive canonicalisation overflowed the stack
# (a segfault) at 20,000 atoms and took minutes at 100,000 characters; ChEBI-20's longest is 1,135.
MAX_SMILES_CHARACTERS = 5000
CONVENTIONS = ("molt5", "lpm24")


def _quiet_rdkit() -> None:
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")


def parse_smiles(smiles: Sequence[str]) -> list:
    """RDKit molecules, ``None`` where RDKit rejects the string, gives no atoms or the string is
    longer than :data:`MAX_SMILES_CHARACTERS`."""
    from rdkit import Chem

    _quiet_rdkit()
    mols = []
    for text in smiles:
        parse = text and text.strip() and len(text) <= MAX_SMILES_CHARACTERS
        mol = Chem.MolFromSmiles(text) if parse else None
        mols.append(mol if mol is not None and mol.GetNumAtoms() > 0 else None)
    return mols


def canonical_smiles(mols: Sequence) -> list[str | None]:
    from rdkit import Chem

    return [Chem.MolToSmiles(m) if m is not None else None for m in mols]


def inchis(mols: Sequence) -> list[str | None]:
    """InChI of each molecule; ``None`` for invalid molecules or where InChI generation fails."""
    from rdkit import Chem

    _quiet_rdkit()
    out = []
    for mol in mols:
        value = None
        if mol is not None:
            try:
                value = Chem.MolToInchi(mol) or None
            except Exception:  # InChI generation can raise on exotic valences; count as no InChI
                value = None
        out.append(value)
    return out


def fingerprints(mols: Sequence, morgan_radius: int = 2) -> dict[str, list]:
    """MACCS, RDK and Morgan count fingerprints of each molecule (``None`` for invalid ones)."""
    from rdkit.Chem import MACCSkeys, rdFingerprintGenerator

    # the generators give the bits of Chem.RDKFingerprint and the counts of GetMorganFingerprint
    rdk = rdFingerprintGenerator.GetRDKitFPGenerator(fpSize=2048)
    morgan = rdFingerprintGenerator.GetMorganGenerator(radius=morgan_radius)
    out = {name: [] for name in FINGERPRINTS}
    for mol in mols:
        valid = mol is not None
        out["maccs"].append(MACCSkeys.GenMACCSKeys(mol) if valid else None)
        out["rdk"].append(rdk.GetFingerprint(mol) if valid else None)
        out["morgan"].append(morgan.GetSparseCountFingerprint(mol) if valid else None)
    return out


def tanimoto(reference_fps: Sequence, prediction_fps: Sequence) -> np.ndarray:
    """Pairwise Tanimoto similarity; NaN where either side has no fingerprint."""
    from rdkit import DataStructs

    return np.array(
        [
            DataStructs.TanimotoSimilarity(r, p) if r is not None and p is not None else np.nan
            for r, p in zip(reference_fps, prediction_fps, strict=True)
        ],
        dtype=float,
    )


def convention_mean(similarities: np.ndarray, valid: np.ndarray, convention: str) -> float:
    """Corpus similarity: mean over valid predictions (molt5) or with invalid ones as 0 (lpm24)."""
    defined = ~np.isnan(similarities)
    if convention == "molt5":
        return float(similarities[defined].mean()) if defined.any() else float("nan")
    if convention == "lpm24":
        return float(np.where(defined & valid, similarities, 0.0).mean()) if len(valid) else float("nan")
    raise ValueError(f"unknown invalid-SMILES convention {convention!r}; known: {CONVENTIONS}")


def char_bleu(references: Sequence[str], predictions: Sequence[str]) -> float:
    """nltk corpus BLEU-4 over characters, one reference per prediction (MolT5's SMILES BLEU)."""
    return corpus_bleu(references, predictions, [(0.25, 0.25, 0.25, 0.25)])[0]


def levenshtein(references: Sequence[str], predictions: Sequence[str]) -> np.ndarray:
    from Levenshtein import distance

    return np.array([distance(p, r) for r, p in zip(references, predictions, strict=True)], dtype=np.int64)
