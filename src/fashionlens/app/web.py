"""Server-rendered pages: search with filters, item page with similar items, photo upload panel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from fashionlens.app import api
from fashionlens.search.filters import parse_filters
from fashionlens.search.hybrid import why_line

router = APIRouter(tags=["web"], include_in_schema=False)


def filter_menus(request: Request, index: str, chosen: dict[str, str]) -> Markup:
    """The search form's filter menus: hundreds of <option>s on a real catalog (~4 ms of Jinja per
    page), so rendered once per served index and chosen filters (`Served.fragment`)."""
    s = request.app.state.served

    def render() -> Markup:
        tpl = request.app.state.templates.get_template("_filters.html")
        return Markup(tpl.render(facets=s.facets[index], chosen=chosen))

    return s.fragment(("menus", index, tuple(sorted(chosen.items()))), render)


def _page(request: Request, template: str, index: str | None, **ctx: Any) -> HTMLResponse:
    s = request.app.state.served
    name, _ = s.index(index)
    encoders = {n: i.info.get("encoder_name", i.info.get("encoder")) for n, i in s.indexes.items()}
    base = {"index": name, "indexes": encoders, "categorizers": list(s.categorizers),
            "captioner": s.captioner is not None, "facets": s.facets[name]}
    return request.app.state.templates.TemplateResponse(request, template, base | ctx)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, q: str = "", k: int = Query(24, ge=1, le=100), filter: list[str] | None = Query(None),
         index: str | None = None, mode: str | None = Query(None, pattern="^(|hybrid|vector|keyword)$")) -> HTMLResponse:
    chosen = [f for f in filter or [] if f]  # empty menu choices mean "any"
    results, note = None, None
    name, idx = request.app.state.served.index(index)
    used, _ = idx.resolve_mode(mode or None)
    if q.strip():
        res = api.search(request, q=q, k=k, filter=chosen, index=index, mode=mode or None)
        results, used, note = res["results"], res["mode"], res["note"]
        for r in results:
            r["why_line"] = why_line(r.get("why") or {})
    return _page(request, "search.html", index, q=q, k=k, results=results, mode=used, note=note,
                 menus=filter_menus(request, name, parse_filters(chosen)))


@router.get("/items/{item_id}", response_class=HTMLResponse)
def item_page(request: Request, item_id: str, index: str | None = None, k: int = Query(12, ge=1, le=100)) -> HTMLResponse:
    it = api.item(request, item_id, index=index)
    similar = api.similar_item(request, item_id, k=k, filter=None, index=index)["results"]
    for r in similar:  # "same type ✓ · colour ✗"
        r["why_line"] = " · ".join(f"{'same ' if i == 0 else ''}{key} {'✓' if ok else '✗'}"
                                   for i, (key, ok) in enumerate(r["match"].items()))
    attrs = {c: v for c, v in it.items() if c not in ("id", "text", "thumb", "url") and v is not None}
    return _page(request, "item.html", index, item=it, attrs=attrs, similar=similar)
