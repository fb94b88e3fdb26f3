"""Categorisation methods on a held-out split of the real Myntra catalog (../shared/data/myntra).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/categorize_myntra.py --rows 16000 \
        --cache ~/.cache/fashionlens/embeddings --out /tmp/categorize_bench

Embeddings are cached (first run: ~6 min per 40k photos at 160 px on 2 idle cores; reruns instant).
Writes results.json, a markdown table (table.md) and one evaluation report folder per run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

RUNS = {  # name -> CategorizeConfig overrides
    # the default: probe and MLP head fitted, one kept by the validation rule (select.py)
    "auto": {"method": "auto"},
    "auto+finetune": {"method": "auto", "candidates": ("probe", "head", "finetune")},  # + the cached fine-tune
    "auto+ensemble": {"method": "auto", "candidates": ("probe", "head", "ensemble")},  # + the calibrated mean
    # the probe on the plain 1280-d Lite0 vector (the default before the pooled stages), same split
    "probe-lite0": {"method": "probe", "tta": False, "balance": "none", "encoder": "efficientnet-lite0"},
    # the last Lite0 block + a cosine classifier on cached activations of the frozen part (CPU minutes)
    "finetune-cached": {"method": "finetune", "tta": False,
                        "tune": {"cached": True, "unfreeze_blocks": 1, "epochs": 4, "patience": 2, "augment": False}},
    "probe": {"method": "probe", "tta": False, "balance": "none"},
    "head": {"method": "head", "augment": "none", "tta": False, "head": {"epochs": 25, "patience": 5}},
    "head+flip+tta": {"method": "head", "augment": "flip", "tta": True, "head": {"epochs": 25, "patience": 5}},
    # partial fine-tuning of the backbone (needs a GPU for the full catalog: ~20 min/epoch on 2 CPU cores)
    "finetune": {"method": "finetune", "tta": True, "tune": {"epochs": 12, "unfreeze_blocks": 3}},
    # the same with fully balanced class weights (macro F1 weighs every class equally)
    "finetune-balanced": {"method": "finetune", "tta": True, "class_weight_power": 1.0,
                          "tune": {"epochs": 12, "unfreeze_blocks": 3}},
    # another encoder: the search index's aligned default (image + text towers in one 256-d space),
    # trained on the fit split only (product names, SupCon on articleType), then used zero-shot or probed
    "aligned-zeroshot": {"method": "zeroshot", "tta": False, "aligned": True},
    "aligned-zeroshot-names": {"method": "zeroshot", "tta": False, "aligned": True, "prompt_children": False},
    "aligned-probe": {"method": "probe", "tta": False, "balance": "none", "aligned": True},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/myntra"))
    ap.add_argument("--rows", type=int, default=None, help="first N rows of styles.csv (default: all)")
    ap.add_argument("--sample", type=int, default=0, help="add a seeded sample of N items (seed 0) to --rows")
    ap.add_argument("--limit", type=int, default=None,
                    help="a seeded sample of N items (seed 0), as `categorize train --limit N` draws it")
    ap.add_argument("--labels", default="articleType,masterCategory,baseColour")
    ap.add_argument("--runs", default=",".join(RUNS))
    ap.add_argument("--encoder", default="efficientnet-lite0.stages")
    ap.add_argument("--size", default="", help="encoder input size(s), comma-separated: one set of rows each "
                    "on the same split (default: the encoder's)")
    ap.add_argument("--min-class-size", type=int, default=20)
    ap.add_argument("--cache", default=str(Path.home() / ".cache/fashionlens/embeddings"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="/tmp/categorize_bench")
    ap.add_argument("--tune-epochs", type=int, default=None, help="finetune run: epochs (default 12)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from fashionlens.catalog import load_catalog
    from fashionlens.categorize.categorizer import CategorizeConfig, Categorizer
    from fashionlens.categorize.data import clean_labels, stratified_split
    from fashionlens.encoders import create
    from fashionlens.search.index import BuildConfig, SearchIndex, build_index

    cat = load_catalog(args.data, check_images=False)
    if args.limit:
        cat = cat.sample(args.limit, seed=0)
    if args.rows:
        import numpy as np

        keep = set(range(min(args.rows, len(cat))))
        if args.sample:  # Catalog.sample draws sorted positions with default_rng(seed)
            rng = np.random.default_rng(0)
            keep |= set(rng.choice(len(cat), size=args.sample, replace=False).tolist())
        cat = cat.subset(sorted(keep))
    out = Path(args.out)
    results = []
    preds: dict[tuple[str, str], dict[int | None, tuple[list[str], list[str]]]] = {}  # (label, run) -> size -> truth, predicted
    for size, label in itertools.product([int(s) for s in args.size.split(",") if s] or [None],
                                         args.labels.split(",")):
        enc = create(args.encoder, **({"size": size} if size else {}))
        out = Path(args.out) / (f"{size}px" if size else "")
        lab = cat.subset(clean_labels(cat.column(label)) != "")
        fit_pos, test_pos = stratified_split(clean_labels(lab.column(label)), 0.2, 0)
        fit, test = lab.subset(fit_pos), lab.subset(test_pos)
        aligned, align_s = None, None
        for run in args.runs.split(","):
            over = RUNS[run] | ({"tune": {**RUNS[run]["tune"], "epochs": args.tune_epochs}}
                                if args.tune_epochs and "tune" in RUNS[run] else {})
            run_enc = enc
            if "encoder" in over:  # a run on another encoder than --encoder, same split
                run_enc = create(over.pop("encoder"), **({"size": size} if size else {}))
            if over.pop("aligned", False):
                idx_dir = out / f"{label}-aligned-index"  # one per label split, trained on its fit items only
                if aligned is None and (idx_dir / "index.json").is_file():  # a rerun reuses it
                    aligned = SearchIndex(idx_dir).encoder
                elif aligned is None:
                    t0 = time.perf_counter()
                    aligned = build_index(fit, idx_dir, BuildConfig(encoder=args.encoder, cache_dir=args.cache),
                                          progress=False).encoder
                    align_s = round(time.perf_counter() - t0, 1)
                run_enc = aligned
            cfg = CategorizeConfig(label=label, encoder=run_enc.name, min_class_size=args.min_class_size,
                                   encoder_kwargs={"size": size} if size and run_enc is not aligned else {}, **over)
            t0 = time.perf_counter()
            run_dir = out / f"{label}-{run}"  # fine-tuning saves each epoch there: a rerun resumes
            clf = Categorizer(cfg, encoder=run_enc, cache_dir=args.cache).fit(
                fit, log_path=run_dir / "train_log.jsonl",
                checkpoint=run_dir / "checkpoint" if cfg.method == "finetune" else None)
            fit_s, load = time.perf_counter() - t0, os.getloadavg()
            res = clf.evaluate(test, report_dir=run_dir)
            row = {"label": label, "run": run, "size": size, "encoder": run_enc.fingerprint(), "n_fit": len(fit), "n_test": res["n"],
                   "classes": len(clf.classes_), "merged": len(clf.merged_), "accuracy": res["accuracy"],
                   "top5_accuracy": res["top5_accuracy"], "macro_f1": res["macro_f1"],
                   "weighted_f1": res["weighted_f1"], "fit_seconds": round(fit_s, 1), "load_average": load,
                   "ci95": res["ci95"], "selection": getattr(clf, "selection_", None),
                   "levels": {k: v["accuracy"] for k, v in res["levels"].items()},
                   "align_seconds": align_s if run_enc is aligned else None,
                   "best_epoch": max((r["epoch"] for r in clf.history_ if r.get("best")), default=None),
                   "per_class": res["per_class"]}  # kept in results.json: macro F1 hinges on the rare classes
            results.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "per_class"}), flush=True)
            truth = [str(v) for v in clean_labels(test.column(label))]
            preds.setdefault((label, run), {})[size] = (truth, clf.predict(test))
            for name, cand in getattr(clf, "candidates_", {}).items():  # auto: every candidate on the same test
                # the chosen one's row is the run's (paired across sizes by name too), unless refitted on
                # train + validation: then the candidate as validation scored it gets its own row
                if name == clf.selection_["chosen"] and not clf.selection_.get("refit"):
                    preds.setdefault((label, f"{run}:{name}"), {})[size] = preds[(label, run)][size]
                    continue
                r = cand.evaluate(test)
                results.append({**{k: row[k] for k in ("label", "size", "n_fit", "classes", "merged")}, "run": f"{run}:{name}",
                                "encoder": cand.encoder.fingerprint(), "n_test": r["n"], "accuracy": r["accuracy"],
                                "top5_accuracy": r["top5_accuracy"], "macro_f1": r["macro_f1"],
                                "weighted_f1": r["weighted_f1"], "fit_seconds": cand.fit_seconds_, "ci95": r["ci95"],
                                "per_class": r["per_class"]})
                print(json.dumps({k: v for k, v in results[-1].items() if k != "per_class"}), flush=True)
                preds.setdefault((label, f"{run}:{name}"), {})[size] = (truth, cand.predict(test))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    paired = [size_difference(key, by_size) for key, by_size in preds.items() if len(by_size) > 1]
    if paired:
        (out / "paired_sizes.json").write_text(json.dumps(paired, indent=2))
        print(json.dumps(paired, indent=1))
    lines = ["| label | size | method | classes | fit / test | accuracy | top-5 | macro F1 | weighted F1 | fit s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['label']} | {r['size'] or 'default'} | {r['run']} | {r['classes']} | {r['n_fit']} / {r['n_test']} | "
                     f"{r['accuracy']:.3f} | {r['top5_accuracy']:.3f} | {r['macro_f1']:.3f} | "
                     f"{r['weighted_f1']:.3f} | {r['fit_seconds']:.0f} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def size_difference(key: tuple[str, str], by_size: dict) -> dict:
    """The first size minus each other one, on the same test items: paired bootstrap CIs (1,000
    resamples) of the accuracy and macro F1 differences (macro F1 over the classes in the test truth)."""
    import numpy as np

    from fashionlens.evaluation.classification import macro_f1
    from fashionlens.evaluation.statistics import bootstrap_statistic_ci, paired_bootstrap

    (first, (truth, pred_a)), *others = by_size.items()
    names = sorted(set(truth) | {p for _, ps in by_size.values() for p in ps})
    code = {n: i for i, n in enumerate(names)}
    t, a = np.array([code[x] for x in truth]), np.array([code[x] for x in pred_a])
    every = np.arange(len(t))

    def f1(i: np.ndarray, p: np.ndarray) -> float:
        return macro_f1(t[i], p[i], len(names))

    rows = []
    for size, (_, pred_b) in others:
        b = np.array([code[x] for x in pred_b])
        acc = paired_bootstrap((a != t).astype(float), (b != t).astype(float), n_boot=1000)  # error rates
        rows.append({"label": key[0], "run": key[1], "sizes": [first, size], "n": len(t),
                     "accuracy_diff": -acc.diff, "accuracy_diff_ci95": sorted([-acc.ci95[0], -acc.ci95[1]]),
                     "macro_f1_diff": f1(every, a) - f1(every, b),
                     "macro_f1_diff_ci95": list(bootstrap_statistic_ci(lambda i, b=b: f1(i, a) - f1(i, b), len(t)))})
    return rows[0] if len(rows) == 1 else {"label": key[0], "run": key[1], "pairs": rows}


if __name__ == "__main__":
    main()
