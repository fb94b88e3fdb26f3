"""Classifier heads on embeddings (zero-shot prompts, logistic probe, MLP) and captioners.

Every head maps (n, d) float32 features to (n, k) probabilities and round-trips through a dict of
numpy arrays (`state()`, saved as safetensors — no pickle anywhere) plus JSON `params()`, read back by
`from_state`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

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


def _standardise(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(axis=0).astype(np.float32)
    scale = X.std(axis=0).astype(np.float32)
    return mean, np.where(scale > 1e-6, scale, 1.0).astype(np.float32)


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


class ProbeHead:
    """Multinomial logistic regression on standardised features.

    Same objective as scikit-learn's `LogisticRegression(C=C)` (mean cross-entropy + ||W||^2 / (2 C n),
    bias unpenalised), solved full-batch with torch L-BFGS: on 30k x 1280 features and 140 classes
    scikit-learn's lbfgs took tens of minutes on 2 cores, this takes about one.
    """

    kind = "probe"

    def __init__(self, C: float = 1.0, max_iter: int = 200):
        self.C, self.max_iter = C, max_iter

    def fit(self, X: np.ndarray, y: np.ndarray, n_classes: int, weights: np.ndarray | None = None) -> ProbeHead:
        import torch

        self.mean_, self.scale_ = _standardise(X)
        x = torch.from_numpy((X - self.mean_) / self.scale_)
        t = torch.from_numpy(np.asarray(y, np.int64))
        sw = torch.ones(len(t)) if weights is None else torch.from_numpy(weights)[t]
        sw = sw / sw.mean()
        W = torch.zeros(x.shape[1], n_classes, requires_grad=True)
        b = torch.zeros(n_classes, requires_grad=True)
        from fashionlens.train.engine import minimize_full_batch

        lam = 1.0 / (2 * self.C * len(t))

        def objective() -> torch.Tensor:
            ce = torch.nn.functional.cross_entropy(x @ W + b, t, reduction="none")
            return (ce * sw).mean() + lam * (W * W).sum()

        minimize_full_batch([W, b], objective, self.max_iter)
        present = np.bincount(np.asarray(y, np.int64), minlength=n_classes) > 0
        self.coef_ = W.detach().numpy().T.copy()
        # classes absent from y have nothing to learn from: a very low bias, never predicted
        self.intercept_ = np.where(present, b.detach().numpy(), -1e4).astype(np.float32)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return softmax(((X - self.mean_) / self.scale_) @ self.coef_.T + self.intercept_)

    def params(self) -> dict[str, Any]:
        return {"C": self.C, "max_iter": self.max_iter}

    def state(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef_, "intercept": self.intercept_, "mean": self.mean_, "scale": self.scale_}

    @classmethod
    def from_state(cls, s: dict[str, np.ndarray], params: dict[str, Any]) -> ProbeHead:
        h = cls(**params)
        h.coef_, h.intercept_, h.mean_, h.scale_ = s["coef"], s["intercept"], s["mean"], s["scale"]
        return h


class MLPHead:
    """Standardise -> Linear -> GELU -> Dropout -> Linear, trained with AdamW, label smoothing,
    optional class weights, cosine schedule, and early stopping on validation macro F1."""

    kind = "head"

    def __init__(self, hidden: int = 1024, dropout: float = 0.4, epochs: int = 40, lr: float = 1e-3,
                 weight_decay: float = 1e-3, batch_size: int = 256, patience: int = 6,
                 label_smoothing: float = 0.1, seed: int = 0, device: str = "auto"):
        self.hidden, self.dropout, self.epochs, self.lr = hidden, dropout, epochs, lr
        self.weight_decay, self.batch_size, self.patience = weight_decay, batch_size, patience
        self.label_smoothing, self.seed, self.device = label_smoothing, seed, device

    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("hidden", "dropout", "epochs", "lr", "weight_decay",
                                              "batch_size", "patience", "label_smoothing", "seed")}

    def _net(self, d: int, k: int) -> Any:
        from torch import nn

        return nn.Sequential(nn.Linear(d, self.hidden), nn.GELU(), nn.Dropout(self.dropout), nn.Linear(self.hidden, k))

    def fit(self, X: np.ndarray, y: np.ndarray, n_classes: int, val: tuple[list[np.ndarray], np.ndarray],
            weights: np.ndarray | None = None, labels: Sequence[str] | None = None,
            log: Callable[[dict[str, Any]], None] | None = None) -> MLPHead:
        """`val` = (views of the validation features, labels); view probabilities are averaged (TTA)."""
        import torch

        from fashionlens.train.engine import FitConfig, fit

        torch.manual_seed(self.seed)
        self.mean_, self.scale_ = _standardise(X)
        self.net_ = self._net(X.shape[1], n_classes)
        names = list(labels) if labels is not None else [str(i) for i in range(n_classes)]
        task = _FeatureBatches(self, torch.from_numpy((X - self.mean_) / self.scale_), np.asarray(y, np.int64),
                               weights, val, names)
        cfg = FitConfig(epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay, schedule="onecycle",
                        warmup=0.1, monitor="val_macro_f1", min_delta=1e-4, patience=self.patience, seed=self.seed,
                        device=self.device, description="training the head")
        res = fit(task, cfg, log=None if log is None else lambda row: log(_epoch_from_1(row)))
        self.history_ = [_epoch_from_1(r) for r in res.history]
        self.best_epoch_ = res.best_epoch + 1
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        import torch

        self.net_.eval()
        dev = next(self.net_.parameters()).device
        x = torch.from_numpy(((X - self.mean_) / self.scale_).astype(np.float32)).to(dev)
        with torch.inference_mode():
            out = [torch.softmax(self.net_(x[i : i + 4096]), dim=1).cpu().numpy() for i in range(0, len(x), 4096)]
        return np.concatenate(out) if out else np.zeros((0, self.net_[-1].out_features), np.float32)

    def state(self) -> dict[str, np.ndarray]:
        sd = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}
        return {**sd, "mean": self.mean_, "scale": self.scale_}

    @classmethod
    def from_state(cls, s: dict[str, np.ndarray], params: dict[str, Any]) -> MLPHead:
        import torch

        h = cls(**params)
        h.mean_, h.scale_ = s["mean"], s["scale"]
        w0, w1 = s["net.0.weight"], s["net.3.weight"]
        h.hidden = w0.shape[0]
        h.net_ = h._net(w0.shape[1], w1.shape[0])
        h.net_.load_state_dict({k[4:]: torch.from_numpy(np.ascontiguousarray(v)) for k, v in s.items()
                                if k.startswith("net.")})
        h.net_.eval()
        return h


def _epoch_from_1(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "epoch": row["epoch"] + 1}  # train logs count epochs from 1


class _FeatureBatches:
    """The MLP head's engine task: shuffled batches of standardised features, label-smoothed
    (optionally class-weighted) cross-entropy, validation macro F1 over flip views (TTA)."""

    def __init__(self, head: MLPHead, X: Any, y: np.ndarray, weights: np.ndarray | None,
                 val: tuple[list[np.ndarray], np.ndarray], names: list[str]):
        import torch

        self.head, self.module, self.X, self.val, self.names = head, head.net_, X, val, names
        self.y = torch.from_numpy(y)
        w = None if weights is None else torch.from_numpy(weights)
        self.loss_fn = torch.nn.CrossEntropyLoss(weight=w, label_smoothing=head.label_smoothing)
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
        self.loss_fn.to(self.device)
        return self.loss_fn(model(self.X[b].to(self.device)), self.y[b].to(self.device))

    def validate(self) -> dict[str, Any]:
        proba = np.mean([self.head.predict_proba(v) for v in self.val[0]], axis=0)
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


HEADS: dict[str, Any] = {"zeroshot": ZeroShotHead, "probe": ProbeHead, "head": MLPHead, "caption": ProbeHead,
                         "cosine": CosineHead}


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
