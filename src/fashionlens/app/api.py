"""JSON API under /api: search, items, similar (by id or photo), categorize, what is served."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, File, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool

from fashionlens.app.uploads import read_limited
from fashionlens.search.filters import parse_filters
from fashionlens.search.hybrid import label_match

router = APIRouter(prefix="/api", tags=["api"])

K = Query(12, ge=1, le=100, description="How many results.")
INDEX = Query(None, description="Index name (see /api/indexes); default: the first one.")
FILTER = Query(None, description="COL:VALUE pre-filter, repeatable (e.g. articleType:Shirts).")
MODE = Query(None, pattern="^(hybrid|vector|keyword)$",
             description="hybrid (photos + words + facet boosts), vector (photos only) or keyword (words only); "
                         "default: hybrid where the index has item texts, else vector.")


def served(request: Request):
    return request.app.state.served


@router.get("/search", summary="Text search: photos and words (hybrid), photos only or words only")
def search(request: Request, q: str = Query(..., min_length=1, max_length=500, description="What to look for."),
           k: int = K, filter: list[str] | None = FILTER, index: str | None = INDEX,
           mode: str | None = MODE) -> dict[str, Any]:
    s = served(request)
    name, idx = s.index(index)
    filters = parse_filters(filter)
    if not q.strip():
        raise HTTPException(400, "empty query: type what you are looking for")
    mask = idx.filter_mask(filters)  # before encoding: a bad filter costs no model call
    used, note = idx.resolve_mode(mode)
    scores, pos, whys = s.search_text(name, q, k, mask, used)
    return {"query": q, "index": name, "filters": filters, "mode": used, "note": note,
            "results": s.rows(name, scores[0], pos[0], whys)}


@router.get("/items/{item_id}", summary="One catalog item")
def item(request: Request, item_id: str, index: str | None = INDEX) -> dict[str, Any]:
    s = served(request)
    name, idx = s.index(index)
    pos = _position(idx, name, item_id)
    return s.item(name, idx.catalog.df.iloc[pos].to_dict())


@router.get("/items/{item_id}/similar", summary="Items that look like a catalog item")
def similar_item(request: Request, item_id: str, k: int = K, filter: list[str] | None = FILTER,
                 index: str | None = INDEX) -> dict[str, Any]:
    s = served(request)
    name, idx = s.index(index)
    pos = _position(idx, name, item_id)
    scores, rows = idx.index.search(idx.index.vectors[pos][None], k, idx.filter_mask(parse_filters(filter)),
                                    exclude=[item_id])
    results = s.rows(name, scores[0], rows[0])
    me = idx.catalog.df.iloc[pos].to_dict()
    for r in results:  # "similar": does it share the item's type and colour?
        r["match"] = label_match(me, r)
    return {"id": item_id, "index": name, "results": results}


@router.post("/similar", summary="Items that look like an uploaded photo")
async def similar_photo(request: Request, file: UploadFile = File(..., description="JPEG/PNG/WebP/GIF/BMP photo"),
                        k: int = K, filter: list[str] | None = FILTER, index: str | None = INDEX) -> dict[str, Any]:
    s = served(request)
    name, idx = s.index(index)
    mask = idx.filter_mask(parse_filters(filter))
    image = await _image(s, file)
    vec = await run_in_threadpool(s.image_vector, name, image)
    scores, rows = idx.index.search(vec, k, mask)
    return {"index": name, "results": s.rows(name, scores[0], rows[0])}


@router.post("/categorize", summary="Top-5 categories of an uploaded photo (and a caption when available)")
async def categorize(request: Request, file: UploadFile = File(..., description="JPEG/PNG/WebP/GIF/BMP photo"),
                     categorizer: str | None = Query(None, description="Categorizer name; default: the first."),
                     k: int = Query(5, ge=1, le=50)) -> dict[str, Any]:
    s = served(request)
    name, model = s.categorizer(categorizer)
    image = await _image(s, file)
    top = await run_in_threadpool(s.categorize, name, image, k)
    out: dict[str, Any] = {"categorizer": name, "label": _label(model),
                           "top": [{"label": str(lab), "prob": round(float(p), 5)} for lab, p in top]}
    if s.captioner is not None:
        out["caption"] = await run_in_threadpool(s.caption, image)
    return out


@router.get("/indexes", summary="What this server serves")
def indexes(request: Request) -> dict[str, Any]:
    s = served(request)
    return {
        "indexes": [{"name": n, "encoder": i.info.get("encoder_name", i.info.get("encoder")),
                     "n_items": len(i.index), "dim": i.index.dim, "filters": sorted(s.facets[n])}
                    for n, i in s.indexes.items()],
        "encoders": sorted({i.info.get("encoder_name", i.info.get("encoder")) for i in s.indexes.values()}),
        "categorizers": [{"name": n, "label": _label(c), "method": getattr(getattr(c, "config", None), "method", None),
                          "n_classes": len(getattr(c, "classes_", []))} for n, c in s.categorizers.items()],
        "captioner": s.captioner is not None,
    }


def _position(idx: Any, name: str, item_id: str) -> int:
    try:
        return idx.index.position(item_id)
    except KeyError:
        raise HTTPException(404, f"no item with id '{item_id}' in index '{name}'") from None


def _label(model: Any) -> str | None:
    return getattr(getattr(model, "config", None), "label", None)


async def _image(s: Any, file: UploadFile):
    data = await read_limited(file, s.max_bytes)
    return await s.decode_upload(data, file.filename or "upload")
