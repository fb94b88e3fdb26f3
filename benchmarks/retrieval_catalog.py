"""Retrieval at catalog scale: 2,000 held-out Myntra names against all 39,616 photos (issue #18).

Protocol (held-out items only, never in training):
- `rest, held = load_catalog(myntra).split(2000, seed=0)`; every model is trained on `rest` (37,616).
- Whole-catalog text→image: each held-out product name queries the gallery of ALL photos (held + rest).
  Relevant = the held-out items whose productDisplayName equals the query's (case- and
  space-normalised). Training photos are distractors, never hits — even when a training item has
  the very same name (the model saw that pair; counting it would reward memorisation, and the
  query set would no longer be held out). Metrics per query: hit-based Recall@1/5/10 (a relevant
  item in the top k), MRR (first relevant), NDCG@10 (graded by all relevant items), chance@10
  (hit@10 of a random ranking given the query's number of relevant items). The looser variant
  (training photos with the same name also relevant) is printed as a diagnostic only.
- Image→image: each held-out photo against the whole gallery (itself excluded): P@10 of the same
  articleType, and of the same articleType + baseColour.
- 2,000-gallery text→image R@10 (the earlier protocol: held-out names vs held-out photos, one answer).
- Shopper queries: each (baseColour, articleType) pair with >= 5 held-out items gives the query
  "<colour> <article type>" (lower case, articleType de-camel-cased) over the held-out photos only
  (no names used): P@10 of the colour, and of both labels.
Every number carries a 95% percentile bootstrap CI over queries (statistics.paired_bootstrap of the
per-query values against zero, 2,000 resamples, seed 0).

Features are the fashionlens embedding cache (`FASHIONLENS_CACHE`), so a re-run embeds nothing.

    FASHIONLENS_CACHE=/work/cache/fl .venv/bin/python benchmarks/retrieval_catalog.py \
        --variants default,best --json benchmarks/results/retrieval_catalog.json
"""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def norm_name(s: str) -> str:
    """Case- and space-normalised product name (the relevance key)."""
    return " ".join(str(s).lower().split())


def decamel(s: str) -> str:
    """'TrackPants' -> 'track pants'; 'Tshirts' stays 'tshirts'."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", str(s)).lower()


def ci(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and its 95% percentile bootstrap interval over queries."""
    from fashionlens.evaluation.statistics import paired_bootstrap

    v = np.asarray(values, dtype=np.float64)
    t = paired_bootstrap(v, np.zeros_like(v), n_boot=2000, seed=0)
    return float(v.mean()), t.ci95[0], t.ci95[1]


@dataclass
class Split:
    """Gallery = held rows first (so held query i is gallery row i), then rest."""

    names: np.ndarray  # normalised names, gallery order
    types: np.ndarray
    colours: np.ndarray
    n_held: int

    @property
    def held_names(self) -> np.ndarray:
        return self.names[: self.n_held]


def whole_catalog_t2i(q: np.ndarray, gallery: np.ndarray, split: Split, train_relevant: bool = False,
                      block: int = 256) -> dict[str, np.ndarray]:
    """Per-query hit@1/5/10, reciprocal rank of the first relevant item, NDCG@10, chance@10."""
    from fashionlens.evaluation.metrics import topk

    n, nh = len(gallery), split.n_held
    pool = split.names if train_relevant else split.held_names
    by_name: dict[str, list[int]] = {}
    for i, s in enumerate(pool):
        by_name.setdefault(s, []).append(i)
    rel = [np.asarray(by_name[s]) for s in split.held_names]
    top = topk(q, gallery, min(10, n))
    disc = 1.0 / np.log2(np.arange(2, top.shape[1] + 2))
    ndcg = np.array([(np.isin(t, r) * disc).sum() / disc[: min(len(r), len(disc))].sum() for t, r in zip(top, rel)])
    first = np.empty(nh, dtype=np.int64)
    for s in range(0, nh, block):
        sc = q[s : s + block] @ gallery.T
        for r in range(len(sc)):
            first[s + r] = int((sc[r] > sc[r, rel[s + r]].max()).sum())  # items strictly ahead of the best relevant
    n_rel = np.array([len(r) for r in rel], dtype=np.float64)
    # chance hit@10: 1 - P(no relevant item among 10 random draws without replacement)
    draws = np.arange(min(10, n - 1))
    chance = 1.0 - np.exp(np.array([np.sum(np.log1p(-m / (n - draws))) for m in n_rel]))
    return {"recall@1": (first < 1) * 1.0, "recall@5": (first < 5) * 1.0, "recall@10": (first < 10) * 1.0,
            "mrr": 1.0 / (first + 1), "ndcg@10": ndcg, "chance@10": chance}


def image_to_image(img: np.ndarray, split: Split) -> dict[str, np.ndarray]:
    """Per-query P@10 of same type / type+colour for held-out photos over the whole gallery."""
    from fashionlens.evaluation.metrics import topk

    nb = topk(img[: split.n_held], img, 10, exclude_self=True)
    t = split.types[nb] == split.types[: split.n_held, None]
    c = split.colours[nb] == split.colours[: split.n_held, None]
    return {"p@10_type": t.mean(1), "p@10_type_colour": (t & c).mean(1)}


def held_gallery_r10(q: np.ndarray, img: np.ndarray, n_held: int) -> np.ndarray:
    """The 2,000-photo protocol: each name's own photo among the held-out photos."""
    from fashionlens.evaluation.metrics import target_ranks

    return (target_ranks(q, img[:n_held], np.arange(n_held)) < 10) * 1.0


def shopper_queries(split: Split, min_items: int = 5) -> tuple[list[str], np.ndarray, np.ndarray]:
    """'<colour> <type>' texts for every (colour, type) pair with >= min_items held-out photos."""
    held = split.colours[: split.n_held], split.types[: split.n_held]
    pairs, counts = np.unique(np.stack(held, 1).astype(str), axis=0, return_counts=True)
    pairs = pairs[counts >= min_items]
    texts = [f"{decamel(c).lower()} {decamel(t)}" for c, t in pairs]
    return texts, pairs[:, 0], pairs[:, 1]


def shopper(q: np.ndarray, img: np.ndarray, split: Split, colours: np.ndarray, types: np.ndarray):
    """Per-query P@10 of the colour and of both labels over the held-out photos."""
    from fashionlens.evaluation.metrics import topk

    nb = topk(q, img[: split.n_held], 10)
    c = split.colours[nb] == colours[:, None]
    t = split.types[nb] == types[:, None]
    return {"colour_p@10": c.mean(1), "both_p@10": (c & t).mean(1)}


def name_oracle(split: Split) -> dict[str, np.ndarray]:
    """Ceiling of a model that reads the exact name off every photo but cannot tell a held-out photo
    from a training photo of the same name: the query's same-name items tie at the top, in random order."""
    from collections import Counter

    n_all = Counter(split.names)
    n_held = Counter(split.held_names)
    out = {k: np.empty(split.n_held) for k in ("recall@1", "recall@10")}
    for i, s in enumerate(split.held_names):
        m, t = n_held[s], n_all[s]  # m relevant among t tied items
        out["recall@1"][i] = m / t
        # P(at least one relevant among the first 10 of t tied): 1 - C(t-m, 10) / C(t, 10)
        out["recall@10"][i] = 1.0 if t <= 10 else 1.0 - np.prod((t - m - np.arange(10)) / (t - np.arange(10)))
    return out


GENDER = re.compile(r"\b(men|women|boys|girls|unisex|kids)\b")
# label oracles, from the weakest to one that knows every label the shared styles.csv has (gender read
# from the name: the shared copy has no gender column)
ORACLES = {"type+colour": ("articleType", "baseColour"),
           "type+colour+gender": ("articleType", "baseColour", "gender"),
           "every label + gender": ("masterCategory", "subCategory", "articleType", "baseColour", "usage", "gender")}


def label_oracle(held, rest, split: Split, cols: tuple[str, ...]) -> np.ndarray:
    """Per-query hit@10 of a model that knows the query item's labels `cols` exactly and nothing else:
    the gallery items with the same labels tie at the top in random order (expected hit@10)."""
    from collections import Counter

    def keys(c) -> np.ndarray:
        df = c.df.assign(gender=[(m.group(1) if (m := GENDER.search(str(t).lower())) else "?") for t in c.texts])
        return df[list(cols)].astype(str).agg("|".join, axis=1).to_numpy()

    kh, kr = keys(held), keys(rest)
    n_all = Counter(kh) + Counter(kr)
    hit = np.empty(split.n_held)
    for i, k in enumerate(kh):
        t = n_all[k]
        m = int(np.sum((split.held_names == split.held_names[i]) & (kh == k)))  # relevant among the tied
        hit[i] = 1.0 if t <= 10 else 1.0 - np.prod((t - m - np.arange(10)) / (t - np.arange(10)))
    return hit


# name -> (image encoder, label columns for SupCon, AlignConfig overrides[, encoder kwargs]); the overrides
# pin every knob that changed from the issue-#18 baseline so "default" stays the old default whatever
# AlignConfig says
OLD = {"hard_negatives": 0}
FUSED, TYPE_COLOUR, JOINT = "efficientnet-lite0.colour", ("articleType", "baseColour"), ("articleType", "articleType+baseColour")
VARIANTS: dict[str, tuple] = {
    "default": ("efficientnet-lite0", ("articleType",), OLD),
    "supcon-type+colour": ("efficientnet-lite0", TYPE_COLOUR, OLD),
    "colour-fused": (FUSED, ("articleType",), OLD),
    "hardneg-16": ("efficientnet-lite0", ("articleType",), {"hard_negatives": 16}),
    "colour-fused+supcon-colour": (FUSED, TYPE_COLOUR, OLD),
    "colour-fused+supcon-colour+hardneg-16": (FUSED, TYPE_COLOUR, {"hard_negatives": 16}),
    # SupCon on type and on the (type, colour) pair: a same-colour item of another type stays a negative
    "colour-fused+supcon-joint": (FUSED, JOINT, OLD),
    "colour-fused+supcon-joint+hardneg-16": (FUSED, JOINT, {"hard_negatives": 16}),
    # the histogram's weight in the fusion (1.0 = the default): less colour, more shape
    "colour-fused-w0.5+supcon-colour": (FUSED, TYPE_COLOUR, OLD, {"weight": 0.5}),
    "colour-fused-w0.5+supcon-joint": (FUSED, JOINT, OLD, {"weight": 0.5}),
    # InfoNCE also against the photos/names of the last N training items (cross-batch memory)
    "colour-fused+supcon-colour+memory-4096": (FUSED, TYPE_COLOUR, {**OLD, "memory": 4096}),
}


def run_variant(name: str, held, train, split: Split, cache: str | None) -> dict:
    """Train one variant on `train`, evaluate every protocol; per-query arrays under 'per_query'."""
    import torch

    from fashionlens.embed import embed_images, embed_texts
    from fashionlens.encoders import create
    from fashionlens.encoders.base import l2_normalize
    from fashionlens.train.align import AlignConfig, train_alignment

    enc_name, cols, over, *enc_kw = VARIANTS[name]
    enc, text = create(enc_name, **(enc_kw[0] if enc_kw else {})), create("minilm-l6")
    fi = np.concatenate([embed_images(enc, c, cache, progress=False) for c in (held, train)])
    ft = np.concatenate([embed_texts(text, c, cache, progress=False) for c in (held, train)])
    labels = np.stack([train.df[c.split("+")].astype(str).agg("|".join, axis=1).to_numpy() for c in cols], 1)
    cfg = AlignConfig(**over)
    t = time.perf_counter()
    res = train_alignment(fi[split.n_held :], ft[split.n_held :], labels, cfg)
    secs = time.perf_counter() - t
    with torch.inference_mode():
        img = l2_normalize(res.image_head(torch.as_tensor(fi)).numpy())
        q = l2_normalize(res.text_head(torch.as_tensor(ft[: split.n_held])).numpy())
        texts, cs, ts = shopper_queries(split)
        sq = l2_normalize(res.text_head(torch.as_tensor(text.encode_texts(texts))).numpy())
    per = {f"whole_{k}": v for k, v in whole_catalog_t2i(q, img, split).items()}
    per["whole_loose_recall@10"] = whole_catalog_t2i(q, img, split, train_relevant=True)["recall@10"]
    per |= {f"i2i_{k}": v for k, v in image_to_image(img, split).items()}
    per["held2000_recall@10"] = held_gallery_r10(q, img, split.n_held)
    per |= {f"shopper_{k}": v for k, v in shopper(sq, img, split, cs, ts).items()}
    return {"variant": name, "image_encoder": enc_name, "encoder_kwargs": enc_kw[0] if enc_kw else {},
            "supcon_labels": list(cols), "align": cfg.to_dict(),
            "train_seconds": round(secs, 1), "best_epoch": res.best_epoch,
            "metrics": {k: dict(zip(("mean", "ci_lo", "ci_hi"), ci(v))) for k, v in per.items()},
            "per_query": per}


def main() -> None:
    import torch

    from fashionlens.catalog import load_catalog
    from fashionlens.embed import DEFAULT_CACHE

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--myntra", default="../shared/data/myntra")
    ap.add_argument("--variants", default="default", help=f"comma list of: {', '.join(VARIANTS)}")
    ap.add_argument("--distractors", type=int, default=None,
                    help="use only the first N training items of a seeded permutation (train set and "
                         "distractors; default all 37,616) when the CPU cannot embed them all")
    ap.add_argument("--compare", default="", help="comma list of variants every later row is also compared with "
                                                       "(paired bootstrap; the first row always is)")
    ap.add_argument("--reference", type=Path, default=None,
                    help="an earlier run's .npz: its --compare variants are compared with this run's rows too "
                         "(same split and seed; alignment at a fixed thread count is bit-for-bit repeatable)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cat = load_catalog(args.myntra, check_images=False)
    rest, held = cat.split(2000, seed=0)
    if args.distractors is not None:
        rest = rest.subset(np.random.default_rng(0).permutation(len(rest))[: args.distractors])
    both = [held, rest]
    col = {c: np.concatenate([x.df[c].astype(str).to_numpy() for x in both]) for c in ("articleType", "baseColour")}
    split = Split(np.array([norm_name(t) for x in both for t in x.texts]), col["articleType"], col["baseColour"],
                  len(held))
    print(f"Myntra: {len(rest)} training items, {len(held)} held-out queries, gallery {len(held) + len(rest)}")
    oracle = {k: dict(zip(("mean", "ci_lo", "ci_hi"), ci(v))) for k, v in name_oracle(split).items()}
    print(f"name-oracle ceiling: R@1 {oracle['recall@1']['mean']:.3f}, R@10 {oracle['recall@10']['mean']:.3f}")
    oracle["label_oracles_recall@10"] = {}
    for label, cols in ORACLES.items():
        m, lo, hi = ci(label_oracle(held, rest, split, cols))
        oracle["label_oracles_recall@10"][label] = {"mean": m, "ci_lo": lo, "ci_hi": hi}
        print(f"label-oracle ceiling ({label}): R@10 {m:.3f} [{lo:.3f}, {hi:.3f}]")
    rows: list[dict] = []
    reference = load_reference(args.reference, args.compare.split(",")) if args.reference else []
    keys = ["whole_recall@1", "whole_recall@5", "whole_recall@10", "whole_mrr", "whole_ndcg@10", "whole_chance@10",
            "whole_loose_recall@10", "i2i_p@10_type", "i2i_p@10_type_colour", "held2000_recall@10",
            "shopper_colour_p@10", "shopper_both_p@10"]
    print("| variant | " + " | ".join(keys) + " | train s |")
    print("|---" * (len(keys) + 2) + "|")
    for name in filter(None, args.variants.split(",")):
        r = run_variant(name, held, rest, split, str(DEFAULT_CACHE))
        m = r["metrics"]
        print(f"| {name} | " + " | ".join(f"{m[k]['mean']:.3f} ({m[k]['ci_lo']:.3f}-{m[k]['ci_hi']:.3f})" for k in keys)
              + f" | {r['train_seconds']:.0f} |", flush=True)
        rows.append(r)
        if args.json:  # after every variant: a long run that is stopped keeps what it measured
            save(args.json, rows, split, len(rest), oracle, args.compare.split(","), reference)


PAIRED = ("whole_recall@10", "whole_mrr", "i2i_p@10_type", "i2i_p@10_type_colour", "held2000_recall@10",
          "shopper_colour_p@10", "shopper_both_p@10")


def load_reference(path: Path, names: list[str]) -> list[dict]:
    """Per-query values of the `names` variants of an earlier run, as rows to compare with."""
    with np.load(path, allow_pickle=False) as z:
        per = {n: {k.split("/", 1)[1]: z[k] for k in z.files if k.split("/", 1)[0] == n} for n in names}
    return [{"variant": f"{n} ({path.name})", "per_query": p} for n, p in per.items() if p]


def save(path: Path, rows: list[dict], split: Split, n_train: int, oracle: dict, compare: list[str],
         reference: list[dict]) -> None:
    """The results JSON (per-query values in the .npz beside it); every variant is also compared with
    the first, with each earlier `compare` variant and with the `reference` rows on the same queries (paired)."""
    from fashionlens.evaluation.statistics import paired_bootstrap
    from fashionlens.utils import atomic_write, write_json

    out_rows = []
    for i, r in enumerate(rows):
        row = {k: v for k, v in r.items() if k != "per_query"}
        for base in [b for j, b in enumerate(rows[:i]) if j == 0 or b["variant"] in compare] + reference:
            # diff = variant - base (positive = better), 95% CI and p-value
            row["vs_" + base["variant"]] = {
                k: paired_bootstrap(r["per_query"][k], base["per_query"][k]).to_dict() for k in PAIRED}
        out_rows.append(row)
    with atomic_write(path.with_suffix(".npz")) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **{f"{r['variant']}/{k}": v for r in rows for k, v in r["per_query"].items()})
    write_json(path, {"protocol": __doc__.split("\n\n")[0], "n_train": n_train, "n_queries": split.n_held,
                      "gallery": len(split.names), "oracles": oracle,
                      "shopper_queries": len(shopper_queries(split)[0]), "rows": out_rows})


if __name__ == "__main__":
    main()
