"""Fine-tuning strategies for text→image retrieval on Myntra (efficientnet-lite0 + minilm-l6).

Usage: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/finetune_myntra.py --out /tmp/ft_bench
Each finished model's report is kept in --out, so a re-run only does what is missing.
Writes --out/tables.md (results, per-category), hits.png and tsne_*.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from fashionlens.catalog import load_catalog
from fashionlens.embed import DEFAULT_CACHE, embed_images, embed_texts
from fashionlens.encoders.registry import create
from fashionlens.search.compare import (
    RetrievalReport,
    evaluate_embeddings,
    markdown_table,
    per_category_table,
    report_to_dict,
    save_hits_grid,
    save_tsne,
)

MYNTRA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "myntra"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)[:60]


def _save(rep: RetrievalReport, path: Path) -> None:
    np.savez(path.with_suffix(".npz"), **{k: v for k, v in rep.per_query.items()})
    path.write_text(json.dumps(report_to_dict(rep)))


def _load(path: Path) -> RetrievalReport:
    d = json.loads(path.read_text())
    with np.load(path.with_suffix(".npz"), allow_pickle=False) as z:
        pq = {k: z[k] for k in z.files}
    return RetrievalReport(d["name"], {k: {m: tuple(v) for m, v in ms.items()} for k, ms in d["metrics"].items()},
                           d["chance"], {c: tuple(v) for c, v in d["per_category"].items()}, pq, d["seconds"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000, help="items sampled from the catalog (seed 0)")
    ap.add_argument("--partial-train", type=int, default=3000, help="train items for partial unfreezing")
    ap.add_argument("--lora-train", type=int, default=2000, help="train items for LoRA")
    ap.add_argument("--smoke", action="store_true", help="1 epoch everywhere (checks the script runs)")
    ap.add_argument("--out", default="/tmp/ft_bench")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from fashionlens.train.retrieval import RetrievalConfig, train_retrieval

    cat = load_catalog(MYNTRA, check_images=False).sample(args.n, seed=0)
    ids = np.array([int(i) for i in cat.ids])
    test_rows, train_rows = np.flatnonzero(ids % 4 == 0), np.flatnonzero(ids % 4 != 0)
    test, train = cat.subset(test_rows), cat.subset(train_rows)
    print(f"train {len(train)}  test {len(test)}", flush=True)
    labels_test = test.column("articleType")
    cats_test = test.column("masterCategory")
    img_enc, txt_enc = create("efficientnet-lite0"), create("minilm-l6")
    t = time.time()
    embed_images(img_enc, cat, DEFAULT_CACHE, progress=False)
    embed_texts(txt_enc, cat, DEFAULT_CACHE, progress=False)
    print(f"base features ready in {time.time() - t:.0f}s", flush=True)

    reports: dict[str, RetrievalReport] = {}
    encoders = {}

    def evaluate(name: str, enc, seconds: float) -> None:
        zi = embed_images(enc, test, DEFAULT_CACHE, progress=False)
        zt = embed_texts(enc, test, DEFAULT_CACHE, progress=False)
        rep = evaluate_embeddings(name, zi, zt, labels_test, cats_test)
        rep.seconds = seconds
        _save(rep, out / f"{_slug(name)}.json")
        reports[name] = rep
        print(f"{name}: t2i R@10 {rep.value('text→image', 'recall@10'):.3f}  ({seconds:.0f}s)", flush=True)

    def done(name: str) -> bool:
        if (out / f"{_slug(name)}.json").is_file():
            reports[name] = _load(out / f"{_slug(name)}.json")
            return True
        return False

    # 0. zero-shot: the two towers live in different spaces (1280-d vs 384-d): no text→image at all
    name = "zero-shot (unaligned)"
    if not done(name):
        zi = embed_images(img_enc, test, DEFAULT_CACHE, progress=False)
        rep = evaluate_embeddings(name, zi, None, labels_test, cats_test)
        _save(rep, out / f"{_slug(name)}.json")
        reports[name] = rep

    # 1. the existing fast path (align.py defaults, as `fashionlens index` trains it)
    name = "frozen heads (align.py default)"
    if not done(name):
        from fashionlens.encoders.aligned import AlignedEncoder
        from fashionlens.train.align import train_alignment
        from fashionlens.train.config import AlignConfig

        t = time.time()
        cfg = AlignConfig()
        res = train_alignment(embed_images(img_enc, train, DEFAULT_CACHE, progress=False),
                              embed_texts(txt_enc, train, DEFAULT_CACHE, progress=False),
                              train.column("articleType"), cfg)
        enc = AlignedEncoder(img_enc, txt_enc, res.image_head, res.text_head,
                             {k: getattr(cfg, k) for k in ("dim", "hidden", "head", "dropout")})
        evaluate(name, enc, time.time() - t)

    first = "frozen heads, InfoNCE+SupCon (this loop)"
    warm = str(out / "runs" / _slug(first))  # tower runs start from these heads (two-stage recipe)
    frozen = dict(epochs=40, batch_size=512, patience=6, lr=2e-3, dropout=0.2)
    runs = {
        first: (frozen, len(train)),
        "two-tower batch-hard triplet (frozen)": ({**frozen, "loss": "triplet"}, len(train)),
        "LoRA r=8 on MiniLM q/k/v": (dict(text_strategy="lora", epochs=2, batch_size=64, patience=2, lr=5e-4,
                                          tower_lr=5e-4, dropout=0.2, init_from=warm), args.lora_train),
        "LoRA r=8 on MiniLM q/k/v, all train items": (dict(text_strategy="lora", epochs=2, batch_size=64, patience=2,
                                                           lr=2e-4, tower_lr=1e-3, dropout=0.2, init_from=warm),
                                                      len(train)),
        "partial: last 2 stages, 112 px": (dict(image_strategy="partial", unfreeze_blocks=2, image_size=112,
                                                epochs=1, batch_size=64, lr=5e-4, tower_lr=2e-4, dropout=0.2,
                                                init_from=warm), args.partial_train),
    }
    for name, (kw, n_train) in runs.items():
        run_dir = out / "runs" / _slug(name)
        if done(name):
            encoders[name] = create(f"run:{run_dir}")
            continue
        if args.smoke:
            kw, n_train = {**kw, "epochs": 1}, min(n_train, 100)
        sub = train.subset(np.arange(min(n_train, len(train))))
        cfg = RetrievalConfig(**{"device": "cpu", **kw})
        t = time.time()
        res = train_retrieval(cfg, run_dir, sub, img_enc if "partial" not in name else create("efficientnet-lite0"),
                              txt_enc if "LoRA" not in name else create("minilm-l6"), resume=True, progress=False)
        secs = time.time() - t
        encoders[name] = res.encoder
        evaluate(name, res.encoder, secs)

    # re-ranker on top of the frozen-heads first stage (its top-20)
    from fashionlens.train.reranker import CrossModalReranker, RerankerConfig

    name = f"{first} + re-ranker"
    if not done(name):
        enc = encoders[first]
        t = time.time()
        rr = CrossModalReranker(RerankerConfig(k=20, epochs=1 if args.smoke else 4)).fit(
            embed_texts(enc, train, DEFAULT_CACHE, progress=False), embed_images(enc, train, DEFAULT_CACHE, progress=False))
        zi = embed_images(enc, test, DEFAULT_CACHE, progress=False)
        zt = embed_texts(enc, test, DEFAULT_CACHE, progress=False)
        ranks = rr.ranks(zt, zi, np.arange(len(test)), k=20)
        rep = evaluate_embeddings(name, zi, zt, labels_test, cats_test, t2i_ranks=ranks)
        rep.seconds = reports[first].seconds + (time.time() - t)
        _save(rep, out / f"{_slug(name)}.json")
        reports[name] = rep
        print(f"{name}: t2i R@10 {rep.value('text→image', 'recall@10'):.3f}", flush=True)

    order = ["zero-shot (unaligned)", "frozen heads (align.py default)", *runs, name]
    reps = [reports[n] for n in order if n in reports]
    text = "## Results\n\n" + markdown_table(reps, baseline="frozen heads (align.py default)")
    text += "\n\n## Text→image Recall@10 per masterCategory\n\n" + per_category_table(reps[1:])
    (out / "tables.md").write_text(text + "\n")
    print(text, flush=True)

    best = max((n for n in runs if n in encoders), key=lambda n: reports[n].value("text→image", "recall@10"))
    enc = encoders[best]
    zi = embed_images(enc, test, DEFAULT_CACHE, progress=False)
    zt = embed_texts(enc, test, DEFAULT_CACHE, progress=False)
    save_hits_grid(test, zt, zi, out / "hits.png", n_queries=4, heading=f"{best}: top-5 per name (own photo marked)")
    save_tsne(zi, test.column("masterCategory"), out / "tsne_finetuned.png", title=f"test photos, {best}")
    save_tsne(embed_images(img_enc, test, DEFAULT_CACHE, progress=False), test.column("masterCategory"),
              out / "tsne_base.png", title="test photos, efficientnet-lite0 (no training)")
    print(f"figures for: {best}", flush=True)


if __name__ == "__main__":
    main()
