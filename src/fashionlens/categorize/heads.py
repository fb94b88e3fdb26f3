"""Classifier heads on embeddings (zero-shot prompts, logistic probe, MLP, cosine) and captioners.

Every head maps (n, d) float32 features to (n, k) probabilities and round-trips through a dict of
numpy arrays (`state()`, saved as safetensors — no pickle anywhere) plus JSON `params()`, read back by
`from_state`. The trained ones (probe, MLP) are scikit-learn estimators: parameters in `__init__`,
`fit(X, y, sample_weight)` returning self, `classes_`, `predict` / `predict_proba`, `get_params`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from fashionlens.encoders.base import Encoder, l2_normalize
from fashionlens.errors import InvalidInputError
from fashionlens.evaluation.classification import (
    classification_metrics,
    confusion_matrix,
    top_confusions,
)

DEFAULT_TEMPLATES = (
    "a photo of {}.",
    "a product photo of {}.",
    "a catalog photo of a {}, a fashion product.",
    "{}",
)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _standardise(X: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(weighted) per-feature mean and scale; a weight-2 row counts as the row twice."""
    mean = np.average(X, axis=0, weights=w)
    scale = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=w))
    return mean.astype(np.float32), np.where(scale > 1e-6, scale, 1.0).astype(np.float32)


class ZeroShotHead:
    """Cosine similarity to prompt-ensembled class texts (mean of unit text vectors per name).

    A class may be described by several names (e.g. "Footwear": its article types); its score is the
    best-matching name's, because a parent class is a union of looks, not their average."""

    kind = "zeroshot"

    def __init__(self, class_embeddings: np.ndarray, scale: float = 100.0, owner: np.ndarray | None = None,
                 names: Sequence[str] | None = None):
        self.class_embeddings_ = l2_normalize(class_embeddings)  # one row per name
        self.owner_ = np.arange(len(class_embeddings)) if owner is None else np.asarray(owner, np.int64)
        self.names_ = list(names or [])  # the texts behind the rows, for people reading the saved model
        self.scale = scale

    @classmethod
    def build(cls, encoder: Encoder, labels: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES,
              scale: float = 100.0, names: dict[str, Sequence[str]] | None = None) -> ZeroShotHead:
        """`names`: label -> the texts that describe it (default: the label itself)."""
        if not {"image", "text"} <= set(encoder.modalities):
            raise InvalidInputError(
                f"zero-shot needs an encoder with image and text towers in one space; "
                f"'{encoder.name}' encodes only: {', '.join(encoder.modalities)}"
            )
        texts, owner = [], []
        for i, lb in enumerate(labels):
            for n in (names or {}).get(str(lb)) or [str(lb)]:
                texts.append(str(n).replace("_", " ").lower())
                owner.append(i)
        prompts = [t.format(n) for n in texts for t in templates]
        T = encoder.encode_texts(prompts).reshape(len(texts), len(templates), -1)
        return cls(T.mean(axis=1), scale, np.asarray(owner), texts)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        sims = l2_normalize(X) @ self.class_embeddings_.T
        k = int(self.owner_.max()) + 1
        best = np.full((len(sims), k), -np.inf, np.float32)
        for j in range(k):  # k is small; the max over each class's names
            best[:, j] = sims[:, self.owner_ == j].max(axis=1)
        return softmax(self.scale * best)

    def params(self) -> dict[str, Any]:
        return {"names": self.names_}

    def state(self) -> dict[str, np.ndarray]:
        return {"class_embeddings": self.class_embeddings_, "owner": self.owner_,
                "scale": np.asarray([self.scale], np.float32)}

    @classmethod
    def from_state(cls, s: dict[str, np.ndarray], params: dict[str, Any]) -> ZeroShotHead:
        # older saves: one name per class, no owner
        return cls(s["class_embeddings"], float(s["scale"][0]), s.get("owner"), params.get("names"))


class _Head(ClassifierMixin, BaseEstimator):
    """A scikit-learn classifier on (n, d) features that also round-trips through `state()` arrays
    (safetensors) and JSON `params()` (its `get_params`), read back by `from_state`."""

    kind = ""

    def predict(self, X: np.ndarray) -> np.ndarray:
        proba = self.predict_proba(X)  # checks fitted first
        return self.classes_[proba.argmax(1)]

    def params(self) -> dict[str, Any]:
        return self.get_params()

    def _setup(self, X: Any, y: Any, sample_weight: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validated float32 X, class indices of y (sets `classes_`), sample weights (default 1)."""
        from sklearn.utils.multiclass import check_classification_targets
        from sklearn.utils.validation import _check_sample_weight, validate_data

        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        self.classes_, yi = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes to learn from, got 1 class "
                             f"({self.classes_[0]!r})")
        sw = _check_sample_weight(sample_weight, X, dtype=np.float32)
        return X, yi.astype(np.int64), sw.astype(np.float32)

    def _features(self, X: Any) -> np.ndarray:
        from sklearn.utils.validation import check_is_fitted, validate_data

        check_is_fitted(self, "classes_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return ((X - self.mean_) / self.scale_).astype(np.float32)

    def _restore_classes(self, s: dict[str, np.ndarray], k: int, d: int) -> None:
        # saved before heads were estimators: columns were the categorizer's class indices 0..k-1
        self.classes_ = np.asarray(s["classes"], np.int64) if "classes" in s else np.arange(k)
        self.n_features_in_ = d


class ProbeHead(_Head):
    """Multinomial logistic regression on standardised features.

    Same objective as scikit-learn's `LogisticRegression(C=C)` (mean cross-entropy + ||W||^2 / (2 C n),
    bias unpenalised), solved full-batch with torch L-BFGS: on 30k x 1280 features and 140 classes
    scikit-learn's lbfgs took tens of minutes on 2 cores, this takes about one.
    """

    kind = "probe"

    def __init__(self, C: float = 1.0, max_iter: int = 200):
        self.C, self.max_iter = C, max_iter

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> ProbeHead:
        import torch

        from fashionlens.train.engine import minimize_full_batch

        X, yi, sw_np = self._setup(X, y, sample_weight)
        self.mean_, self.scale_ = _standardise(X, sw_np)
        x = torch.from_numpy((X - self.mean_) / self.scale_)
        t, sw = torch.from_numpy(yi), torch.from_numpy(sw_np)
        k = len(self.classes_)
        W = torch.zeros(x.shape[1], k, requires_grad=True)
        b = torch.zeros(k, requires_grad=True)
        # scikit-learn's objective (sum_i w_i ce_i + ||W||^2 / 2C) divided by sum_i w_i: integer weights
        # act as repeated rows
        lam = 1.0 / (2 * self.C * float(sw.sum()))
        self.n_iter_ = 0

        def objective() -> torch.Tensor:
            self.n_iter_ += 1
            ce = torch.nn.functional.cross_entropy(x @ W + b, t, reduction="none")
            return (ce * sw).sum() / sw.sum() + lam * (W * W).sum()

        minimize_full_batch([W, b], objective, self.max_iter)
        # n_iter_: objective evaluations (L-BFGS iterations + line-search steps), at most ~1.25 max_iter
        self.coef_ = W.detach().numpy().T.copy()
        self.intercept_ = b.detach().numpy().astype(np.float32)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return softmax(self._features(X) @ self.coef_.T + self.intercept_)

    def state(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef_, "intercept": self.intercept_, "mean": self.mean_, "scale": self.scale_,
                "classes": self.classes_.astype(np.float32)}

    @classmethod
    def from_state(cls, s: dict[str, np.ndarray], params: dict[str, Any]) -> ProbeHead:
        h = cls(**params)
        h.coef_, h.intercept_, h.mean_, h.scale_ = s["coef"], s["intercept"], s["mean"], s["scale"]
        h._restore_classes(s, len(h.coef_), h.coef_.shape[1])
        return h


class MLPHead(_Head):
    """Standardise -> Linear -> GELU -> Dropout -> Linear, trained through the engine with AdamW,
    label smoothing, sample weights, a one-cycle schedule and early stopping on validation macro F1.

    Validation: `eval_set=(views, y)` when given (views: feature arrays of the same items whose
    probabilities are averaged, e.g. photo + mirror), else a stratified `validation_fraction` of the
    training data, as scikit-learn's `MLPClassifier(early_stopping=True)` does; 0 = none (last epoch kept).
    """

    kind = "head"

    def __init__(self, hidden: int = 1024, dropout: float = 0.4, epochs: int = 40, lr: float = 1e-3,
                 weight_decay: float = 1e-3, batch_size: int = 256, patience: int = 6,
                 label_smoothing: float = 0.1, validation_fraction: float = 0.1, seed: int = 0, device: str = "auto"):
        self.hidden, self.dropout, self.epochs, self.lr = hidden, dropout, epochs, lr
        self.weight_decay, self.batch_size, self.patience = weight_decay, batch_size, patience
        self.label_smoothing, self.validation_fraction = label_smoothing, validation_fraction
        self.seed, self.device = seed, device

    def _net(self, d: int, k: int) -> Any:
        from torch import nn

        return nn.Sequential(nn.Linear(d, self.hidden), nn.GELU(), nn.Dropout(self.dropout), nn.Linear(self.hidden, k))

    def fit(self, X: Any, y: Any, sample_weight: Any = None, eval_set: tuple[list[Any], Any] | None = None,
            log: Callable[[dict[str, Any]], None] | None = None, class_names: Sequence[str] | None = None) -> MLPHead:
        """`class_names[label]`: how the per-epoch log names a class (default: the label itself)."""
        import torch

        from fashionlens.train.engine import FitConfig, fit

        X, yi, sw = self._setup(X, y, sample_weight)
        if eval_set is not None:
            views, yv = [np.asarray(v, np.float32) for v in eval_set[0]], np.asarray(eval_set[1])
            known = np.isin(yv, self.classes_)  # a validation class the training data lacks cannot be scored
            val = ([v[known] for v in views], np.searchsorted(self.classes_, yv[known]))
        else:
            X, yi, sw, val = _hold_out(X, yi, sw, self.validation_fraction, self.seed)
        torch.manual_seed(self.seed)
        self.mean_, self.scale_ = _standardise(X)
        self.net_ = self._net(X.shape[1], len(self.classes_))
        names = [str(class_names[c] if class_names is not None else c) for c in self.classes_]
        task = _FeatureBatches(self, torch.from_numpy((X - self.mean_) / self.scale_), yi, sw, val, names)
        has_val = val is not None and len(val[1]) > 0
        cfg = FitConfig(epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay, schedule="onecycle",
                        warmup=0.1, monitor="val_macro_f1" if has_val else None, min_delta=1e-4,
                        patience=self.patience if has_val else None, seed=self.seed, device=self.device,
                        description="training the head")
        res = fit(task, cfg, log=None if log is None else lambda row: log(_epoch_from_1(row)))
        self.history_ = [_epoch_from_1(r) for r in res.history]
        self.best_epoch_ = res.best_epoch + 1
        self.net_.cpu().eval()
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._proba(self._features(X))

    def _proba(self, x_std: np.ndarray) -> np.ndarray:
        import torch

        self.net_.eval()
        dev = next(self.net_.parameters()).device
        x = torch.from_numpy(x_std).to(dev)
        with torch.inference_mode():
            out = [torch.softmax(self.net_(x[i : i + 4096]), dim=1).cpu().numpy() for i in range(0, len(x), 4096)]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)), np.float32)

    def state(self) -> dict[str, np.ndarray]:
        sd = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}
        return {**sd, "mean": self.mean_, "scale": self.scale_, "classes": self.classes_.astype(np.float32)}

    @classmethod
    def from_state(cls, s: dict[str, np.ndarray], params: dict[str, Any]) -> MLPHead:
        import torch

        known = set(cls().get_params())  # saves from before may hold fewer (or renamed) settings
        h = cls(**{k: v for k, v in params.items() if k in known})
        h.mean_, h.scale_ = s["mean"], s["scale"]
        w0, w1 = s["net.0.weight"], s["net.3.weight"]
        h.hidden = w0.shape[0]
        h.net_ = h._net(w0.shape[1], w1.shape[0])
        h.net_.load_state_dict({k[4:]: torch.from_numpy(np.ascontiguousarray(v)) for k, v in s.items()
                                if k.startswith("net.")})
        h.net_.eval()
        h._restore_classes(s, w1.shape[0], w0.shape[1])
        return h


def _hold_out(X: np.ndarray, y: np.ndarray, sw: np.ndarray, fraction: float, seed: int) -> tuple[Any, ...]:
    """(X, y, sw) of the training part and ([X_val], y_val) of a seeded (stratified when every class
    has two items) validation part; None when there is too little data to hold any out."""
    n_val = int(round(len(y) * fraction))
    if fraction <= 0 or n_val < 1 or len(y) - n_val < 2:
        return X, y, sw, None
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y)
    strat = y if counts[counts > 0].min() >= 2 and n_val >= (counts > 0).sum() else None
    tr, va = train_test_split(np.arange(len(y)), test_size=n_val, random_state=seed, stratify=strat)
    return X[tr], y[tr], sw[tr], ([X[va]], y[va])


def _epoch_from_1(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "epoch": row["epoch"] + 1}  # train logs count epochs from 1


class _FeatureBatches:
    """The MLP head's engine task: shuffled batches of standardised features, label-smoothed
    sample-weighted cross-entropy, validation macro F1 over the validation views (TTA)."""

    def __init__(self, head: MLPHead, X: Any, y: np.ndarray, sw: np.ndarray,
                 val: tuple[list[np.ndarray], np.ndarray] | None, names: list[str]):
        import torch

        self.head, self.module, self.X, self.val, self.names = head, head.net_, X, val, names
        self.y, self.sw = torch.from_numpy(y), torch.from_numpy(sw)
        self.loss_fn = torch.nn.CrossEntropyLoss(reduction="none", label_smoothing=head.label_smoothing)
        self.device = torch.device("cpu")

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": list(self.module.parameters())}]

    def n_batches(self) -> int:
        return max(1, -(-len(self.X) // self.head.batch_size))

    def batches(self, epoch: int) -> Any:
        import torch

        perm = torch.randperm(len(self.X), generator=torch.Generator().manual_seed(self.head.seed + epoch))
        return (perm[i : i + self.head.batch_size] for i in range(0, len(perm), self.head.batch_size))

    def loss(self, model: Any, b: Any) -> Any:
        w = self.sw[b].to(self.device)
        ce = self.loss_fn(model(self.X[b].to(self.device)), self.y[b].to(self.device))
        return (ce * w).sum() / w.sum()  # a weighted mean, as torch's class-weighted loss

    def validate(self) -> dict[str, Any] | None:
        if self.val is None or not len(self.val[1]):
            return None
        h = self.head
        proba = np.mean([h._proba(((v - h.mean_) / h.scale_).astype(np.float32)) for v in self.val[0]], axis=0)
        m = classification_metrics(self.val[1], proba.argmax(1), self.names, proba)
        cm = confusion_matrix(self.val[1], proba.argmax(1), len(self.names))
        return {"val_accuracy": m["accuracy"], "val_macro_f1": m["macro_f1"], "val_weighted_f1": m["weighted_f1"],
                "val_top5_accuracy": m["top5_accuracy"], "top_confusions": top_confusions(cm, self.names, 5)}


class CosineHead:
    """scale x cosine(feature, class weight) + bias: the classifier trained with a fine-tuned backbone."""

    kind = "cosine"

    def __init__(self, weight: np.ndarray, bias: np.ndarray, scale: float = 16.0):
        # copies: arrays viewed from live torch parameters must not move on as training continues
        self.weight_, self.bias_, self.scale = l2_normalize(weight).copy(), np.array(bias, np.float32), float(scale)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return softmax(self.scale * l2_normalize(X) @ self.weight_.T + self.bias_)

    def params(self) -> dict[str, Any]:
        return {}  # everything is in the state

    def state(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight_, "bias": self.bias_, "scale": np.asarray([self.scale], np.float32)}

    @classmethod
    def from_state(cls, s: dict[str, np.ndarray], params: dict[str, Any]) -> CosineHead:
        return cls(s["weight"], s["bias"], float(s["scale"][0]))


def temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The temperature T minimising the held-out log loss of softmax(log(proba) / T) (one scalar:
    it rescales confidence without changing any single member's ranking)."""
    from scipy.optimize import minimize_scalar

    logp = np.log(np.clip(proba, 1e-12, 1.0))

    def nll(log_t: float) -> float:
        return float(-np.log(np.clip(softmax(logp / np.exp(log_t))[np.arange(len(y)), y], 1e-12, 1.0)).mean())

    return float(np.exp(minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded").x))


class EnsembleHead:
    """The mean of its members' temperature-calibrated probabilities (members on the same classes, e.g.
    the probe and the MLP head): calibration keeps the sharper member from outvoting the other by
    confidence alone. `columns[i]` = (start, stop): member i reads only those feature columns (e.g. one
    MLP head per input size of side-by-side features); None: all of them."""

    kind = "ensemble"

    def __init__(self, members: Sequence[Any], temperatures: Sequence[float],
                 columns: Sequence[Sequence[int] | None] | None = None):
        if len(members) != len(temperatures) or not members:
            raise ValueError(f"an ensemble needs one temperature per member, got {len(members)} / {len(temperatures)}")
        self.members, self.temperatures = list(members), [float(t) for t in temperatures]
        self.columns = [None if c is None else [int(c[0]), int(c[1])] for c in (columns or [None] * len(members))]
        if len(self.columns) != len(self.members):
            raise ValueError(f"an ensemble needs one column range per member, got {len(self.columns)}")
        self.classes_ = getattr(self.members[0], "classes_", None)  # the columns, as the members' own

    @classmethod
    def calibrated(cls, members: Sequence[Any], val_proba: Sequence[np.ndarray], y_val: np.ndarray) -> EnsembleHead:
        """Temperatures fitted on each member's validation probabilities `val_proba` (labels `y_val`)."""
        return cls(members, [temperature(P, np.asarray(y_val)) for P in val_proba])

    def combine(self, probas: Sequence[np.ndarray]) -> np.ndarray:
        """The ensemble's probabilities from each member's own (same order as `members`)."""
        return np.mean([softmax(np.log(np.clip(P, 1e-12, 1.0)) / t) for P, t in zip(probas, self.temperatures)],
                       axis=0).astype(np.float32)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.combine([m.predict_proba(X if c is None else X[:, c[0] : c[1]])
                             for m, c in zip(self.members, self.columns)])

    def params(self) -> dict[str, Any]:
        return {"members": [{"kind": m.kind, "params": m.params()} for m in self.members],
                "temperatures": self.temperatures, "columns": self.columns}

    def state(self) -> dict[str, np.ndarray]:
        return {f"{i}.{k}": v for i, m in enumerate(self.members) for k, v in m.state().items()}

    @classmethod
    def from_state(cls, s: dict[str, np.ndarray], params: dict[str, Any]) -> EnsembleHead:
        members = []
        for i, m in enumerate(params["members"]):
            own = {k[len(f"{i}."):]: v for k, v in s.items() if k.startswith(f"{i}.")}
            members.append(HEADS[m["kind"]].from_state(own, m["params"]))
        return cls(members, params["temperatures"], params.get("columns"))  # saved before columns: all


def fit_block_heads(kwargs: dict[str, Any], n: int, X: np.ndarray, y: np.ndarray, sw: np.ndarray | None,
                    val: tuple[np.ndarray, np.ndarray] | None, log: Any, names: Sequence[str]) -> EnsembleHead:
    """One `MLPHead(**kwargs)` per block of X's columns cut into `n` equal blocks (one input size each), each
    early-stopped on its own block of `val`, averaged. `kwargs["epochs"]` may be one count per block."""
    d, epochs = X.shape[1] // n, kwargs.get("epochs")
    members = []
    for i in range(n):
        kw = {**kwargs, **({"epochs": epochs[i]} if isinstance(epochs, (list, tuple)) else {})}
        cols = slice(i * d, (i + 1) * d)
        members.append(MLPHead(**kw).fit(X[:, cols], y, sw, eval_set=None if val is None else ([val[0][:, cols]], val[1]),
                                         log=log, class_names=names))
    return EnsembleHead(members, [1.0] * n, [[i * d, (i + 1) * d] for i in range(n)])


HEADS: dict[str, Any] = {"zeroshot": ZeroShotHead, "probe": ProbeHead, "head": MLPHead, "caption": ProbeHead,
                         "cosine": CosineHead, "ensemble": EnsembleHead}


# ---- captioners ---------------------------------------------------------------------------------
@runtime_checkable
class Captioner(Protocol):
    """Anything that writes one caption per image (BLIP/GIT encoders of the registry, HFCaptioner)."""

    def caption(self, images: list[Any]) -> list[str]: ...


class HFCaptioner:
    """A transformers image-to-text model saved in a local folder (AutoProcessor + image-text-to-text)."""

    def __init__(self, path: str | Path, max_new_tokens: int = 20, device: str = "auto", batch_size: int = 16):
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from fashionlens.encoders.torch_utils import resolve_device

        self.name = str(path)
        self.device = resolve_device(device)
        self.processor = AutoProcessor.from_pretrained(path)
        self.model = AutoModelForImageTextToText.from_pretrained(path).eval().to(self.device)
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size

    def caption(self, images: list[Any]) -> list[str]:
        import torch

        from fashionlens.catalog.images import open_image

        out: list[str] = []
        for i in range(0, len(images), self.batch_size):
            batch = [im.convert("RGB") if hasattr(im, "convert") else open_image(im)
                     for im in images[i : i + self.batch_size]]
            px = self.processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device)
            with torch.inference_mode():
                ids = self.model.generate(pixel_values=px, max_new_tokens=self.max_new_tokens)
            out += [s.strip() for s in self.processor.batch_decode(ids, skip_special_tokens=True)]
        return out


def build_captioner(spec: str, source: Path | None = None) -> Captioner:
    """A registry encoder name with a `caption` method, or a local transformers captioning folder.
    `source`: the saved file `spec` was read from; then only registered names build (no code)."""
    p = Path(spec)
    if p.is_dir() and (p / "config.json").is_file():
        return HFCaptioner(p)  # weights and configs only: transformers runs no repository code by default
    from fashionlens.encoders.registry import create, create_from_config

    enc = create(spec) if source is None else create_from_config(spec, source=source, field="config.encoder",
                                                                  folder=".")
    if not isinstance(enc, Captioner):
        raise InvalidInputError(f"encoder '{spec}' cannot write captions (it has no caption(images) method); "
                         "use a BLIP/GIT encoder or a local transformers captioning folder")
    return enc
