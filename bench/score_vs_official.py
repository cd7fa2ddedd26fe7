"""Time ``molmix score`` against the official MolT5 evaluation scripts on the 3,300-pair fixtures.

Usage:
    .venv/bin/python bench/score_vs_official.py --molt5 PATH/TO/MolT5   (or MOLT5_DIR=...)
        [--fixtures ../shared/fixtures] [--threads 2] [--systems 20]

PATH/TO/MolT5 is a checkout of github.com/blender-nlp/MolT5 (only its ``evaluation/`` scripts are
run, unmodified, in subprocesses; nothing of it is copied here). The official scripts get the same
tokenizer (the fixtures' bert-base-uncased standing in for SciBERT) and, for ``fcd_metric.py``, a
temporary ``fcd`` module that forwards ``load_ref_model`` / ``canonical_smiles`` / ``get_fcd`` to
fcd-torch, whose 350-character padding gives the official environment's FCD (``fcd`` 1.2.2 pads
differently and prints another number).

Reports, per tool and step, wall time and peak resident memory (each in its own process), then
the ratios: official total / molmix cold (empty reference cache) and official total / molmix warm
(reference statistics cached, i.e. every further system scored on the same test set), and the
time to score ``--systems`` systems on one test set both ways.

Last, the floor: the CPU seconds of the Cap2Mol work that any scorer printing the official numbers
must do (RDKit parsing and canonicalising every SMILES; InChI, MACCS, RDK and Morgan fingerprints
and ChemNet's forward pass of every distinct molecule not cached), divided by the cores: the
shortest possible wall time, even with no start-up, no file reading and no Mol2Cap at all.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))
sys.path.insert(0, str(ROOT / "tests"))

from fixtures import fixture_root  # noqa: E402

FCD_TORCH_SHIM = '''"""Benchmark adapter: the ``fcd`` API used by MolT5's fcd_metric.py, served by fcd-torch."""
from fcd_torch import FCD
from rdkit import Chem


def load_ref_model():
    return FCD(device="cpu", n_jobs=1)


def _canonical(smiles):
    mol = Chem.MolFromSmiles(smiles)
    return Chem.MolToSmiles(mol) if mol is not None else None


def canonical_smiles(smiles_list):
    return [_canonical(s) for s in smiles_list]


def get_fcd(reference, generated, model):
    return model(reference, generated)
'''


def run_child(command: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of one process, reaped with ``wait4`` for its own peak RSS."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{stdout[-2000:]}\n{stderr[-4000:]}")
    return elapsed, usage.ru_maxrss / 1024, stdout


def cap2mol_floor(path: Path, threads: int) -> dict:
    """CPU seconds of the unavoidable Cap2Mol work on ``path``, references and predictions apart."""
    import torch

    from molmix.scoring import fcd, molecules
    from molmix.scoring.io import read_items

    items, _ = read_items(path, "cap2mol")
    torch.set_num_threads(threads)
    fcd.chemnet_activations(["CCO"])  # model loaded outside the measurement

    def cpu_seconds(smiles: list[str], known: set[str]) -> tuple[float, set[str]]:
        start = time.process_time()
        mols = molecules.parse_smiles(smiles)
        distinct = {}
        for c, mol in zip(molecules.canonical_smiles(mols), mols, strict=True):
            if c is not None and c not in known:
                distinct.setdefault(c, mol)
        molecules.inchis(list(distinct.values()))
        molecules.fingerprints(list(distinct.values()))
        fcd.chemnet_activations(list(distinct))
        return time.process_time() - start, set(distinct)

    references, reference_molecules = cpu_seconds(items["reference"].tolist(), set())
    predictions, _ = cpu_seconds(items["prediction"].fillna("").astype(str).tolist(), reference_molecules)
    cores = min(threads, os.cpu_count())
    return {
        "cpu_seconds": {"references": references, "predictions": predictions},
        "floor_cold_seconds": (references + predictions) / cores,
        "floor_warm_seconds": predictions / cores,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molt5", default=os.environ.get("MOLT5_DIR"), help="MolT5 checkout (or MOLT5_DIR)")
    parser.add_argument("--fixtures", default=str(fixture_root()))
    parser.add_argument("--threads", type=int, default=2, help="torch threads of molmix score")
    parser.add_argument("--systems", type=int, default=20, help="systems scored on one test set")
    parser.add_argument("--json", help="also write the measurements here")
    args = parser.parse_args()
    if not args.molt5 or not (Path(args.molt5) / "evaluation" / "text_translation_metrics.py").is_file():
        parser.error("--molt5 (or MOLT5_DIR) must point at a MolT5 checkout with evaluation/*.py")
    evaluation = Path(args.molt5) / "evaluation"
    fixtures = Path(args.fixtures)
    captions = fixtures / "molt5" / "molt5-large-smiles2caption.txt"
    molecules = fixtures / "molt5" / "molt5-large-caption2smiles.txt"
    tokenizer = fixtures / "tokenizers" / "bert-base-uncased"
    python = sys.executable
    rows = []

    with tempfile.TemporaryDirectory() as scratch:
        shim = Path(scratch) / "shim"
        shim.mkdir()
        (shim / "fcd.py").write_text(FCD_TORCH_SHIM)
        env = os.environ | {"PYTHONPATH": str(shim)}
        official = {
            "text": [python, str(evaluation / "text_translation_metrics.py"), "--input_file", str(captions), "--text_model", str(tokenizer)],
            "mol": [python, str(evaluation / "mol_translation_metrics.py"), "--input_file", str(molecules)],
            "fingerprint": [python, str(evaluation / "fingerprint_metrics.py"), "--input_file", str(molecules)],
            "fcd": [python, str(evaluation / "fcd_metric.py"), "--input_file", str(molecules)],
        }  # fmt: skip
        official_outputs = {}
        for step, command in official.items():
            seconds, peak, stdout = run_child(command, env)
            official_outputs[step] = [line for line in stdout.splitlines() if "processed" not in line]
            rows.append(("official", step, seconds, peak))
            print(f"official {step:12s} {seconds:7.1f} s  {peak:7.0f} MB", flush=True)

        cache = Path(scratch) / "cache"
        ours = {
            "mol2cap": [
                python,
                "-m",
                "molmix.cli",
                "score",
                str(captions),
                "--text-tokenizer",
                str(tokenizer),
            ],
            "cap2mol": [python, "-m", "molmix.cli", "score", str(molecules), "--invalid-smiles", "molt5"],
        }
        summaries = {}
        for phase in ("cold", "warm"):
            for task, command in ours.items():
                command = [*command, "--cache-dir", str(cache), "--threads", str(args.threads)]
                seconds, peak, stdout = run_child(command)
                summaries[task] = json.loads(stdout)
                rows.append((f"molmix-{phase}", task, seconds, peak))
                print(f"molmix {phase} {task:10s} {seconds:7.1f} s  {peak:7.0f} MB", flush=True)

    total = {
        tool: sum(r[2] for r in rows if r[0] == tool) for tool in ("official", "molmix-cold", "molmix-warm")
    }
    peak = {tool: max(r[3] for r in rows if r[0] == tool) for tool in total}
    systems_official = total["official"] * args.systems
    systems_ours = total["molmix-cold"] + total["molmix-warm"] * (args.systems - 1)
    floor = cap2mol_floor(molecules, args.threads)
    report = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        "rows": rows,
        "total_seconds": total,
        "peak_rss_mb": peak,
        "speedup_cold": total["official"] / total["molmix-cold"],
        "speedup_warm": total["official"] / total["molmix-warm"],
        f"speedup_{args.systems}_systems": systems_official / systems_ours,
        "cap2mol_floor": floor,
        "targets_seconds": {"cold_5x": total["official"] / 5, "warm_10x": total["official"] / 10},
        "official_output": official_outputs,
        "molmix": {
            t: {k: s[k] for k in s if not isinstance(s[k], dict | list)} for t, s in summaries.items()
        },
    }
    print(
        json.dumps(
            {k: v for k, v in report.items() if k not in ("rows", "official_output", "molmix")}, indent=2
        )
    )
    for step, lines in official_outputs.items():
        print(f"official {step}: {' | '.join(lines[-8:])}")
    for task, summary in report["molmix"].items():
        print(f"molmix {task}: {json.dumps(summary)}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
