"""`fashionlens categorize train|evaluate|predict`: product categories from photos."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import typer

from fashionlens.cli.common import friendly_errors, print_json, print_table
from fashionlens.errors import InvalidInputError

app = typer.Typer(help="Categorise products from their photos (zero-shot, probe, MLP head, fine-tune, caption).",
                  no_args_is_help=True)


def _load(catalog: Path, limit: int | None, seed: int, check_images: bool):
    from fashionlens.catalog import load_catalog

    cat = load_catalog(catalog, check_images=check_images)
    return cat.sample(limit, seed=seed) if limit else cat


def _read_prompts(path: Path) -> dict[str, list[str]]:
    """{"class": ["text", ...]} from a JSON file, or a ValueError naming the file and the problem."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidInputError(f"--class-prompts {path}: cannot read it as JSON ({e})") from e
    if not isinstance(data, dict) or not all(
            isinstance(v, list) and v and all(isinstance(t, str) and t.strip() for t in v) for v in data.values()):
        raise InvalidInputError(f'--class-prompts {path}: expected {{"class": ["text", ...]}} with non-empty lists of texts')
    return {str(k): v for k, v in data.items()}


@app.command()
@friendly_errors
def train(
    catalog: Path = typer.Argument(..., help="catalog folder (Kaggle layout) or CSV/Parquet table"),
    label: str = typer.Option(..., "--label", help="column to predict, e.g. masterCategory, articleType, baseColour"),
    out: Path = typer.Option(..., "--out", help="folder for the model and its evaluation report"),
    encoder: str = typer.Option("efficientnet-lite0.stages", help="registry encoder (method caption: a captioner; "
                                "finetune trains efficientnet-lite0 itself)"),
    size: int | None = typer.Option(None, help="encoder input size in px (default: the encoder's own; "
                                    "Lite0 160, 224 measured in docs/bench/categorize.md)"),
    method: str = typer.Option("auto", help="auto (the candidate validation favours, never below the probe) | "
                               "zeroshot | probe | head | ensemble | finetune | caption"),
    limit: int | None = typer.Option(None, help="use a seeded random sample of N items"),
    test_size: float = typer.Option(0.2, help="held-out share for the report"),
    min_class_size: int = typer.Option(0, help="merge classes with fewer training items into 'other'"),
    cap_per_class: int | None = typer.Option(None, help="at most N training items per class"),
    balance: str = typer.Option("weights", help="none | weights | oversample"),
    augment: str = typer.Option("flip", help="trained head: none | flip | random"),
    tta: bool = typer.Option(True, help="average predictions over the photo and its mirror"),
    epochs: int | None = typer.Option(None, help="head / finetune: maximum epochs (early stopping on val macro "
                                      "F1; default 40 / 12)"),
    unfreeze_blocks: int = typer.Option(2, help="finetune: backbone blocks retrained, counted from the end"),
    prompt_children: bool = typer.Option(True, help="zeroshot: also prompt a class by its finer labels "
                                         "(masterCategory Footwear by its article types)"),
    class_prompts: Path | None = typer.Option(None, help='zeroshot: JSON file {"class": ["text", ...]} '
                                              "replacing a class's prompt names"),
    seed: int = typer.Option(0),
    cache_dir: Path | None = typer.Option(None, help="embedding cache (default: the fashionlens cache)"),
    check_images: bool = typer.Option(True, help="decode every photo while importing"),
    candidates: str = typer.Option("probe,head,ensemble,multisize", help="method auto: what it chooses from, "
                                   "comma-separated (probe, head, ensemble = the two calibrated and averaged, "
                                   "multisize = one head at 160 px and one at 224 px averaged, finetune = the last "
                                   "block on cached activations; slow on a CPU)"),
    refit: bool = typer.Option(True, help="method auto: fit the chosen candidate again on train + validation "
                               "(the head for the epoch count validation chose)"),
    baseline: bool = typer.Option(True, help="also fit the logistic probe and score it on the same held-out "
                                  "items (method auto fits it anyway)"),
    json_out: bool = typer.Option(False, "--json", help="print the training summary and held-out metrics as JSON"),
) -> None:
    """Train on a seeded stratified split; the held-out part is scored into OUT/report, beside the probe."""
    import os

    from fashionlens.categorize.categorizer import CATEGORIZER_MARKS, CategorizeConfig, Categorizer
    from fashionlens.categorize.data import clean_labels, stratified_split
    from fashionlens.embed import DEFAULT_CACHE
    from fashionlens.manifest import check_overwrite

    check_overwrite(out, "categorizer", CATEGORIZER_MARKS)  # before training, not after
    prompts = _read_prompts(class_prompts) if class_prompts else {}
    cat = _load(catalog, limit, seed, check_images)
    cfg = CategorizeConfig(label=label, encoder=encoder, encoder_kwargs={"size": size} if size else {},
                           method=method, seed=seed, min_class_size=min_class_size,
                           cap_per_class=cap_per_class, balance=balance, augment=augment, tta=tta,
                           prompt_children=prompt_children, class_prompts=prompts,
                           candidates=tuple(c.strip() for c in candidates.split(",") if c.strip()), refit=refit,
                           head={"epochs": epochs} if epochs else {},
                           tune={"unfreeze_blocks": unfreeze_blocks, **({"epochs": epochs} if epochs else {})}
                           if method == "finetune" else {})
    y = clean_labels(cat.column(label))
    cat = cat.subset(y != "")
    fit_pos, test_pos = stratified_split(clean_labels(cat.column(label)), test_size, seed)
    clf = Categorizer(cfg, cache_dir=cache_dir or DEFAULT_CACHE, progress=True)
    ckpt = out / "checkpoint"  # finetune: each epoch lands here; rerunning the command resumes
    # the live log goes beside the checkpoint: OUT/train_log.jsonl stays the old model's until save()
    # swaps the new folder in (with its own log)
    clf.fit(cat.subset(fit_pos), log_path=ckpt / "train_log.jsonl", checkpoint=ckpt)
    clf.save(out)
    shutil.rmtree(ckpt, ignore_errors=True)  # the saved model supersedes it
    load = os.getloadavg()[0]  # the machine may be shared: fit seconds mean little without it
    res = clf.evaluate(cat.subset(test_pos), report_dir=out / "report")
    base = _baseline(clf, cat.subset(fit_pos), cache_dir or DEFAULT_CACHE) if baseline else None
    base_res = base.evaluate(cat.subset(test_pos)) if base is not None else None
    selection = getattr(clf, "selection_", None)
    if json_out:
        print_json({"model": str(out), "label": label, "method": clf.config.method, "encoder": clf.config.encoder,
                    "n_fit": len(fit_pos), "n_test": len(test_pos), "classes": [str(c) for c in clf.classes_],
                    "merged": list(clf.merged_), "fit_seconds": round(clf.fit_seconds_, 2), "load_average": load,
                    "selection": selection, "evaluation": res, "baseline_probe": base_res})
        return
    chosen = f"auto -> {shown_method(clf)}" if selection else clf.config.method
    typer.echo(f"{label} ({chosen}, {clf.config.encoder}): {len(fit_pos)} fit / {len(test_pos)} test items, "
               f"{len(clf.classes_)} classes, trained in {clf.fit_seconds_:.1f}s (load average {load:.1f})")
    if clf.merged_:
        typer.echo(f"merged into 'other' (< {min_class_size} training items): {', '.join(clf.merged_)}")
    if selection:
        typer.echo(f"chosen on validation ({selection['rule']}):")
        print_table([{"candidate": n, "val_accuracy": m["accuracy"], "val_macro_f1": m["macro_f1"],
                      "fit_s": m["fit_seconds"], "chosen": "*" if n == selection["chosen"] else ""}
                     for n, m in selection["validation"].items()])
        if selection.get("refit"):
            r = selection["refit"]
            epochs = [x["epochs"] for x in (r["settings"] if isinstance(r["settings"], list) else [r["settings"]])
                      if "epochs" in x]
            typer.echo(f"then refitted on all {r['items']} fit items (train + validation"
                       f"{f', head for {epochs[0]} epochs' if epochs else ''}) in {r['fit_seconds']:.1f}s; "
                       "the baseline probe below is the candidate fitted on the train part")
    _summary(res)
    typer.echo(f"held-out test, {res['n']} items, 95% bootstrap CIs:")
    typer.echo(_ci_line(f"{shown_method(clf)} (this model)", res))
    if base_res:
        typer.echo(_ci_line("probe (baseline, same split)", base_res))
    typer.echo(f"model + report: {out}")


@app.command()
@friendly_errors
def evaluate(
    model_dir: Path = typer.Argument(..., help="folder written by `categorize train`"),
    catalog: Path = typer.Argument(..., help="labelled catalog"),
    json_out: bool = typer.Option(False, "--json", help="print the metrics as JSON"),
    include_fit: bool = typer.Option(False, help="also score items the model was fitted on"),
    report: Path | None = typer.Option(None, help="write confusion matrix, per-class table and QA here"),
    limit: int | None = typer.Option(None),
    check_images: bool = typer.Option(True),
    cache_dir: Path | None = typer.Option(None, help="embedding cache (default: the fashionlens cache)"),
) -> None:
    """Score a saved model on a catalog (items it was fitted on are skipped unless --include-fit)."""
    import numpy as np

    from fashionlens.categorize.categorizer import Categorizer
    from fashionlens.embed import DEFAULT_CACHE

    clf = Categorizer.load(model_dir, cache_dir=cache_dir or DEFAULT_CACHE)
    cat = _load(catalog, limit, 0, check_images)
    n_fit = 0
    if not include_fit and clf.fit_ids_:
        seen = set(clf.fit_ids_)
        keep = np.asarray([i not in seen for i in cat.ids], bool)
        n_fit = int((~keep).sum())
        if not keep.any():
            raise InvalidInputError(f"every item of {catalog} was used to fit the model; pass --include-fit to score them")
        cat = cat.subset(np.flatnonzero(keep))
    res = clf.evaluate(cat, report_dir=report)
    res["n_skipped_fit_items"] = n_fit
    if json_out:
        print_json(res)
        return
    _summary(res)


@app.command()
@friendly_errors
def predict(
    model_dir: Path = typer.Argument(...),
    images: list[Path] = typer.Argument(..., help="photos to categorise"),
    top: int = typer.Option(5, help="labels per photo"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Top labels per photo, with the parent categories where the label has a hierarchy."""
    from fashionlens.categorize.categorizer import Categorizer

    clf = Categorizer.load(model_dir)
    levels = clf.predict_levels([str(p) for p in images], k=top)
    rows = [{"image": str(p), **{lv: [{"label": lb, "prob": pr} for lb, pr in tops] for lv, tops in lv_map.items()}}
            for p, lv_map in zip(images, levels)]
    if json_out:
        print_json(rows)
        return
    label = clf.config.label
    for p, lv_map in zip(images, levels):
        parents = ", ".join(f"{lv}={tops[0][0]}" for lv, tops in lv_map.items() if lv != label)
        typer.echo(f"{p}" + (f"  ({parents})" if parents else ""))
        print_table([{"rank": i + 1, label: lb, "prob": pr} for i, (lb, pr) in enumerate(lv_map[label])])


def _baseline(clf, fit_catalog, cache_dir):
    """The logistic probe on the same fit items (method auto already fitted it as a candidate)."""
    from fashionlens.categorize.categorizer import Categorizer
    from fashionlens.categorize.select import BASELINE, candidate_config

    if BASELINE in getattr(clf, "candidates_", {}):
        return clf.candidates_[BASELINE]
    if clf.config.method == BASELINE:
        return None  # the model is the probe
    return Categorizer(candidate_config(clf.config, BASELINE), cache_dir=cache_dir).fit(fit_catalog)


def _ci_line(name: str, res: dict) -> str:
    ci = res["ci95"]
    return (f"  {name}: accuracy {res['accuracy']:.3f} [{ci['accuracy'][0]:.3f}, {ci['accuracy'][1]:.3f}], "
            f"macro F1 {res['macro_f1']:.3f} [{ci['macro_f1'][0]:.3f}, {ci['macro_f1'][1]:.3f}]")


def _summary(res: dict) -> None:
    keys = ("n", "accuracy", "top5_accuracy", "macro_f1", "weighted_f1")
    rows = [{"level": res.get("label", ""), **{k: res.get(k) for k in keys}}]
    rows += [{"level": lv, **{k: m.get(k) for k in keys}} for lv, m in res.get("levels", {}).items()]
    print_table(rows)
    if res["labels_unseen"]["n"]:
        typer.echo(f"labels the model never saw (excluded): {res['labels_unseen']['n']} items "
                   f"({', '.join(list(res['labels_unseen']['labels'])[:10])})")


def shown_method(clf: Any) -> str:
    """The name a user chose or auto's rule picked ("multisize" is method head over several sizes)."""
    selection = getattr(clf, "selection_", None)
    return selection["chosen"] if selection else clf.config.method
