"""Hybrid search on real Myntra data: held-out query quality (95% CIs) per mode, three keyword engines,
and single-query latency on a 40k index.

    FASHIONLENS_CACHE=/work/cache/fl OMP_NUM_THREADS=2 .venv/bin/python benchmarks/search_hybrid.py \\
        --work /work/cache/hybrid --idx40k /work/cache/idx40k

Protocol. `rest, held = cat.split(2000, seed=0)`; `train, tune = rest.split(1000, seed=1)`. The
alignment (the default two-tower heads) is trained on `train.sample(--n-train, seed=0)` only (3,000 by
default: on the shared 2-core machine the Lite0 photo features of the whole catalog were not at hand).
Two galleries are indexed with that encoder, photos + names: `held` (the test gallery) and `tune`
(1,000 other items, never trained on), where the fusion weights are chosen; the test queries never
take part in a choice.
Queries, built from the gallery's labels / names:
  - colour-type: every (baseColour, articleType) pair with >= 5 gallery items, query = lower-cased
    "<colour> <articleType>" ("navy blue tshirts"); P@10 both labels (and colour alone); a pair
    with fewer than 10 items cannot reach 1, so the ceiling is printed too;
  - names: every gallery item's productDisplayName; a hit when the top-1 result has that exact name
    (names repeat: several items can be a right answer; the ceiling is 1).
Modes: vector (photos only: the cold-start case), keyword (bm25s BM25 only), hybrid plain RRF
(no facet term), hybrid default (FusionConfig()), hybrid tuned (grid on the tune gallery).
Engines: bm25s (the product), LanceDB full text (the engine before) and SQLite FTS5 (adapters here:
same analyzer, fields and field weights), each keyword-only, in plain RRF and in the default hybrid,
paired against the product; plus build time, size on disk, an edit and query CPU / latency at 40k.
Latency: one query at a time through SearchIndex.search, the text tower as the server runs it
(`for_serving`), 1 thread; p50/p95 over real queries (names and colour-type), after a warm-up. The
40k index holds the whole catalog's real names and labels (keyword side, facets) and, unless the
cache has every photo, synthetic unit vectors of the real dimension (as benchmarks/app_load.py: exact
search costs the same whatever the values; --real-40k embeds the photos instead).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

MYNTRA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "myntra"


# ---- the SQLite FTS5 engine, for comparison ----------------------------------------------------
class Fts5Keywords:
    """Same analyzer, fields and boosts as KeywordIndex, on SQLite FTS5 (porter stemmer, bm25())."""

    def __init__(self, df: Any, analyzer: Any):
        from fashionlens.index.keyword import BOOSTS, FIELDS, documents

        self.analyzer, self.fields = analyzer, FIELDS
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.db.execute(f"CREATE VIRTUAL TABLE docs USING fts5(id UNINDEXED, {', '.join(FIELDS)}, "
                        "tokenize='porter unicode61')")
        docs = documents(df)
        rows = zip(df["id"].astype(str), *([analyzer(t) for t in docs[f]] for f in FIELDS))
        self.db.executemany(f"INSERT INTO docs VALUES (?{', ?' * len(FIELDS)})", rows)
        self.weights = ", ".join(["0"] + [str(BOOSTS[f]) for f in FIELDS])

    def search(self, query: str, limit: int = 100) -> tuple[list[str], np.ndarray]:
        words = self.analyzer(query).split()
        if not words:
            return [], np.zeros(0, dtype=np.float32)
        match = " OR ".join(f'"{w}"' for w in words)
        rows = self.db.execute(f"SELECT id, -bm25(docs, {self.weights}) AS s FROM docs WHERE docs MATCH ? "
                               "ORDER BY s DESC LIMIT ?", (match, limit)).fetchall()
        return [r[0] for r in rows], np.asarray([r[1] for r in rows], dtype=np.float32)

    def save(self, path: Path) -> None:
        path.write_bytes(self.db.serialize())


class LanceKeywords:
    """The engine before bm25s: LanceDB full text (tantivy BM25, English stemming), same analyzer,
    fields and boosts, queried as the product did (one MultiMatchQuery per query, row ids -> item ids)."""

    def __init__(self, df: Any, analyzer: Any, folder: Path):
        import lancedb
        import pyarrow as pa
        from lancedb.index import FTS

        from fashionlens.index.keyword import FIELDS, documents

        docs = documents(df)
        self.analyzer, self.fields = analyzer, [f for f in FIELDS if any(t.strip() for t in docs[f])]
        shutil.rmtree(folder, ignore_errors=True)
        self.db = lancedb.connect(str(folder))
        cols = {"id": df["id"].astype(str).tolist()} | {f: [analyzer(t) for t in docs[f]] for f in self.fields}
        self.tbl = self.db.create_table("docs", pa.table(cols))
        for f in self.fields:
            self.tbl.create_index(f, config=FTS(stem=True, remove_stop_words=False, ascii_folding=True))
        self._read_ids()

    def _read_ids(self) -> None:
        from lancedb.background_loop import LOOP

        t = LOOP.run(self.tbl._table.query().select(["id"]).with_row_id().to_arrow())
        self.ids = dict(zip(t.column("_rowid").to_pylist(), t.column("id").to_pylist(), strict=True))

    def edit(self, ids: list[str]) -> None:
        """Delete rows and add them back (what an update of those items costs)."""
        from lancedb.background_loop import LOOP

        where = "id IN (" + ", ".join(f"'{i}'" for i in ids) + ")"
        rows = LOOP.run(self.tbl._table.query().where(where).select(["id", *self.fields]).to_arrow())
        self.tbl.delete(where)
        self.tbl.add(rows)

    def search(self, query: str, limit: int = 100) -> tuple[list[str], np.ndarray]:
        from lancedb.background_loop import LOOP
        from lancedb.query import MultiMatchQuery

        from fashionlens.index.keyword import BOOSTS

        text = self.analyzer(query)
        if not text:
            return [], np.zeros(0, dtype=np.float32)
        q = MultiMatchQuery(text, self.fields, boosts=[BOOSTS[f] for f in self.fields])
        res = LOOP.run(self.tbl._table.query().nearest_to_text(q).select(["_score"]).with_row_id().limit(limit).to_arrow())
        rows = res.column("_rowid").to_pylist()
        if any(r not in self.ids for r in rows):  # rows added since the map was read
            self._read_ids()
        return [self.ids[r] for r in rows], res.column("_score").to_numpy().astype(np.float32)


# ---- queries and metrics ------------------------------------------------------------------------
def colour_type_queries(df: Any, min_items: int = 5) -> list[tuple[str, str, str]]:
    pairs = df.groupby(["baseColour", "articleType"]).size()
    return [(f"{c} {t}".lower(), c, t) for (c, t), n in pairs.items() if n >= min_items and c and t]


def evaluate(idx: Any, ct: list[tuple[str, str, str]], names: list[str], mode: str,
             vecs: tuple[np.ndarray | None, np.ndarray | None]) -> dict[str, np.ndarray]:
    """Per-query values: both-labels and colour P@10 (colour-type queries), exact-name hit@1 (names)."""
    out: dict[str, Any] = {"both": [], "colour": [], "name@1": []}
    ranked = idx.rank([q for q, _, _ in ct], vecs[0], 10, None, mode)
    df = idx.catalog.df
    colour, kind, text = df["baseColour"].to_numpy(), df["articleType"].to_numpy(), df["text"].to_numpy()
    for (_, c, t), (pos, _, _) in zip(ct, ranked):
        out["both"].append(((colour[pos] == c) & (kind[pos] == t)).sum() / 10)
        out["colour"].append((colour[pos] == c).sum() / 10)
    for name, (pos, _, _) in zip(names, idx.rank(names, vecs[1], 1, None, mode)):
        out["name@1"].append(float(len(pos) > 0 and text[pos[0]] == name))
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def memoize_keywords(idx: Any, engine: Any = None) -> None:
    """Keyword results per query are the same for every fusion weighting: compute them once (per
    engine: `engine` replaces the index's own keyword side)."""
    from fashionlens.search.index import SearchIndex

    if engine is not None:
        idx._keywords, idx._keywords_open = engine, True
    cache: dict[tuple[str, int], Any] = {}
    inner = SearchIndex.keyword_side.__get__(idx)

    def side(query: str, limit: int, mask: Any) -> Any:
        key = (query, limit)
        if mask is not None:
            return inner(query, limit, mask)
        if key not in cache:
            cache[key] = inner(query, limit, mask)
        return cache[key]

    idx.keyword_side = side


def fmt(v: np.ndarray) -> str:
    from fashionlens.search.compare import bootstrap_ci

    lo, hi = bootstrap_ci(v, n_boot=2000)
    return f"{v.mean():.3f} [{lo:.3f}, {hi:.3f}]"


def synthetic_40k(cat: Any, small: Any, big: Path) -> None:
    """The whole catalog (real names, labels, photos paths) with random unit vectors and `small`'s encoder."""
    from fashionlens.index.exact import ExactIndex
    from fashionlens.index.keyword import save_keywords
    from fashionlens.utils import write_json

    rng = np.random.default_rng(0)
    vec = rng.standard_normal((len(cat), small.index.dim)).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    big.mkdir(parents=True, exist_ok=True)
    ExactIndex(vec, cat.ids).save(big)
    save_keywords(cat.df, big)
    cat.save(big / "catalog.parquet")
    write_json(big / "index.json", {**small.info, "n_items": len(cat), "synthetic_vectors": True})


# ---- main ---------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/fashionlens_hybrid"))
    ap.add_argument("--idx40k", type=Path, default=None, help="40k index folder (made here once when missing)")
    ap.add_argument("--latency-queries", type=int, default=300)
    ap.add_argument("--n-train", type=int, default=3000, help="alignment training items (a sample of the rest)")
    ap.add_argument("--real-40k", action="store_true", help="embed every photo for the 40k index (slow on 2 cores)")
    ap.add_argument("--latency-only", action="store_true", help="skip the quality part (keeps its results.json entries)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("FASHIONLENS_PROGRESS", "0")
    import faiss
    import torch

    from fashionlens.catalog import load_catalog
    from fashionlens.embed import DEFAULT_CACHE
    from fashionlens.encoders import create
    from fashionlens.search.index import BuildConfig, SearchIndex, align_encoders, build_index

    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "cache": str(DEFAULT_CACHE)}
    cat = load_catalog(MYNTRA, check_images=False)
    rest, held = cat.split(2000, seed=0)
    train, tune = rest.split(1000, seed=1)
    train = train.sample(args.n_train, seed=0)
    enc_dir = args.work / f"encoder{args.n_train}"
    cfg = BuildConfig()
    t0 = time.perf_counter()
    if not (enc_dir / "encoder.json").is_file():
        align_encoders(create(cfg.encoder), create(cfg.text_encoder), train, enc_dir, cfg, progress=False)
    print(f"alignment on {len(train)} items ready ({time.perf_counter() - t0:.0f} s)", flush=True)
    build = BuildConfig(encoder=f"run:{enc_dir.resolve()}")
    idxs = {}
    for name, gallery in (("held", held), ("tune", tune)):
        folder = args.work / f"{name}_index"
        if not (folder / "index.json").is_file():
            build_index(gallery, folder, build, progress=False)
        idxs[name] = SearchIndex(folder)
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)

    if args.latency_only:
        results = json.loads((args.work / "results.json").read_text()) | {"latency_date": results["date"]}
        latency(args, cat, idxs["held"], build, results)
        return
    quality(idxs, results)
    latency(args, cat, idxs["held"], build, results)


def quality(idxs: dict[str, Any], results: dict[str, Any]) -> None:
    """Tune the fusion on `tune`, report every mode on `held` (95% CIs, paired difference)."""
    from fashionlens.evaluation.statistics import paired_bootstrap
    from fashionlens.search.hybrid import FusionConfig

    prepared = {}
    for name, idx in idxs.items():
        df = idx.catalog.df
        ct, names = colour_type_queries(df), df["text"].tolist()
        vecs = (idx.encoder.encode_texts([q for q, _, _ in ct]), idx.encoder.encode_texts(names))
        memoize_keywords(idx)
        prepared[name] = (idx, ct, names, vecs)
    idx, ct, names, vecs = prepared["tune"]
    grid = []
    for kw, fw in itertools.product((0.5, 1.0, 2.0), (0.0, 0.01, 0.02, 0.04, 0.08)):
        idx.fusion = FusionConfig(keyword_weight=kw, facet_weight=fw)
        v = evaluate(idx, ct, names, "hybrid", vecs)
        grid.append({"keyword_weight": kw, "facet_weight": fw, "both": v["both"].mean(), "name@1": v["name@1"].mean()})
        print(f"tune kw={kw} facet={fw}: both P@10 {grid[-1]['both']:.3f}  name R@1 {grid[-1]['name@1']:.3f}", flush=True)
    best = max(grid, key=lambda g: g["both"] + g["name@1"])
    results["tune_grid"], results["tuned"] = grid, best
    tuned = FusionConfig(keyword_weight=best["keyword_weight"], facet_weight=best["facet_weight"])

    idx, ct, names, vecs = prepared["held"]
    print(f"\nheld-out gallery: {len(idx.index)} items, {len(ct)} colour-type queries, {len(names)} name queries")
    ceiling = np.asarray([min(10, n) / 10 for n in
                          idx.catalog.df.groupby(["baseColour", "articleType"]).size()[[(c, t) for _, c, t in ct]]])
    rows = {}
    variants = [("vector (photos only)", "vector", FusionConfig()), ("keyword (bm25s BM25)", "keyword", FusionConfig()),
                ("hybrid, plain RRF", "hybrid", FusionConfig(facet_weight=0.0)),
                ("hybrid, default", "hybrid", FusionConfig()), ("hybrid, tuned on tune split", "hybrid", tuned)]
    for label, mode, fcfg in variants:
        idx.fusion = fcfg
        rows[label] = evaluate(idx, ct, names, mode, vecs)
    product = idx.keywords
    others = {"LanceDB": LanceKeywords(idx.catalog.df, product.analyzer, Path(tempfile.mkdtemp())),
              "SQLite FTS5": Fts5Keywords(idx.catalog.df, product.analyzer)}
    for engine, kw in others.items():
        memoize_keywords(idx, kw)
        for label, mode, fcfg in variants[1:4]:
            idx.fusion = fcfg
            rows[f"{label.split(' (')[0]}, {engine} keyword side"] = evaluate(idx, ct, names, mode, vecs)
    memoize_keywords(idx, product)
    idx.fusion = FusionConfig()
    print("\n| mode | P@10 both labels (95% CI) | P@10 colour (95% CI) | name R@1 exact (95% CI) |")
    print("|---|---|---|---|")
    print(f"| ceiling (pairs with < 10 items) | {ceiling.mean():.3f} | 1 | 1 |")
    for label, v in rows.items():
        print(f"| {label} | {fmt(v['both'])} | {fmt(v['colour'])} | {fmt(v['name@1'])} |")
    results["held"] = {k: {m: float(x.mean()) for m, x in v.items()} for k, v in rows.items()}
    results["n_queries"] = {"colour_type": len(ct), "names": len(names)}
    base = max(("vector (photos only)", "keyword (bm25s BM25)"), key=lambda k: rows[k]["both"].mean())
    pairs = [("hybrid, default", base)] + [(a, f"{a.split(' (')[0]}, LanceDB keyword side")
                                           for a in ("hybrid, default", "keyword (bm25s BM25)")]
    for a, b in pairs:
        for metric in ("both", "name@1"):
            t = paired_bootstrap(-rows[a][metric], -rows[b][metric], n_boot=2000)
            diff = {"diff": -t.diff, "ci95": [-t.ci95[1], -t.ci95[0]], "p": t.p_value}
            results[f"{a} minus {b}: {metric}"] = diff
            print(f"{a} - {b} ({metric}): {diff['diff']:+.3f} [{diff['ci95'][0]:+.3f}, {diff['ci95'][1]:+.3f}], p={diff['p']:.4f}")


def latency(args: argparse.Namespace, cat: Any, idx: Any, build: Any, results: dict[str, Any]) -> None:
    """Single-query latency per mode on the 40k index, and the two engines side by side."""
    from fashionlens.search.index import SearchIndex, build_index

    big = args.idx40k or args.work / "idx40k"
    if not (big / "index.json").is_file():
        t = time.perf_counter()
        if args.real_40k:
            build_index(cat, big, build, progress=False)
        else:
            synthetic_40k(cat, idx, big)
        print(f"40k index built in {time.perf_counter() - t:.0f} s")
    big_idx = SearchIndex(big)
    big_idx._encoder = big_idx.encoder.for_serving()
    rng = np.random.default_rng(0)
    qs = [q for q, _, _ in colour_type_queries(big_idx.catalog.df)]
    qs = list(rng.permutation(qs + rng.choice(cat.texts, size=len(qs), replace=False).tolist()))[: args.latency_queries]
    lat: dict[str, dict[str, float]] = {}
    modes = ("vector", "hybrid", "keyword")
    for mode in modes:  # warm-up: models, lazy keyword and facet tables, OS caches
        for q in qs[:30]:
            big_idx.search(q, 12, mode=mode)
    times: dict[str, list[float]] = {m: [] for m in modes}
    for i, q in enumerate(qs):  # modes interleaved, in turn first: a shared machine's load hits each alike
        for mode in modes[i % 3:] + modes[: i % 3]:
            t = time.perf_counter()
            big_idx.search(q, 12, mode=mode)
            times[mode].append((time.perf_counter() - t) * 1000)
    for mode, ms in times.items():
        lat[mode] = {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95))}
    engine = engines_40k(big_idx, qs, args.work)
    results |= {"latency_40k_ms": lat, "engines_40k": engine, "n_40k": len(big_idx.index),
                "load_avg": os.getloadavg()[0]}
    print(f"\n40k index ({len(big_idx.index)} items), one query at a time, 1 thread, load avg {os.getloadavg()[0]:.1f}:")
    print("| mode | p50 ms | p95 ms |\n|---|---|---|")
    for mode, v in lat.items():
        print(f"| {mode} | {v['p50']:.1f} | {v['p95']:.1f} |")
    print(f"hybrid p95 / vector p95 = {lat['hybrid']['p95'] / lat['vector']['p95']:.2f}")
    print("\n| engine | build s | on disk MB | remove 100 + add 100 + 1st query s | top-200 query CPU ms mean [95% CI] "
          "| wall p50 / p95 ms |\n|---|---|---|---|---|---|")
    for label, v in engine.items():
        print(f"| {label} | {v['build_s']:.1f} | {v['disk_mb']:.1f} | {v['edit_s']:.2f} | {v['cpu_ms']:.2f} "
              f"[{v['cpu_ci'][0]:.2f}, {v['cpu_ci'][1]:.2f}] | {v['p50']:.1f} / {v['p95']:.1f} |")
    (args.work / "results.json").write_text(json.dumps(results, indent=2, default=float))
    print(f"\nresults: {args.work / 'results.json'}")


def engines_40k(big_idx: Any, qs: list[str], work: Path) -> dict[str, dict[str, Any]]:
    """The three engines on the 40k catalog: build, size, an edit, per-query CPU (process time, 95% CI
    over queries) and wall time; queries interleaved across engines so a shared machine hits all alike."""
    from fashionlens.index.keyword import KeywordIndex
    from fashionlens.search.compare import bootstrap_ci

    df, analyzer = big_idx.catalog.df, big_idx.keywords.analyzer
    builds = {"bm25s": lambda: KeywordIndex.from_catalog(df),
              "lance": lambda: LanceKeywords(df, analyzer, work / "lance_kw"),
              "fts5": lambda: Fts5Keywords(df, analyzer)}
    kws, out = {}, {}
    for label, build in builds.items():
        t = time.perf_counter()
        kws[label] = build()
        out[label] = {"build_s": time.perf_counter() - t}
    kws["bm25s"].save(work / "bm25s_kw")
    kws["fts5"].save(work / "fts5.sqlite")
    sizes = {"bm25s": work / "bm25s_kw", "lance": work / "lance_kw", "fts5": work / "fts5.sqlite"}
    for label, path in sizes.items():
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
        out[label]["disk_mb"] = sum(f.stat().st_size for f in files) / 1e6
    cpu: dict[str, list[float]] = {k: [] for k in kws}
    wall: dict[str, list[float]] = {k: [] for k in kws}
    for kw in kws.values():
        kw.search("warm up", 200)
    labels = list(kws)
    for i, q in enumerate(qs):
        for label in labels[i % 3:] + labels[: i % 3]:
            c, t = time.process_time(), time.perf_counter()
            kws[label].search(q, 200)
            cpu[label].append((time.process_time() - c) * 1000)
            wall[label].append((time.perf_counter() - t) * 1000)
    edited = df.iloc[:100]
    ids = edited["id"].astype(str).tolist()
    edits = {"bm25s": lambda kw: (kw.remove(ids), kw.add(edited)), "lance": lambda kw: kw.edit(ids)}
    for label, kw in kws.items():
        c = np.asarray(cpu[label])
        lo, hi = bootstrap_ci(c, n_boot=2000)
        out[label] |= {"cpu_ms": float(c.mean()), "cpu_ci": [lo, hi], "p50": float(np.percentile(wall[label], 50)),
                       "p95": float(np.percentile(wall[label], 95)), "edit_s": float("nan")}
        if label in edits:
            t = time.perf_counter()
            edits[label](kw)
            kw.search(qs[0], 200)
            out[label]["edit_s"] = time.perf_counter() - t
    return out


if __name__ == "__main__":
    main()
