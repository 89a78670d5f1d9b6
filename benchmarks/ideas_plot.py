"""Plot the ideas table: one bar pair per idea (mean ± std over folds), the goal drawn, from
the committed 5-fold CV JSON files; also redraws the other committed charts from their JSON
(mvsa_single_cv5.png, mvsa_single_table4.png), so a plotting change reaches every figure.

    python benchmarks/ideas_plot.py    # -> benchmarks/results/mvsa_single_{ideas,cv5,table4}.png
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(RESULTS.parents[1]))

# (label on the plot, CV file, fusion row in it), in the order of the README's table.
IDEAS = [
    ("naive-cat\nfrozen", "mvsa_single_cv5.json", "naive-cat"),
    ("naive-cat\n+ls 0.1", "mvsa_single_cv5_naivecat_ls01.json", "naive-cat"),
    ("hstec\nfrozen", "mvsa_single_cv5.json", "hstec"),
    ("naive-cat frozen\nMPNet text", "mvsa_single_cv5_frozen_mpnet.json", "naive-cat"),
    ("hstec\n+balanced", "mvsa_single_cv5_hstec_balanced.json", "hstec"),
    ("hstec\n+aux loss", "mvsa_single_cv5_hstec_aux1.json", "hstec"),
    ("hstec\n+tweet", "mvsa_single_cv5_hstec_tweet.json", "hstec"),
    ("ensemble\n+tweet frozen", "mvsa_single_cv5_ensemble_frozen.json", "ensemble"),
    ("recipe best\n(text fine-tuned)", "mvsa_single_cv5_best.json", "ensemble"),
    ("recipe best\n+GB18030 texts", "mvsa_single_cv5_best_gb18030.json", "ensemble"),
    ("recipe best\n+ls 0.1", "mvsa_single_cv5_best_ls01.json", "ensemble"),
    ("recipe best\n+EMA 0.995", "mvsa_single_cv5_best_ema995.json", "ensemble"),
    ("recipe best\n+LLRD 0.8", "mvsa_single_cv5_best_llrd08.json", "ensemble"),
    ("recipe best\n+modality dropout", "mvsa_single_cv5_best_md02.json", "ensemble"),
    ("recipe best\n+R-Drop 1", "mvsa_single_cv5_best_rdrop1.json", "ensemble"),
    ("image-only frozen\n260 (preset)", "mvsa_single_cv5.json", "image-only"),
    ("image-only frozen\n320", "mvsa_single_cv5_image_only_s320.json", "image-only"),
    ("mean of GB18030\nand ls 0.1 runs", "mvsa_single_cv5_ensemble_of_runs.json", "mean of probabilities"),
    ("recipe best\nseed 7 folds", "mvsa_single_cv5_best_md02_seed7.json", "ensemble"),
    ("bag: seed 42 +\nseed 7 runs", "mvsa_single_cv5_bagging_estimate.json", "mean of probabilities"),
    ("recipe best\nseed 123 folds", "mvsa_single_cv5_best_md02_seed123.json", "ensemble"),
    ("bag: seeds\n42, 7, 123", "mvsa_single_cv5_bagging_estimate3.json", "mean of probabilities"),
    ("text-only (text frozen)\narg-max", "mvsa_single_cv5_text_frozen_decision_rule.json",
     "runs/cv5-text-frozen: arg-max"),
    ("text-only + decision rule\nfor macro F1 (nested CV)", "mvsa_single_cv5_text_frozen_decision_rule.json",
     "runs/cv5-text-frozen: offsets for macro_f1"),
    ("recipe best\narg-max", "mvsa_single_cv5_best_decision_rule.json", "runs/cv5-best: arg-max"),
    ("recipe best + decision rule\nfor macro F1 (nested CV)", "mvsa_single_cv5_best_decision_rule.json",
     "runs/cv5-best: offsets for macro_f1"),
    ("recipe best + decision rule\nfor accuracy (nested CV)", "mvsa_single_cv5_best_decision_rule.json",
     "runs/cv5-best: offsets for accuracy"),
    ("bag: seeds 42, 7\narg-max", "mvsa_single_cv5_bag2_decision_rule.json", "mean of probabilities: arg-max"),
    ("bag: seeds 42, 7 + decision rule\nfor weighted F1 (nested CV)", "mvsa_single_cv5_bag2_decision_rule.json",
     "mean of probabilities: offsets for weighted_f1"),
    ("ensemble frozen MPNet text\n(recipe best, --freeze both)", "mvsa_single_cv5_frozen_mpnet_ensemble.json",
     "ensemble"),
    ("mean: recipe best +\nfrozen MPNet run", "mvsa_single_cv5_mix_minilm_mpnet.json", "mean of probabilities: arg-max"),
    ("mean: recipe best + frozen MPNet\n+ decision rule for weighted F1", "mvsa_single_cv5_mix_minilm_mpnet.json",
     "mean of probabilities: offsets for weighted_f1"),
    ("mean: recipe best + frozen MPNet\nseeds 42 and 7", "mvsa_single_cv5_mix_minilm_mpnet2.json",
     "mean of probabilities: arg-max"),
    ("mean: recipe best + frozen MPNet,\nweight fitted (nested CV)", "mvsa_single_cv5_mix_minilm_mpnet.json",
     "mean of probabilities, weight fitted for accuracy"),
    ("MPNet top 2 layers\nfine-tuned (recipe best)", "mvsa_single_cv5_mpnet_top2.json", "ensemble"),
    ("mean: recipe best + frozen MPNet\n+ MPNet top 2 (test predictions)", "mvsa_single_cv5_mix_minilm_mpnet_top2.json",
     "mean of probabilities: arg-max"),
    ("mean of those three\n+ recipe best seed 7", "mvsa_single_cv5_mix4_best_seed7.json", "mean of probabilities: arg-max"),
]


def main() -> None:
    from mmsa_cli.training.metrics import plot_comparison

    rows = []
    for label, name, fusion in IDEAS:
        row = next(r for r in json.loads((RESULTS / name).read_text())["rows"] if r["fusion"] == fusion)
        rows.append(row | {"name": label.replace("\n", " ")})  # one line: the bars are horizontal
    out = RESULTS / "mvsa_single_ideas.png"
    plot_comparison(rows, out, "MVSA-Single ideas, 5-fold CV (mean ± std over folds)",
                    goals={"accuracy": 78.0, "weighted F1": 77.0, "macro F1": 66.0},
                    metrics=(("accuracy", "accuracy"), ("weighted_f1", "weighted F1"), ("macro_f1", "macro F1")))
    print(f"wrote {out}")
    redraw_reports()


def redraw_reports() -> None:
    """The CV and Table 4 charts, as `mmsa train` draws them (reports.py), from their JSON."""
    from mmsa_cli.training.reports import plot_cv_summary, plot_split_comparison

    plot_cv_summary(json.loads((RESULTS / "mvsa_single_cv5.json").read_text())["rows"],
                    RESULTS / "mvsa_single_cv5.png")
    plot_split_comparison(json.loads((RESULTS / "mvsa_single_table4.json").read_text())["rows"],
                          RESULTS / "mvsa_single_table4.png", val_rows=800)
    print(f"wrote {RESULTS / 'mvsa_single_cv5.png'}, {RESULTS / 'mvsa_single_table4.png'}")


if __name__ == "__main__":
    main()
