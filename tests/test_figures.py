import pandas as pd

from molmix.figures import loss_curves, merge_comparison, ratio_ablation, word_counts


def summary(level):
    return {
        "mol2cap": {k: level for k in ("bleu2", "bleu4", "rouge1", "rouge2", "rougeL", "meteor")},
        "cap2mol": {
            "bleu": level,
            "levenshtein": 10,
            "maccs_fts": level,
            "rdk_fts": level,
            "morgan_fts": level,
            "fcd": 3.0,
            "validity": level,
        },
    }


def test_each_figure_writes_png_and_svg(tmp_path):
    outputs = []
    outputs += word_counts(["a b c", "a b c d e f", "x"] * 5, tmp_path / "words", thresholds=[4])
    outputs += ratio_ablation({0.5: summary(0.4), 0.947: summary(0.6)}, tmp_path / "ratio")
    outputs += merge_comparison({"SLERP": summary(0.6), "soup": summary(0.2)}, tmp_path / "soup")
    history = pd.DataFrame({"step": [1, 2, 3], "loss": [2.0, None, 1.0]})
    outputs += loss_curves({"cpo": history}, tmp_path / "loss")
    assert sorted(p.name for p in outputs) == sorted(
        f"{stem}.{ext}" for stem in ("words", "ratio", "soup", "loss") for ext in ("png", "svg")
    )
    assert all(p.stat().st_size > 1000 for p in outputs)
    assert (tmp_path / "words.png").read_bytes()[:4] == b"\x89PNG"
