"""`method="auto"` (the default): fit candidate methods, keep the one held-out validation favours.

Candidates: the probe, the MLP head, their calibrated mean (`ensemble`, built from those two fits) and
(on request: `candidates=(..., "finetune")`) a fine-tune of the last block on cached activations.

The rule (`choose`): among the candidates at least as good as the plain logistic probe on both
validation accuracy and validation macro F1, the one with the best accuracy (then macro F1; a tie
goes to the probe). The probe is always a candidate, so the default is never below it on the data
that picked it. Each candidate is a complete categoriser fitted on the same train/validation split;
the winner is what gets saved, with its own method, so it loads the same way as if chosen by hand.

Refit (`CategorizeConfig.refit`, on by default): once chosen, the winner is fitted again on every fit
item (train + validation) with the settings validation picked, the MLP head for its best epoch count
(`refit`); the candidates' validation scores stay what chose it.
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fashionlens.errors import InvalidInputError
from fashionlens.progress import status

if TYPE_CHECKING:
    from fashionlens.catalog.core import Catalog
    from fashionlens.categorize.categorizer import CategorizeConfig, Categorizer

BASELINE = "probe"
# name -> CategorizeConfig overrides. Frozen candidates run on the cached photo features only (a flip
# view costs a second full pass over every photo); the fine-tune trains the last block on cached
# activations (tune_cached.py), which is what lifts fine-grained labels past the frozen heads.
CANDIDATES: dict[str, dict[str, Any]] = {
    "probe": {"method": "probe", "balance": "none", "tta": False},
    # 20 epochs one-cycle, the best one kept: validation 0.834 / 0.675 vs 0.833 / 0.669 for 40 with patience 6
    "head": {"method": "head", "augment": "none", "tta": False, "head": {"epochs": 20, "patience": 20}},
    # the probe's and the head's temperature-calibrated probabilities averaged (EnsembleHead)
    "ensemble": {"method": "ensemble", "augment": "none", "tta": False},
    # one MLP head on Lite0's stages at 160 px and one at 224 px, probabilities averaged: +0.018 articleType
    # accuracy over the single head on held-out items (docs/bench/categorize.md, fourth round)
    "multisize": {"method": "head", "augment": "none", "tta": False, "sizes": (160, 224),
                  "head": {"epochs": 20, "patience": 20}},
    "finetune": {"method": "finetune", "tta": False,
                 "tune": {"cached": True, "unfreeze_blocks": 1, "epochs": 4, "patience": 2, "augment": False}},
}
# the fine-tune is asked for by name: on the shared 2-core CPU it matched the MLP head on articleType
# (test 0.809 vs 0.807, 12k items) at 15x the fit time (docs/bench/categorize.md)
# the ensemble reuses the probe's and the head's fits: no extra cost
DEFAULT_CANDIDATES = ("probe", "head", "ensemble", "multisize")


def choose(scores: dict[str, dict[str, float]], baseline: str = BASELINE) -> str:
    """The candidate to keep, from held-out `{"accuracy", "macro_f1"}` per candidate (see module doc)."""
    if baseline not in scores:
        raise InvalidInputError(f"the baseline '{baseline}' must be among the candidates: {sorted(scores)}")
    base = scores[baseline]
    fair = [n for n, m in scores.items() if m["accuracy"] >= base["accuracy"] and m["macro_f1"] >= base["macro_f1"]]
    return max(fair, key=lambda n: (scores[n]["accuracy"], scores[n]["macro_f1"], n == baseline))


def check_candidates(names: tuple[str, ...]) -> None:
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise InvalidInputError(f"unknown candidate(s) {unknown}; choose from {', '.join(CANDIDATES)}")


def candidate_config(cfg: CategorizeConfig, name: str) -> CategorizeConfig:
    """The config of one candidate: the user's settings (label, split, rare classes, ...) + its method."""
    over = dict(CANDIDATES[name])
    if name in ("head", "multisize") and cfg.head:
        over["head"] = {**over.get("head", {}), **cfg.head}
    if name == "finetune" and cfg.tune:
        over["tune"] = {**over["tune"], **cfg.tune}
    return replace(cfg, **over)


def fit_auto(clf: Categorizer, catalog: Catalog, log_path: Any = None) -> Categorizer:
    """Fit every candidate of `clf.config.candidates` on the same split; `clf` becomes the chosen one.
    `clf.candidates_` keeps the fitted candidates (the probe is the baseline a report compares with)."""
    from fashionlens.categorize.categorizer import Categorizer
    from fashionlens.categorize.tune_cached import can_split

    cfg = clf.config
    if cfg.val_size <= 0:
        raise InvalidInputError("method 'auto' chooses on a validation split: set val_size > 0")
    given = clf._encoder is not None
    names = tuple(dict.fromkeys((BASELINE, *cfg.candidates)))
    check_candidates(names)
    tunable = None
    if "finetune" in names:  # its own encoder: Lite0 itself where the config names its pooled-stages variant
        tuned_name = candidate_config(cfg, "finetune").encoder
        tunable = clf._encoder if given else clf._create(tuned_name, "config.encoder", cfg.encoder_kwargs)
        if not can_split(getattr(tunable, "model", None)):  # e.g. an encoder without a torch CNN inside
            names = tuple(n for n in names if n != "finetune")
    if "multisize" in names and not _takes_size(clf):  # e.g. an encoder built in code, not by registry name
        names = tuple(n for n in names if n != "multisize")
    if "multisize" in names:  # fitted first: the head may be its first size's head (no second fit)
        names = tuple(sorted(names, key=lambda n: (n != BASELINE, n != "multisize")))
    t0 = time.perf_counter()
    fitted: dict[str, Categorizer] = {}
    scores: dict[str, dict[str, float]] = {}
    say = status if clf.progress else (lambda message: None)
    for i, name in enumerate(names, 1):
        say(f"method auto: candidate {i}/{len(names)} '{name}'")
        sub_cfg = candidate_config(cfg, name)
        enc = clf._encoder
        if sub_cfg.method == "finetune":  # it changes the backbone's weights in place: its own copy
            enc = _own_weights(enc) if given else tunable
        sub = Categorizer(sub_cfg, encoder=enc, cache_dir=clf.cache_dir, progress=clf.progress)
        if name == "ensemble" and {"probe", "head"} <= fitted.keys():  # the same members: no second fit
            ensemble_of(sub, [fitted["probe"], fitted["head"]])
        elif name == "head" and "multisize" in fitted and _same_head(sub, fitted["multisize"]):
            first_size_of(sub, fitted["multisize"])
        else:
            sub.fit(catalog, log_path=None if log_path is None else f"{log_path}.{name}")
        fitted[name] = sub
        best = next((r for r in reversed(sub.history_) if r.get("best")), None)
        if best is None or "val_accuracy" not in best:  # a split too small to hold any item of a known class
            raise InvalidInputError(f"method 'auto': candidate '{name}' has no validation score; "
                                    f"raise val_size (now {cfg.val_size}) or label more items")
        scores[name] = {"accuracy": float(best["val_accuracy"]), "macro_f1": float(best["val_macro_f1"]),
                        "fit_seconds": round(sub.fit_seconds_, 1)}
        say(f"method auto: '{name}' validation accuracy {scores[name]['accuracy']:.3f}, macro F1 "
            f"{scores[name]['macro_f1']:.3f}, fitted in {sub.fit_seconds_:.0f} s")
    chosen = choose(scores)
    win, refitted = fitted[chosen], None
    if cfg.refit and win.config.method in REFITTABLE:
        say(f"method auto: '{chosen}' chosen; refitting it on train + validation")
        win = refit(win, catalog, log_path=None if log_path is None else f"{log_path}.{chosen}.refit")
        refitted = {"items": win.n_train_, "fit_seconds": round(win.fit_seconds_, 1), "settings": win.refit_}
    for attr in ("config", "head_", "classes_", "merged_", "hierarchy_", "fit_ids_", "history_", "n_train_",
                 "n_val_", "_encoder"):
        setattr(clf, attr, getattr(win, attr))
    clf.selection_ = {"rule": f"best validation accuracy among candidates >= '{BASELINE}' on accuracy and macro F1",
                      "baseline": BASELINE, "chosen": chosen, "validation": scores, "refit": refitted}
    clf.candidates_ = fitted
    clf.fit_seconds_ = time.perf_counter() - t0
    return clf


# what a categoriser built from others' fits (ensemble, refit, shared head) takes from them: classes and split
SPLIT_STATE = ("classes_", "merged_", "hierarchy_", "fit_ids_", "n_train_", "n_val_")
REFITTABLE = ("probe", "head", "ensemble")  # methods; the fine-tune is not: one fit costs tens of CPU minutes


def refit(clf: Categorizer, catalog: Catalog, log_path: Any = None) -> Categorizer:
    """A fitted probe / head / ensemble fitted again on all of `catalog` (nothing held out), with the
    settings its validation chose: the MLP head for its best epoch count (one-cycle over that many
    epochs); an ensemble refits its members and keeps the temperatures calibrated on validation.
    The refitted categoriser keeps the validation history of `clf` (what it was chosen on)."""
    from fashionlens.categorize.categorizer import Categorizer
    from fashionlens.categorize.heads import EnsembleHead

    t0 = time.perf_counter()
    cfg = clf.config
    if cfg.method == "ensemble":
        members = [refit(m, catalog, None if log_path is None else f"{log_path}.{m.config.method}")
                   for m in clf.members_]
        again = Categorizer(replace(cfg, val_size=0.0), encoder=clf._encoder, cache_dir=clf.cache_dir,
                            progress=clf.progress)
        again.head_ = EnsembleHead([m.head_ for m in members], clf.head_.temperatures)
        for attr in SPLIT_STATE:
            setattr(again, attr, getattr(members[0], attr))
        again.members_, again.refit_ = members, [m.refit_ for m in members]
    else:
        over: dict[str, Any] = {"val_size": 0.0}
        if cfg.method == "head":  # a fixed schedule: the epoch count early stopping picked on validation
            epochs = ([int(m.best_epoch_) for m in clf.head_.members] if cfg.sizes  # one head per size
                      else int(clf.head_.best_epoch_))
            over["head"] = {**cfg.head, "epochs": epochs, "validation_fraction": 0.0}
        again = Categorizer(replace(cfg, **over), encoder=clf._encoder, cache_dir=clf.cache_dir,
                            progress=clf.progress).fit(catalog, log_path=log_path)
        again.refit_ = {"method": cfg.method, **({"epochs": over["head"]["epochs"]} if "head" in over else {})}
    again.history_ = clf.history_
    again.fit_seconds_ = time.perf_counter() - t0
    return again


def fit_ensemble(clf: Categorizer, catalog: Catalog, log_path: Any = None) -> Categorizer:
    """Method "ensemble": fit auto's probe and head candidates on the same split, then calibrate."""
    from fashionlens.categorize.categorizer import Categorizer

    if clf.config.val_size <= 0:
        raise InvalidInputError("method 'ensemble' calibrates its members on a validation split: set val_size > 0")
    t0 = time.perf_counter()
    members = [Categorizer(candidate_config(clf.config, n), encoder=clf.encoder, cache_dir=clf.cache_dir,
                           progress=clf.progress).fit(catalog, None if log_path is None else f"{log_path}.{n}")
               for n in ("probe", "head")]
    ensemble_of(clf, members)
    clf.fit_seconds_ = time.perf_counter() - t0
    return clf


def ensemble_of(clf: Categorizer, members: list[Categorizer]) -> Categorizer:
    """`clf` becomes the calibrated mean of fitted `members` (same split and classes): temperatures
    fitted on their validation probabilities, its one validation row scored on the same items."""
    from fashionlens.categorize.heads import EnsembleHead
    from fashionlens.evaluation.classification import classification_metrics

    first = members[0]
    y_val = first.val_[0]
    clf.head_ = EnsembleHead.calibrated([m.head_ for m in members], [m.val_[1] for m in members], y_val)
    clf.members_ = members  # what a refit fits again
    for attr in SPLIT_STATE:
        setattr(clf, attr, getattr(first, attr))
    proba = clf.head_.combine([m.val_[1] for m in members])
    m = classification_metrics(y_val, proba.argmax(1), list(clf.classes_), proba)
    clf.val_ = (y_val, proba)
    clf.history_ = [{"epoch": 1, "val_accuracy": m["accuracy"], "val_macro_f1": m["macro_f1"],
                     "val_top5_accuracy": m["top5_accuracy"], "temperatures": clf.head_.temperatures, "best": True}]
    clf.fit_seconds_ = sum(mb.fit_seconds_ for mb in members)
    return clf


def _same_head(head: Categorizer, multi: Categorizer) -> bool:
    """Whether the head candidate would repeat the multi-size candidate's first-size fit exactly."""
    return (head.config.head == multi.config.head and hasattr(multi, "val_parts_")
            and head.encoder.fingerprint() == multi.sized_encoders()[0].fingerprint())


def first_size_of(clf: Categorizer, multi: Categorizer) -> Categorizer:
    """`clf` becomes the first-size MLP head of a fitted multi-size candidate (the same fit), scored on
    the same validation items."""
    clf.head_ = multi.head_.members[0]
    for attr in SPLIT_STATE:
        setattr(clf, attr, getattr(multi, attr))
    clf.val_ = (multi.val_[0], multi.val_parts_[0])
    clf.history_ = clf.head_.history_
    clf.fit_seconds_ = 0.0  # counted in the multi-size candidate's
    return clf


def _takes_size(clf: Categorizer) -> bool:
    """Whether the config's encoder can be rebuilt at other input sizes: a registry factory taking
    `size`, and no other encoder given in its place."""
    from fashionlens.encoders.registry import accepts

    given = clf._encoder is None or getattr(clf._encoder, "name", None) == clf.config.encoder
    return given and accepts(clf.config.encoder, "size")


def _own_weights(encoder: Any) -> Any:
    """A shallow copy of the encoder with its own copy of the network (runtime sessions stay shared:
    they are keyed by the weights they were exported from)."""
    own = copy.copy(encoder)
    if getattr(encoder, "model", None) is not None:
        own.model = copy.deepcopy(encoder.model)
    return own
