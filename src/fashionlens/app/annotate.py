"""Collect "which looks more like the reference?" judgements on the user's own catalog.

A FastAPI app with one plain HTML/JS page: a reference photo and two candidates; keys 1 / 2 pick a
candidate, 0 or space says "can't tell". Every answer is written atomically to a triplet CSV
(`anchor,a,b,choice` + ids; choice 0 = a, 1 = b, 0.5 = can't tell) that `load_triplets` reads, and
a restarted session resumes at the first unanswered triplet.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from fashionlens.errors import InvalidInputError
from fashionlens.utils import atomic_write

COLUMNS = ["anchor", "a", "b", "choice", "anchor_id", "a_id", "b_id", "answered_at"]
KEY_TO_CHOICE = {"1": 0.0, "2": 1.0, "0": 0.5}
TEMPLATE = Path(__file__).with_name("templates") / "annotate.html"


def plan_triplets(catalog: Any, n: int, seed: int = 0, group: str = "articleType") -> list[tuple[str, str, str]]:
    """A fixed, seeded list of (anchor, a, b) item ids. Candidates share the anchor's `group`
    label when the catalog has it (those are the judgements labels cannot settle)."""
    ids = np.asarray(catalog.ids, dtype=object)
    if len(ids) < 3:
        raise InvalidInputError(f"the catalog has {len(ids)} items; annotation needs at least 3")
    rng = np.random.default_rng(seed)
    labels = catalog.df[group].astype(str).to_numpy(object) if group in catalog.df.columns else np.zeros(len(ids))
    members = pd.Series(np.arange(len(ids))).groupby(labels).apply(np.asarray).to_dict()
    plan: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str, str]] = set()
    for _ in range(n * 20):
        if len(plan) >= n:
            break
        a = int(rng.integers(len(ids)))
        pool = members[labels[a]]
        pool = pool[pool != a] if len(pool) >= 3 else np.delete(np.arange(len(ids)), a)
        x, y = (int(v) for v in rng.choice(pool, 2, replace=False))
        key = (str(ids[a]), str(ids[x]), str(ids[y]))
        if key not in seen:
            seen.add(key)
            plan.append(key)
    return plan


class Answer(BaseModel):
    """One key press on triplet `index` of the session plan."""

    index: int
    key: str


class AnnotationStore:
    """The answers CSV: read once, appended to under a lock, each write atomic (temp + rename)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock = threading.Lock()
        if self.path.is_file():
            df = pd.read_csv(self.path, dtype={"anchor_id": str, "a_id": str, "b_id": str})
            missing = sorted(set(COLUMNS[:7]) - set(df.columns))
            if missing:
                raise InvalidInputError(f"{self.path} is not an annotation file (missing columns {', '.join(missing)})")
            self.rows = df.reindex(columns=COLUMNS).to_dict("records")
        else:
            self.rows = []

    def done(self) -> set[tuple[str, str, str]]:
        return {(str(r["anchor_id"]), str(r["a_id"]), str(r["b_id"])) for r in self.rows}

    def add(self, row: dict[str, Any]) -> None:
        with self.lock:
            rows = [*self.rows, row]
            with atomic_write(self.path) as tmp:
                pd.DataFrame(rows, columns=COLUMNS).to_csv(tmp, index=False)
            self.rows = rows


def create_app(catalog: Any, out: str | Path, n: int = 500, seed: int = 0) -> Any:
    """The annotation FastAPI app for `catalog`, writing answers to `out`."""
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import FileResponse, HTMLResponse

    plan = plan_triplets(catalog, n, seed)
    store = AnnotationStore(out)
    images = dict(zip(catalog.ids, catalog.images, strict=True))
    api = FastAPI(title="fashionlens annotation")

    def state() -> dict[str, Any]:
        done = store.done()
        todo = [i for i, t in enumerate(plan) if t not in done]
        body: dict[str, Any] = {"answered": len(plan) - len(todo), "total": len(plan)}
        if todo:
            i = todo[0]
            body["triplet"] = {"index": i, "anchor": plan[i][0], "a": plan[i][1], "b": plan[i][2]}
        return body

    @api.get("/", response_class=HTMLResponse)
    def page() -> str:
        return TEMPLATE.read_text(encoding="utf-8")

    @api.get("/api/next")
    def next_triplet() -> dict[str, Any]:
        return state()

    @api.post("/api/answer")
    def answer(ans: Answer) -> dict[str, Any]:
        if ans.key not in KEY_TO_CHOICE:
            raise HTTPException(422, f"key must be one of 1, 2, 0 (can't tell), got {ans.key!r}")
        if not 0 <= ans.index < len(plan):
            raise HTTPException(404, f"no triplet {ans.index} in this session")
        anchor, a, b = plan[ans.index]
        if (anchor, a, b) not in store.done():  # a repeated key press records nothing twice
            store.add({"anchor": images[anchor], "a": images[a], "b": images[b],
                       "choice": KEY_TO_CHOICE[ans.key], "anchor_id": anchor, "a_id": a, "b_id": b,
                       "answered_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
        return state()

    @api.get("/image/{item_id}")
    def image(item_id: str) -> FileResponse:
        path = images.get(item_id)  # only catalog photos are served, never arbitrary paths
        if path is None or not Path(path).is_file():
            raise HTTPException(404, f"no photo for item {item_id}")
        return FileResponse(path)

    return api
