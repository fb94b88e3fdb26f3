"""Search at catalog scale (issue 18): the default model's held-out items against the whole catalog.

Split: `Catalog.split(2000, seed=0)` of ../shared/data/myntra. The index is `build_index` with its
defaults on the other 37,616 items; the 2,000 held-out items query it twice through
`evaluate_retrieval`: against every index photo plus the held-out ones (whole gallery, the index
photos distractors only) and against the held-out photos alone. Values with 95% percentile
bootstrap CIs over queries (1,000 resamples) and chance.

    FASHIONLENS_CACHE=... OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/retrieval_whole_catalog.py
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

T2I = ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10")
I2I = ("precision@10_articleType", "precision@10_articleType_baseColour")


def _cell(d: dict, m: str) -> str:
    lo, hi = d["ci95"][m]
    return f"{d[m]:.3f} [{lo:.3f}, {hi:.3f}]"


def main() -> None:
    from fashionlens.catalog import load_catalog
    from fashionlens.search.evaluate import evaluate_retrieval
    from fashionlens.search.index import build_index

    ap = argparse.ArgumentParser()
    ap.add_argument("--myntra", default="../shared/data/myntra")
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--out", default=None, help="index directory to keep (default: a temporary one)")
    ap.add_argument("--json", default=None, help="also write the full results here")
    args = ap.parse_args()
    cat = load_catalog(args.myntra, check_images=False)
    rest, held = cat.split(args.n_test, seed=0)
    out = Path(args.out or tempfile.mkdtemp(prefix="fl-whole-"))
    t = time.perf_counter()
    idx = build_index(rest, out, progress=False)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    results = {"whole": evaluate_retrieval(idx.encoder, held, gallery=idx, progress=False),
               "held-out": evaluate_retrieval(idx.encoder, held, progress=False)}
    eval_s = time.perf_counter() - t
    align = idx.info.get("alignment", {})
    how = "reused" if align.get("reused") else f"trained in {align.get('seconds', 0):.0f} s"
    print(f"Myntra: index {len(rest)} items, {len(held)} held-out queries; build {build_s:.0f} s "
          f"(alignment {how}), both evaluations {eval_s:.0f} s\n")
    head = ["gallery", "photos", *T2I, *(f"i2i {m.split('_', 1)[1].replace('_', '+')} P@10" for m in I2I)]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for name, res in results.items():
        t2i, i2i = res["text_to_image"], res["image_to_image"]
        cells = [name, f"{res['gallery']['size']:,}", *(_cell(t2i, m) for m in T2I), *(_cell(i2i, m) for m in I2I)]
        print("| " + " | ".join(cells) + " |")
        chance = [f"chance ({name})", "", *(f"{t2i['chance'][m]:.4f}" for m in T2I),
                  *(f"{i2i['chance'][m]:.3f}" for m in I2I)]
        print("| " + " | ".join(chance) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({"build_s": build_s, "eval_s": eval_s, "alignment": align,
                                               "results": results}, indent=2, default=str))


if __name__ == "__main__":
    main()
