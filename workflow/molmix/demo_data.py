"""The embedded demo dataset: L+M-24-style captions built from facts RDKit computes.

Molecules come from files shipped inside the installed rdkit package (NCI and WEHI sets), so the
demo needs no network. Each molecule gets a set of facts, one per *slot*; slots are either
multi-valued (functional groups: a molecule can be a phenol and an ester) or exclusive (size,
lipophilicity, charge, ring system, aromaticity, H-bond donors, drug-likeness: a molecule is
small or large, never both). Each fact has a noun form ("a phenol", used as "The molecule is a
phenol") and a predicate form ("is hydrophilic"), plus rewordings that the demo NLI model learns
to recognise as entailment; two values of one exclusive slot contradict each other; facts of
different slots are neutral. Captions list a molecule's facts in a seeded random order through
several templates, the way L+M-24 verbalises its property lists ("The molecule is a X, Y, and Z
that impacts A and B.").
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Fact:
    """One atomic property of a molecule: ``slot`` groups mutually exclusive values."""

    slot: str
    value: str
    exclusive: bool
    statement: str  # canonical atomic sentence, e.g. "The molecule is a phenol."
    rewordings: tuple[str, ...]  # other sentences stating the same fact
    clause: str  # the fact inside a caption: a noun phrase ("a phenol") or a predicate ("is polar")
    is_noun: bool


# Functional groups: rdkit Fragments function -> (noun, rewording)
GROUPS = {
    "fr_phenol": ("phenol", "The molecule carries a phenolic hydroxy group."),
    "fr_COO": ("carboxylic acid", "The molecule has a carboxylic acid group."),
    "fr_NH2": ("primary amine", "The molecule has a primary amino group."),
    "fr_ester": ("ester", "The molecule contains an ester linkage."),
    "fr_amide": ("amide", "The molecule contains an amide bond."),
    "fr_ketone": ("ketone", "The molecule contains a ketone carbonyl."),
    "fr_aldehyde": ("aldehyde", "The molecule has an aldehyde group."),
    "fr_ether": ("ether", "The molecule contains an ether linkage."),
    "fr_nitro": ("nitro compound", "The molecule bears a nitro group."),
    "fr_nitrile": ("nitrile", "The molecule has a cyano group."),
    "fr_halogen": ("organohalogen compound", "The molecule contains a halogen atom."),
    "fr_sulfonamd": ("sulfonamide", "The molecule has a sulfonamide group."),
    "fr_Al_OH": ("alcohol", "The molecule carries an aliphatic hydroxy group."),
    "fr_pyridine": ("pyridine derivative", "The molecule contains a pyridine ring."),
    "fr_furan": ("furan derivative", "The molecule contains a furan ring."),
    "fr_thiophene": ("thiophene derivative", "The molecule contains a thiophene ring."),
    "fr_urea": ("urea derivative", "The molecule contains a urea group."),
    "fr_sulfide": ("thioether", "The molecule contains a sulfide linkage."),
}

# Exclusive slots: slot -> value -> (clause, is_noun, statement, rewording)
EXCLUSIVE = {
    "size": {
        "small": (
            "a small molecule",
            True,
            "The molecule is a small molecule.",
            "The molecule has a low molecular weight.",
        ),
        "medium": (
            "a medium-sized molecule",
            True,
            "The molecule is a medium-sized molecule.",
            "The molecule has a moderate molecular weight.",
        ),
        "large": (
            "a large molecule",
            True,
            "The molecule is a large molecule.",
            "The molecule has a high molecular weight.",
        ),
    },
    "lipophilicity": {
        "hydrophilic": (
            "is hydrophilic",
            False,
            "The molecule is hydrophilic.",
            "The molecule prefers water over lipids.",
        ),
        "moderate": (
            "is moderately lipophilic",
            False,
            "The molecule is moderately lipophilic.",
            "The molecule has an intermediate partition coefficient.",
        ),
        "lipophilic": (
            "is highly lipophilic",
            False,
            "The molecule is highly lipophilic.",
            "The molecule strongly prefers lipids over water.",
        ),
    },
    "charge": {
        "neutral": (
            "carries no net charge",
            False,
            "The molecule is electrically neutral.",
            "The molecule carries no net charge.",
        ),
        "cation": (
            "a cation",
            True,
            "The molecule is a cation.",
            "The molecule carries a net positive charge.",
        ),
        "anion": (
            "an anion",
            True,
            "The molecule is an anion.",
            "The molecule carries a net negative charge.",
        ),
    },
    "rings": {
        "acyclic": (
            "an acyclic compound",
            True,
            "The molecule is acyclic.",
            "The molecule contains no rings.",
        ),
        "monocyclic": (
            "a monocyclic compound",
            True,
            "The molecule is monocyclic.",
            "The molecule contains exactly one ring.",
        ),
        "bicyclic": (
            "a bicyclic compound",
            True,
            "The molecule is bicyclic.",
            "The molecule contains exactly two rings.",
        ),
        "polycyclic": (
            "a polycyclic compound",
            True,
            "The molecule is polycyclic.",
            "The molecule contains three or more rings.",
        ),
    },
    "aromaticity": {
        "aromatic": ("is aromatic", False, "The molecule is aromatic.", "The molecule has an aromatic ring."),
        "aliphatic": (
            "is non-aromatic",
            False,
            "The molecule is non-aromatic.",
            "The molecule has no aromatic ring.",
        ),
    },
    "donors": {
        "none": (
            "has no hydrogen bond donors",
            False,
            "The molecule has no hydrogen bond donors.",
            "The molecule cannot donate hydrogen bonds.",
        ),
        "few": (
            "has one or two hydrogen bond donors",
            False,
            "The molecule has one or two hydrogen bond donors.",
            "The molecule can donate a few hydrogen bonds.",
        ),
        "many": (
            "has three or more hydrogen bond donors",
            False,
            "The molecule has three or more hydrogen bond donors.",
            "The molecule can donate many hydrogen bonds.",
        ),
    },
    "druglikeness": {
        "druglike": (
            "is drug-like",
            False,
            "The molecule is drug-like.",
            "The molecule satisfies Lipinski's rule of five.",
        ),
        "nondruglike": (
            "violates Lipinski's rule of five",
            False,
            "The molecule is not drug-like.",
            "The molecule violates Lipinski's rule of five.",
        ),
    },
}

MOLECULE_FILES = ("NCI/first_5K.smi", "Pains/test_data/wehi_mols.csv")


def group_fact(fragment: str) -> Fact:
    noun, rewording = GROUPS[fragment]
    article = "an" if noun[0] in "aeiou" else "a"
    return Fact(
        slot=f"group:{noun}",
        value=noun,
        exclusive=False,
        statement=f"The molecule is {article} {noun}.",
        rewordings=(rewording,),
        clause=f"{article} {noun}",
        is_noun=True,
    )


def exclusive_fact(slot: str, value: str) -> Fact:
    clause, is_noun, statement, rewording = EXCLUSIVE[slot][value]
    return Fact(slot, value, True, statement, (rewording,), clause, is_noun)


def all_facts() -> list[Fact]:
    """Every fact the demo can state, in a fixed order."""
    facts = [group_fact(f) for f in GROUPS]
    facts += [exclusive_fact(slot, value) for slot, values in EXCLUSIVE.items() for value in values]
    return facts


def molecule_facts(mol) -> list[Fact]:
    """The facts RDKit computes for one molecule (groups first, then one value per exclusive slot)."""
    from rdkit import Chem
    from rdkit.Chem import Descriptors, Fragments, Lipinski, rdMolDescriptors

    facts = [group_fact(name) for name in GROUPS if getattr(Fragments, name)(mol) > 0]
    weight = Descriptors.MolWt(mol)
    logp = Descriptors.MolLogP(mol)
    charge = Chem.GetFormalCharge(mol)
    rings = rdMolDescriptors.CalcNumRings(mol)
    donors = Lipinski.NumHDonors(mol)
    acceptors = Lipinski.NumHAcceptors(mol)
    violations = sum([weight > 500, logp > 5, donors > 5, acceptors > 10])
    values = {
        "size": "small" if weight < 200 else "medium" if weight < 350 else "large",
        "lipophilicity": "hydrophilic" if logp < 1 else "moderate" if logp < 3 else "lipophilic",
        "charge": "neutral" if charge == 0 else "cation" if charge > 0 else "anion",
        "rings": ["acyclic", "monocyclic", "bicyclic"][rings] if rings < 3 else "polycyclic",
        "aromaticity": "aromatic" if rdMolDescriptors.CalcNumAromaticRings(mol) else "aliphatic",
        "donors": "none" if donors == 0 else "few" if donors <= 2 else "many",
        "druglikeness": "druglike" if violations <= 1 else "nondruglike",
    }
    return facts + [exclusive_fact(slot, value) for slot, value in values.items()]


def category(facts: Iterable[Fact]) -> str:
    """A coarse class used to stratify the subsample, as L+M-24's property categories are."""
    values = {f.slot: f.value for f in facts if f.exclusive}
    if values["charge"] != "neutral":
        return "charged"
    if values["aromaticity"] == "aliphatic":
        return "aliphatic"
    return "aromatic, large" if values["size"] == "large" else "aromatic, small or medium"


def _join(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    if len(items) == 2:
        return f"{items[0]} and {items[1]}"
    return ", ".join(items[:-1]) + f", and {items[-1]}"


def _strip_article(noun: str) -> str:
    return noun.split(" ", 1)[1] if noun.split(" ", 1)[0] in ("a", "an") else noun


def caption(facts: list[Fact], rng: random.Random) -> str:
    """Verbalise ``facts`` in a random order through one of several L+M-24-like templates."""
    nouns = [f.clause for f in facts if f.is_noun]
    predicates = [f.clause for f in facts if not f.is_noun]
    rng.shuffle(nouns)
    rng.shuffle(predicates)
    template = rng.randrange(3)
    if template == 0 or not predicates:
        # "The molecule is a X, Y, and Z that P and Q."
        head = "The molecule is " + _join([nouns[0]] + [_strip_article(n) for n in nouns[1:]])
        return head + (f" that {_join(predicates)}." if predicates else ".")
    if template == 1:
        # "It P and Q. The molecule is a X and Y."
        return f"It {_join(predicates)}. The molecule is {_join(nouns)}."
    # "The molecule is a X that P. It is also a Y and Z, and it Q."
    split = max(1, len(predicates) // 2)
    first = f"The molecule is {nouns[0]} that {_join(predicates[:split])}."
    rest_nouns, rest_preds = nouns[1:], predicates[split:]
    parts = []
    if rest_nouns:
        parts.append(f"is also {_join(rest_nouns)}")
    parts += rest_preds
    return first + (f" It {_join(parts)}." if parts else "")


def stable_hash(*parts: object) -> int:
    """Platform-independent integer hash (Python's hash() is salted per process)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def shipped_smiles(rdkit_data: Path | None = None) -> Iterator[str]:
    """SMILES from the molecule files shipped inside the rdkit package."""
    if rdkit_data is None:
        from rdkit import RDConfig

        rdkit_data = Path(RDConfig.RDDataDir)
    for name in MOLECULE_FILES:
        path = rdkit_data / name
        if not path.exists():
            raise FileNotFoundError(f"{path}: rdkit data file missing (is rdkit installed completely?)")
        for line in path.read_text().splitlines():
            field = line.split("\t")[0].split(",")[0].strip().strip('"')
            if field:
                yield field


def build_demo_dataset(
    n_molecules: int,
    captions_per_molecule: int,
    max_smiles_length: int,
    seed: int,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> pd.DataFrame:
    """Molecule-caption pairs with a ``split`` column (train / validation / test).

    Molecules are canonicalised, de-duplicated and ordered by a seeded hash, so the result is the
    same on every machine. Splits are by molecule: no test molecule appears in training.
    """
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    canonical = set()
    for smiles in shipped_smiles():
        mol = Chem.MolFromSmiles(smiles)
        if mol is None or mol.GetNumAtoms() == 0:
            continue
        text = Chem.MolToSmiles(mol)
        if "." not in text and len(text) <= max_smiles_length:
            canonical.add(text)
    ordered = sorted(canonical, key=lambda s: stable_hash(seed, s))[:n_molecules]
    if len(ordered) < n_molecules:
        raise ValueError(f"demo: only {len(ordered)} usable molecules, {n_molecules} requested")
    rows = []
    for index, smiles in enumerate(ordered):
        facts = molecule_facts(Chem.MolFromSmiles(smiles))
        position = index / len(ordered)
        split = (
            "test"
            if position < test_fraction
            else "validation"
            if position < test_fraction + validation_fraction
            else "train"
        )
        rng = random.Random(stable_hash(seed, "caption", smiles))
        for k in range(captions_per_molecule):
            rows.append(
                {
                    "id": f"demo-{index:05d}-{k}",
                    "smiles": smiles,
                    "caption": caption(facts, rng),
                    "category": category(facts),
                    "split": split,
                    "facts": "\n".join(f.statement for f in facts),
                }
            )
    return pd.DataFrame(rows)
