"""Categorise products from their photos: zero-shot prompts, a logistic probe, an MLP head on frozen
features, partial fine-tuning of the backbone, or caption -> category; for any catalog label column
and any registry encoder.

    clf = Categorizer(CategorizeConfig(label="articleType", method="head")).fit(train_catalog)
    clf.evaluate(test_catalog)                # accuracy, top-5, macro/weighted F1, per class, ...
    clf.save("runs/cat"); Categorizer.load("runs/cat").predict_top(["shirt.jpg"], k=5)
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.catalog.core import Catalog
from fashionlens.categorize.data import (
    KAGGLE_LEVELS,
    OTHER,
    AugmentedEncoder,
    JsonLines,
    LabelHierarchy,
    cap_per_class,
    class_weights,
    clean_labels,
    merge_rare,
    oversample,
    stratified_split,
)
from fashionlens.categorize.heads import (
    DEFAULT_TEMPLATES,
    HEADS,
    Captioner,
    ZeroShotHead,
    build_captioner,
)
from fashionlens.categorize.select import DEFAULT_CANDIDATES, check_candidates
from fashionlens.config import Config
from fashionlens.embed.runner import decoded
from fashionlens.encoders.base import Encoder
from fashionlens.errors import InvalidInputError
from fashionlens.evaluation.classification import classification_metrics, metric_cis
from fashionlens.manifest import check_overwrite, read_manifest, write_manifest
from fashionlens.utils import (
    atomic_dir,
    atomic_write,
    read_json,
    write_json,
)

METHODS = ("auto", "zeroshot", "probe", "head", "ensemble", "finetune", "caption")
BALANCE = ("none", "weights", "oversample")
DEFAULT_ENCODER = "efficientnet-lite0.stages"
# a folder holding any of these is a categorizer (or a run of one in progress) that a retrain may replace
CATEGORIZER_MARKS = ("categorizer.json", "head.safetensors", "train_log.jsonl", "checkpoint", "report")


@dataclass
class CategorizeConfig(Config):
    """Everything that defines a categoriser; saved with it as JSON."""

    label: str = "articleType"
    # Lite0's final map and blocks 3-6 pooled (encoders/stages.py): +0.04 articleType accuracy for the
    # probe on held-out items (docs/bench/categorize.md); method=caption: the captioner (name or HF folder)
    encoder: str = DEFAULT_ENCODER
    # keyword arguments for the encoder's factory (plain JSON, e.g. {"size": 224}), saved with the model
    # so a loaded one rebuilds the same encoder; {}: the encoder's own defaults (Lite0: 160 px)
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)
    # method head: features = the encoder at each of these input sizes side by side (each size embedded
    # and cached on its own), one MLP head per size, probabilities averaged; (): the encoder as it is
    sizes: tuple[int, ...] = ()
    method: str = "auto"  # auto: the candidate held-out validation favours over the probe (select.py)
    candidates: tuple[str, ...] = DEFAULT_CANDIDATES  # method auto: what it chooses from (the probe always)
    # method auto: fit the chosen candidate again on train + validation (select.py::refit); the
    # validation split still chooses it
    refit: bool = True
    text_encoder: str = "minilm-l6"  # caption method: embeds captions for the text classifier
    val_size: float = 0.1  # share of the fit catalog held out for early stopping / model choice
    seed: int = 0
    min_class_size: int = 0  # classes with fewer training items are merged into "other"
    cap_per_class: int | None = None
    balance: str = "weights"  # none | weights | oversample
    class_weight_power: float = 0.5  # 1 = fully balanced, 0.5 = square-root (keeps accuracy)
    oversample_to: int | None = None  # default: median class size
    augment: str = "flip"  # trained heads: none | flip (add mirrored copies) | random (v2 crop/flip/jitter)
    augment_copies: int = 1  # random augmentation: copies of the training set
    tta: bool = True  # average predictions over the photo and its mirror image
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    # zero-shot: also prompt each class by its finer labels in the catalog's hierarchy (masterCategory
    # "Footwear" by "sandals", "casual shoes", ...): abstract names alone match photos poorly
    prompt_children: bool = True
    class_prompts: dict[str, list[str]] = field(default_factory=dict)  # zero-shot: class -> its own texts
    probe_C: float = 0.5
    head: dict[str, Any] = field(default_factory=dict)  # MLPHead keyword arguments
    tune: dict[str, Any] = field(default_factory=dict)  # method=finetune: TuneConfig fields

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InvalidInputError(f"unknown method '{self.method}'; choose one of {', '.join(METHODS)}")
        if self.balance not in BALANCE:
            raise InvalidInputError(f"unknown balance '{self.balance}'; choose one of {', '.join(BALANCE)}")
        if self.augment not in ("none", "flip", "random"):
            raise InvalidInputError(f"unknown augment '{self.augment}'; choose none, flip or random")
        if not isinstance(self.encoder_kwargs, dict):
            raise InvalidInputError(f"encoder_kwargs must be a mapping of keyword arguments, not {self.encoder_kwargs!r}")
        self.templates = tuple(self.templates)
        self.candidates = tuple(self.candidates)
        self.sizes = tuple(self.sizes)
        if self.sizes and (self.method != "head" or self.tta or self.augment != "none"
                           or not all(isinstance(z, int) and z > 0 for z in self.sizes)):
            raise InvalidInputError(f"sizes {list(self.sizes)}: positive input sizes for method head, without "
                                    "flip/TTA views (tta=False, augment='none')")
        check_candidates(self.candidates)
        if self.method == "finetune":
            from fashionlens.categorize.tune import TuneConfig

            if self.encoder == DEFAULT_ENCODER:  # pooled maps of a frozen network: fine-tuning trains Lite0 itself
                self.encoder = "efficientnet-lite0"

            TuneConfig.from_dict(self.tune, "fine-tune options (tune)")  # unknown options fail before any work


class Categorizer:
    """Predicts one catalog label column from product photos (scikit-learn style: fit returns self)."""

    def __init__(self, config: CategorizeConfig | None = None, *, encoder: Encoder | None = None,
                 captioner: Captioner | None = None, text_encoder: Encoder | None = None,
                 cache_dir: str | Path | None = None, progress: bool = False):
        self.config = config or CategorizeConfig()
        self._encoder, self._captioner, self._text_encoder = encoder, captioner, text_encoder
        self.cache_dir, self.progress = cache_dir, progress
        self._source: Path | None = None  # the categorizer.json a loaded model's names came from

    # ---- components, built lazily by name so a loaded model rebuilds them ------------------------
    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = self._create(self.config.encoder, "config.encoder", self.config.encoder_kwargs)
        return self._encoder

    @property
    def captioner(self) -> Captioner:
        if self._captioner is None:
            self._captioner = build_captioner(self.config.encoder, self._source)
        return self._captioner

    @property
    def text_encoder(self) -> Encoder:
        if self._text_encoder is None:
            self._text_encoder = self._create(self.config.text_encoder, "config.text_encoder")
        return self._text_encoder

    def _create(self, name: str, field: str, kwargs: dict[str, Any] | None = None) -> Encoder:
        """A name the user gave (any encoder) or one read from a saved folder (data only: no code)."""
        from fashionlens.encoders.registry import create, create_from_config

        if self._source is None:
            return create(name, **(kwargs or {}))
        return create_from_config(name, kwargs, source=self._source, field=field, folder=".")  # resolved by load()

    # ---- features -----------------------------------------------------------------------------
    def _embed(self, enc: Encoder, images: Catalog | list[Any]) -> np.ndarray:
        from fashionlens.embed import embed_images

        if isinstance(images, Catalog):
            return embed_images(enc, images, cache_dir=self.cache_dir, progress=self.progress)
        if all(isinstance(im, (str, Path)) for im in images):
            return embed_images(enc, [str(p) for p in images], cache_dir=self.cache_dir, progress=self.progress)
        return enc.encode_images(images)

    def sized_encoders(self) -> list[Encoder]:
        """`config.sizes`: the encoder rebuilt at each input size (its name + encoder_kwargs + size)."""
        if not hasattr(self, "_sized"):
            cfg = self.config
            self._sized = [self._create(cfg.encoder, "config.encoder", {**cfg.encoder_kwargs, "size": z})
                           for z in cfg.sizes]
        return self._sized

    def _views(self, images: Catalog | list[Any], train: bool = False) -> list[np.ndarray]:
        """Feature views of the images: the photo, its mirror (TTA / flip augmentation), random copies."""
        cfg = self.config
        if cfg.method == "caption":
            return [self._caption_features(images)]
        if cfg.sizes:  # one view: every size's features side by side
            return [np.concatenate([self._embed(e, images) for e in self.sized_encoders()], axis=1)]
        views = [self._embed(self.encoder, images)]
        trained = cfg.method == "head"
        if (cfg.tta and not train) or (train and trained and cfg.augment == "flip"):
            views.append(self._embed(AugmentedEncoder(self.encoder, "hflip"), images))
        if train and trained and cfg.augment == "random":
            views += [self._embed(AugmentedEncoder(self.encoder, "train", c), images)
                      for c in range(cfg.augment_copies)]
        return views

    def _caption_features(self, images: Catalog | list[Any]) -> np.ndarray:
        from fashionlens.embed import embed_texts
        from fashionlens.progress import track

        items = images.images if isinstance(images, Catalog) else list(images)
        bs = 32
        chunks = [items[i : i + bs] for i in range(0, len(items), bs)]
        it = track(chunks, "captioning") if self.progress else chunks
        captions = [c for chunk in it for c in self.captioner.caption(_open_all(chunk))]
        self.last_captions_ = captions
        return embed_texts(self.text_encoder, captions, cache_dir=None, progress=False)

    # ---- fit ----------------------------------------------------------------------------------
    def fit(self, catalog: Catalog, log_path: str | Path | None = None,
            checkpoint: str | Path | None = None) -> Categorizer:
        """Fit on a catalog: seeded stratified train/val split, rare-class merge, balancing, head.
        `checkpoint` (method finetune): a folder where each epoch is saved and a rerun resumes."""
        cfg = self.config
        if cfg.method in ("auto", "ensemble"):  # several fitted categorisers: select.py
            from fashionlens.categorize.select import fit_auto, fit_ensemble

            return (fit_auto if cfg.method == "auto" else fit_ensemble)(self, catalog, log_path)
        t0 = time.perf_counter()
        y_all = clean_labels(catalog.column(cfg.label))
        has = np.flatnonzero(y_all != "")
        if len(has) < 2:
            raise InvalidInputError(f"column '{cfg.label}' has fewer than 2 labelled items")
        catalog, y_all = catalog.subset(has), y_all[has]
        self.hierarchy_ = LabelHierarchy.from_frame(catalog.df, KAGGLE_LEVELS)
        tr, va = stratified_split(y_all, cfg.val_size, cfg.seed) if cfg.val_size > 0 else (np.arange(len(y_all)), np.zeros(0, int))
        y_tr, self.merged_ = merge_rare(y_all[tr], cfg.min_class_size)
        self.classes_ = np.asarray(sorted(set(y_tr.tolist())), dtype=object)
        if len(self.classes_) < 2:
            raise InvalidInputError(f"column '{cfg.label}' needs at least 2 classes to train on, found {list(self.classes_)}")
        if cfg.cap_per_class:
            keep = cap_per_class(y_tr, cfg.cap_per_class, cfg.seed)
            tr, y_tr = tr[keep], y_tr[keep]
        self.fit_ids_ = catalog.subset(np.concatenate([tr, va])).ids
        index = {c: i for i, c in enumerate(self.classes_)}
        yi_tr = np.asarray([index[c] for c in y_tr], np.int64)
        y_va = np.asarray([OTHER if c in self.merged_ else c for c in y_all[va]], dtype=object)
        known = np.asarray([c in index for c in y_va], bool)
        va = va[known]
        yi_va = np.asarray([index[c] for c in y_va[known]], np.int64)
        weights = (class_weights(yi_tr, len(self.classes_), cfg.class_weight_power)
                   if cfg.balance == "weights" else None)
        self.history_: list[dict[str, Any]] = []
        log = JsonLines(log_path)
        va_views: list[np.ndarray] = []
        if cfg.method == "zeroshot":
            self.head_ = ZeroShotHead.build(self.encoder, list(self.classes_), cfg.templates, names=self._prompt_names())
        elif cfg.method == "finetune":
            from fashionlens.categorize.tune import TuneConfig, finetune
            from fashionlens.categorize.tune_cached import finetune_cached

            pos = oversample(yi_tr, cfg.oversample_to, cfg.seed) if cfg.balance == "oversample" else np.arange(len(tr))
            tcfg = TuneConfig.from_dict(cfg.tune, "fine-tune options (tune)")
            args = (self.encoder, catalog.subset(tr[pos]), yi_tr[pos], catalog.subset(va), yi_va, list(self.classes_),
                    weights, tcfg, log, self.progress)
            self._encoder, self.head_, self.history_ = (finetune_cached(*args) if tcfg.cached
                                                        else finetune(*args, checkpoint))
        else:
            from fashionlens.categorize.frozen import fit_frozen

            va_views, yi_va = fit_frozen(self, catalog.subset(tr), yi_tr, catalog.subset(va), yi_va, weights, log)
        if len(va) and (cfg.method not in ("head", "finetune") or cfg.sizes):  # one line for heads without epochs
            proba = self._combine(va_views or self._views(catalog.subset(va)))
            m = classification_metrics(yi_va, proba.argmax(1), list(self.classes_), proba)
            self.val_ = (yi_va, proba)
            row = {"epoch": 1, "val_accuracy": m["accuracy"], "val_macro_f1": m["macro_f1"],
                   "val_top5_accuracy": m["top5_accuracy"], "best": True}
            self.history_.append(row)
            log(row)
        self.fit_seconds_ = time.perf_counter() - t0
        self.n_train_, self.n_val_ = len(tr), len(va)
        return self

    def _prompt_names(self) -> dict[str, list[str]]:
        """Texts per class for zero-shot: the name, its finer labels (`prompt_children`), the user's own."""
        cfg, h = self.config, self.hierarchy_
        names = {str(c): [str(c)] for c in self.classes_}
        if OTHER in names and self.merged_:
            names[OTHER] = list(self.merged_)  # "other" means nothing to a text tower; what it holds does
        if cfg.prompt_children and cfg.label in h.levels:
            for level in h.levels[h.levels.index(cfg.label) + 1:]:
                for child in h.parents.get(level, {}):
                    owner = h.ancestor(child, level, cfg.label)
                    owner = OTHER if owner in self.merged_ else owner
                    if owner in names and child not in names[owner]:
                        names[owner].append(child)
        unknown = sorted(set(cfg.class_prompts) - set(names))
        if unknown:
            raise InvalidInputError(f"class_prompts names {unknown}, not classes of '{cfg.label}': {sorted(names)}")
        return names | {c: list(t) for c, t in cfg.class_prompts.items()}

    # ---- predict ------------------------------------------------------------------------------
    def _combine(self, views: list[np.ndarray]) -> np.ndarray:
        return self._padded(np.mean([self.head_.predict_proba(v) for v in views], axis=0).astype(np.float32),
                            self.head_)

    def _padded(self, proba: np.ndarray, head: Any) -> np.ndarray:
        cols = getattr(head, "classes_", None)  # a trained head's columns: the classes it saw
        if cols is None or len(cols) == len(self.classes_):
            return proba
        out = np.zeros((len(proba), len(self.classes_)), np.float32)  # a class it never saw: probability 0
        out[:, np.asarray(cols, np.int64)] = proba
        return out

    def predict_proba(self, images: Catalog | list[Any]) -> np.ndarray:
        """(n, n_classes) probabilities for photos (paths, PIL images or a Catalog); columns = classes_."""
        self._check_fitted()
        if not isinstance(images, Catalog):
            images = list(images)
            _open_all(images)  # a file that is not an image fails here, by name
            if not images:
                return np.zeros((0, len(self.classes_)), np.float32)
        return self._combine(self._views(images))

    def predict(self, images: Catalog | list[Any]) -> list[str]:
        return [str(self.classes_[i]) for i in self.predict_proba(images).argmax(1)]

    def predict_top(self, images: Catalog | list[Any], k: int = 5) -> list[list[tuple[str, float]]]:
        """Per image, the k most likely labels with their probabilities, best first."""
        return self._top(self.predict_proba(images), list(self.classes_), k)

    def predict_levels(self, images: Catalog | list[Any], k: int = 1) -> list[dict[str, list[tuple[str, float]]]]:
        """Per image, the top-k labels at this label's level and at each parent level (probabilities
        summed over children, using the catalog's own hierarchy)."""
        proba = self.predict_proba(images)
        out: dict[str, list[list[tuple[str, float]]]] = {self.config.label: self._top(proba, list(self.classes_), k)}
        for level in self.hierarchy_.above(self.config.label):
            names, P = self.parent_proba(proba, level)
            out[level] = self._top(P, names, k)
        return [{lv: out[lv][i] for lv in out} for i in range(len(proba))]

    def parent_proba(self, proba: np.ndarray, level: str) -> tuple[list[str], np.ndarray]:
        """Probabilities aggregated to a coarser hierarchy level: (parent names, (n, n_parents))."""
        parent = [self.hierarchy_.ancestor(str(c), self.config.label, level) for c in self.classes_]
        names = sorted(set(parent))
        M = np.zeros((len(self.classes_), len(names)), np.float32)
        M[np.arange(len(parent)), [names.index(p) for p in parent]] = 1
        return names, proba @ M

    @staticmethod
    def _top(proba: np.ndarray, names: list[str], k: int) -> list[list[tuple[str, float]]]:
        order = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        return [[(str(names[j]), float(p[j])) for j in row] for p, row in zip(proba, order)]

    # ---- evaluate -----------------------------------------------------------------------------
    def evaluate(self, catalog: Catalog, report_dir: str | Path | None = None) -> dict[str, Any]:
        """Scores on a labelled catalog. Labels the model never saw are counted in `labels_unseen` and
        excluded; rare labels merged at training time count as `other`. With `report_dir`: confusion
        matrix (PNG + JSON), per-class CSV and the catalog-QA list and grid are written there."""
        self._check_fitted()
        label = self.config.label
        y = clean_labels(catalog.column(label))
        y = np.asarray([OTHER if c in self.merged_ else c for c in y], dtype=object)
        index = {c: i for i, c in enumerate(self.classes_)}
        known = np.asarray([c in index for c in y], bool)
        unseen: dict[str, int] = {}
        for c in y[~known]:
            unseen[c or "(missing)"] = unseen.get(c or "(missing)", 0) + 1
        sub = catalog.subset(np.flatnonzero(known))
        yi = np.asarray([index[c] for c in y[known]], np.int64)
        proba = np.zeros((0, len(self.classes_)), np.float32)
        if len(sub):  # items whose photo fails to decode are reported and not scored
            views = self._views(sub)
            ok = decoded(views[0])
            sub, yi, proba = sub.subset(np.flatnonzero(ok)), yi[ok], self._combine([v[ok] for v in views])
        res = classification_metrics(yi, proba.argmax(1), list(self.classes_), proba)
        res["ci95"] = metric_cis(yi, proba.argmax(1), len(self.classes_))  # bootstrap over the scored items
        res["labels_unseen"] = {"n": int((~known).sum()), "labels": dict(sorted(unseen.items()))}
        res["label"], res["method"], res["encoder"] = label, self.config.method, self.config.encoder
        res["levels"] = {}
        for level in self.hierarchy_.above(label):
            names, P = self.parent_proba(proba, level)
            truth = [self.hierarchy_.ancestor(str(self.classes_[i]), label, level) for i in yi]
            pi = {n: j for j, n in enumerate(names)}
            m = classification_metrics([pi[t] for t in truth], P.argmax(1), names, P)
            res["levels"][level] = {k: m[k] for k in ("accuracy", "macro_f1", "weighted_f1", "n")}
        if report_dir is not None:
            from fashionlens.categorize.report import write_report

            write_report(report_dir, res, yi, proba, list(self.classes_), sub, self.hierarchy_, label)
        return res

    # ---- persistence --------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """config JSON + head weights (safetensors) + fit ids + per-epoch log in a folder, written aside
        and swapped in whole (`atomic_dir`): a crash leaves the old model or the new one, never a mix."""
        self._check_fitted()
        check_overwrite(path, "categorizer", CATEGORIZER_MARKS)
        with atomic_dir(path, marks=CATEGORIZER_MARKS) as tmp:
            self._write(tmp)
        return Path(path)

    def _write(self, root: Path) -> None:
        from safetensors.numpy import save_file

        with atomic_write(root / "head.safetensors") as tmp:
            save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in self.head_.state().items()}, str(tmp))
        if self.config.method == "finetune":  # the tuned backbone: a run encoder of its own (`run:DIR/backbone`)
            self.encoder.save(root / "backbone")
        write_json(root / "fit_ids.json", self.fit_ids_)
        with atomic_write(root / "train_log.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in self.history_))
        config = asdict(self.config)
        for key in ("encoder", "text_encoder"):  # paths relative to this folder: it loads from any cwd
            config[key] = _record(config[key], root, self.config.method)
        write_manifest(root, "categorizer", config, **{
            "encoder": config["encoder"],
            "encoder_fingerprint": None if self.config.method == "caption" else
            " + ".join(e.fingerprint() for e in (self.sized_encoders() if self.config.sizes else [self.encoder])),
            "classes": [str(c) for c in self.classes_],
            "merged_into_other": self.merged_,
            "hierarchy": self.hierarchy_.to_dict(),
            "head": {"kind": self.head_.kind, "params": self.head_.params()},
            "n_train": self.n_train_, "n_val": self.n_val_, "fit_seconds": round(self.fit_seconds_, 2),
            "selection": getattr(self, "selection_", None),  # method auto: the candidates' validation scores
        })

    @staticmethod
    def check(path: str | Path) -> dict[str, Any]:
        """The folder's run manifest (categorizer.json) once the folder matches its file listing (an
        interrupted save is finished first); FolderError naming a damaged file or saying what else
        the folder is, FileNotFoundError for no model."""
        return read_manifest(path, "categorizer")

    @classmethod
    def load(cls, path: str | Path, *, encoder: Encoder | None = None, captioner: Captioner | None = None,
             text_encoder: Encoder | None = None, cache_dir: str | Path | None = None) -> Categorizer:
        """Rebuild a saved categoriser; the encoder is re-created from its registry name (a fine-tuned
        one from DIR/backbone) unless given."""
        from safetensors.numpy import load_file

        root = Path(path)
        meta = cls.check(root)
        meta_path = root / "categorizer.json"
        if encoder is None and meta["config"].get("method") == "finetune":
            from fashionlens.encoders.registry import load_run_encoder

            encoder = load_run_encoder(root / "backbone")
        # keys a newer version dropped are ignored in folders saved before it (they carry no setting now)
        known = {f.name for f in fields(CategorizeConfig)}
        config = CategorizeConfig.from_dict({k: v for k, v in meta["config"].items() if k in known})
        for key in ("encoder", "text_encoder"):
            if not isinstance(getattr(config, key), str):
                raise ValueError(f"{meta_path}: field 'config.{key}' must be an encoder name")
            setattr(config, key, _resolve(getattr(config, key), root, config.method))
        self = cls(config, encoder=encoder, captioner=captioner, text_encoder=text_encoder, cache_dir=cache_dir)
        self._source = meta_path
        self.classes_ = np.asarray(meta["classes"], dtype=object)
        self.merged_ = dict(meta.get("merged_into_other", {}))
        self.hierarchy_ = LabelHierarchy.from_dict(meta.get("hierarchy", {}))
        self.head_ = HEADS[meta["head"]["kind"]].from_state(load_file(str(root / "head.safetensors")),
                                                            meta["head"]["params"])
        self.fit_ids_ = read_json(root / "fit_ids.json") if (root / "fit_ids.json").is_file() else []
        log = root / "train_log.jsonl"
        self.history_ = [json.loads(x) for x in log.read_text().splitlines() if x] if log.is_file() else []
        self.n_train_, self.n_val_ = meta.get("n_train", 0), meta.get("n_val", 0)
        self.fit_seconds_ = meta.get("fit_seconds", 0.0)
        if meta.get("selection"):
            self.selection_ = meta["selection"]
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise RuntimeError("this Categorizer is not fitted yet: call fit(catalog) or Categorizer.load(dir)")


def _record(name: str, root: Path, method: str) -> str:
    """`name` as the folder `root` records it: run dirs (and a caption model folder) relative to it."""
    from fashionlens.encoders.registry import record_path, record_ref

    if method == "caption" and not name.startswith("run:") and Path(name).is_dir():
        return record_path(name, root)
    return record_ref(name, root)


def _resolve(name: str, root: Path, method: str) -> str:
    """The inverse of `_record`: a name recorded in `root`, usable from the working directory."""
    from fashionlens.encoders.registry import resolve_ref, resolve_run_dir

    if method == "caption" and not name.startswith("run:"):
        p = resolve_run_dir(name, root)
        return str(p) if p.is_dir() else name  # a folder, else a registry name
    return resolve_ref(name, root)
def _open_all(images: list[Any]) -> list[Any]:
    """Open every path (PIL images pass through); a non-image raises ImageError naming the file."""
    from fashionlens.catalog.images import open_image

    return [im if hasattr(im, "convert") else open_image(im) for im in images]
