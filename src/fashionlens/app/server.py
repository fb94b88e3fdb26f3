"""The app factory: load indexes and categorizers once, wire the API, the web pages and thumbnails.

    app = create_app(["runs/index"], ["runs/cat"])     # then: uvicorn.run(app, host="127.0.0.1")
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from PIL import Image

from fashionlens.app.uploads import (
    MAX_BYTES,
    MAX_DECODES,
    MAX_PIXELS,
    UPLOAD_SIDE,
    UploadError,
    decode_image,
)
from fashionlens.errors import InvalidInputError

HERE = Path(__file__).parent
THUMB_SIZE = 256  # longest side of a served thumbnail
HIDDEN_COLUMNS = ("id", "text", "image")
MAX_FACET_VALUES = 200  # columns with more distinct values are not offered as filter menus


class Served:
    """What one server process serves: named indexes, categorizers, an optional captioner.

    Torch modules and HF tokenizers are not safe to call from several threads at once, so every
    model call goes through `self.lock`; index look-ups (numpy/faiss, read-only) run outside it.
    Uploads are decoded outside it, on a pool of `max_decodes` threads (see `decode_upload`).
    """

    def __init__(self, indexes: dict[str, Any], categorizers: dict[str, Any] | None = None,
                 captioner: Any = None, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS,
                 query_cache: int = 1024, optimize: bool = True, upload_side: int = UPLOAD_SIDE,
                 max_decodes: int = MAX_DECODES):
        if not indexes:
            raise InvalidInputError("nothing to serve: give at least one index directory")
        self.indexes = indexes
        self.categorizers = categorizers or {}
        self.captioner = captioner
        self.max_bytes, self.max_pixels, self.upload_side = max_bytes, max_pixels, upload_side
        self.lock = threading.Lock()
        self._decoder = ThreadPoolExecutor(max_decodes, thread_name_prefix="fashionlens-decode")
        self._cache_lock = threading.Lock()  # guards the query cache and the pending-query queues
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._queries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._query_cache = query_cache
        self._fragments: OrderedDict[tuple[Any, ...], Any] = OrderedDict()  # rendered page parts (`fragment`)
        self.facets = {name: _facets(idx.catalog.df) for name, idx in indexes.items()}
        # result rows are taken from an Arrow copy of each catalog: 0.1 ms for 12 rows, pandas iloc 2.6 ms
        self._tables = {name: _arrow_table(idx.catalog.df) for name, idx in indexes.items()}
        # request-time encoders: e.g. the text tower in ONNX Runtime (same vectors, less CPU per query)
        self.encoders = {name: idx.encoder.for_serving() if optimize else idx.encoder for name, idx in indexes.items()}

    # ---- look-ups ---------------------------------------------------------------------------
    def index(self, name: str | None) -> tuple[str, Any]:
        if not name:
            name = next(iter(self.indexes))
        if name not in self.indexes:
            raise HTTPException(404, f"unknown index '{name}'; served: {', '.join(self.indexes)}")
        return name, self.indexes[name]

    def categorizer(self, name: str | None) -> tuple[str, Any]:
        if not self.categorizers:
            raise HTTPException(404, "no categorizer is served; start the server with --categorizer DIR")
        if not name:
            name = next(iter(self.categorizers))
        if name not in self.categorizers:
            raise HTTPException(404, f"unknown categorizer '{name}'; served: {', '.join(self.categorizers)}")
        return name, self.categorizers[name]

    # ---- uploads ------------------------------------------------------------------------------
    async def decode_upload(self, data: bytes, name: str) -> Image.Image:
        """An upload validated and decoded as RGB, at most `upload_side` px on its longer side.

        A decode briefly holds the decoded pixels (100 MB for a 25 MP PNG, however small the file), so
        only `max_decodes` run at once, each on one of this pool's threads: the other requests wait in
        the event loop holding just their bytes. A semaphore over the request threads would cap the
        decodes too, but each of 32 threads then keeps its own malloc arena of freed 100 MB buffers
        (measured, 32 RGB 5000 px PNGs at once: +1.8 GB RSS that way, +0.3 GB on this pool; see
        docs/reliability.md). Decoding is CPU-bound, so more at once would not finish sooner.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._decoder, decode_image, data, name, self.max_pixels,
                                          self.upload_side)

    # ---- model calls (locked) -----------------------------------------------------------------
    def search_text(self, index_name: str, query: str, k: int, mask: np.ndarray | None = None,
                    mode: str | None = None) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Top-k (scores, positions) of one text query, shape (1, k), and each hit's "why".

        `mode`: hybrid | vector | keyword (None: the index's default, see `SearchIndex.resolve_mode`).
        Concurrent queries are served together: whoever holds the model lock encodes every query queued
        meanwhile in one forward (minus those in the LRU cache of popular queries) and runs the
        unfiltered ones as one batched vector search, so the index is read once for all of them (exact
        search over 40k x 256 floats is memory-bound: ~5 ms for one query, ~11 for eight). A request
        queues its text first and fetches its word side (no model) while that runs; fusion and the
        "why" of its hits are done in its own thread, after the lock is released.
        """
        idx = self.indexes[index_name]
        mode, _ = idx.resolve_mode(mode)
        slot: dict[str, Any] = {"text": query.strip(), "k": k, "mask": mask, "mode": mode}
        if mode != "keyword":
            with self._cache_lock:
                self._pending.setdefault(index_name, []).append(slot)
        words = None if mode == "vector" else idx.keyword_side(slot["text"], max(idx.fusion.candidates, k), mask)
        vec = side = None
        if mode != "keyword":
            with self.lock:
                if "vec" not in slot and "error" not in slot:
                    with self._cache_lock:
                        batch = self._pending.pop(index_name, [])
                    try:
                        self._encode_batch(index_name, batch)
                    except Exception as e:  # every waiting request gets the error, not a hang
                        for b in batch:
                            b.setdefault("error", e)
            if "error" in slot:
                raise slot["error"]
            vec, side = slot["vec"][None], slot["side"]
        pos, sc, why = idx.rank([slot["text"]], vec, k, mask, mode, None if words is None else [words], side)[0]
        scores = np.full((1, k), -np.inf, dtype=np.float32)
        rows = np.full((1, k), -1, dtype=np.int64)
        n = min(k, len(pos))
        scores[0, :n], rows[0, :n] = sc[:n], pos[:n]
        return scores, rows, why[:n]

    def _encode_batch(self, index_name: str, batch: list[dict[str, Any]]) -> None:
        """Each queued slot's query vector ("vec") and vector-side hits ("side"): one forward for the
        texts not in the query cache, one index scan for the unfiltered slots, one each for the others."""
        idx = self.indexes[index_name]
        keys = [(index_name, b["text"].lower()) for b in batch]
        with self._cache_lock:
            vecs = [self._queries.get(key) for key in keys]
        todo = [i for i, v in enumerate(vecs) if v is None]
        if todo:
            new = self.encoders[index_name].encode_texts([batch[i]["text"] for i in todo])
            with self._cache_lock:
                for i, v in zip(todo, new, strict=True):
                    vecs[i] = v
                    self._queries[keys[i]] = v
                    self._queries.move_to_end(keys[i])
                while len(self._queries) > self._query_cache:
                    self._queries.popitem(last=False)
        plain = [i for i, b in enumerate(batch) if b["mask"] is None]
        for part in [plain] * bool(plain) + [[i] for i, b in enumerate(batch) if b["mask"] is not None]:
            depth = max(b["k"] if b["mode"] == "vector" else max(idx.fusion.candidates, b["k"])
                        for b in (batch[i] for i in part))
            q = np.stack([vecs[i] for i in part])
            vs, vp = idx.vector_side(q, depth, batch[part[0]]["mask"])
            for j, i in enumerate(part):
                batch[i]["vec"], batch[i]["side"] = q[j], (vs[j : j + 1], vp[j : j + 1])

    def image_vector(self, index_name: str, image: Image.Image) -> np.ndarray:
        with self.lock:
            return self.encoders[index_name].encode_images([image])

    def categorize(self, name: str, image: Image.Image, k: int = 5) -> list[tuple[str, float]]:
        with self.lock:
            return self.categorizers[name].predict_top([image], k=k)[0]

    def caption(self, image: Image.Image) -> str | None:
        if self.captioner is None:
            return None
        with self.lock:
            return self.captioner.caption([image])[0]

    def warm_up(self) -> None:
        """Load every encoder now (not on the first request) and run each model once."""
        probe = Image.new("RGB", (64, 64), (128, 128, 128))
        for name in self.indexes:
            self.search_text(name, "warm up", 1)
            self.image_vector(name, probe)
        for name in self.categorizers:
            self.categorize(name, probe)

    def fragment(self, key: tuple[Any, ...], render: Any, size: int = 256) -> Any:
        """A rendered page part (e.g. the filter menus) by key, rendered on first use; the `size` latest kept."""
        with self._cache_lock:
            out = self._fragments.get(key)
        if out is None:
            out = render()
            with self._cache_lock:
                self._fragments[key] = out
                while len(self._fragments) > size:
                    self._fragments.popitem(last=False)
        return out

    # ---- results ------------------------------------------------------------------------------
    def rows(self, index_name: str, scores: np.ndarray, positions: np.ndarray,
             whys: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """JSON-ready hits for (scores, row positions) of one query; -1 positions are padding.
        `whys` (one per kept hit) says what matched each hit."""
        keep = positions >= 0
        recs = self._tables[index_name].take(positions[keep]).to_pylist()
        out = [self.item(index_name, r, float(s)) for r, s in zip(recs, scores[keep], strict=True)]
        for hit, why in zip(out, whys or [], strict=False):
            hit["why"] = why
        return out

    def item(self, index_name: str, row: dict[str, Any], score: float | None = None) -> dict[str, Any]:
        """One catalog row for the outside world: no server paths, no NaN, thumbnail and page URLs."""
        item_id = str(row["id"])
        out: dict[str, Any] = {"id": item_id, "text": _clean(row.get("text"))}
        if score is not None:
            out["score"] = round(score, 5)
        out |= {k: _clean(v) for k, v in row.items() if k not in HIDDEN_COLUMNS}
        out["thumb"] = f"/thumbs/{item_id}?index={index_name}"
        out["url"] = f"/items/{item_id}?index={index_name}"
        return out


def _clean(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _arrow_table(df) -> Any:
    import pyarrow as pa

    return pa.Table.from_pandas(df, preserve_index=False)


def _facets(df) -> dict[str, list[str]]:
    """Filterable columns and their values (for the web page's menus)."""
    out = {}
    for col in df.columns:
        if col in HIDDEN_COLUMNS or df[col].dtype.kind in "fc":
            continue
        vals = df[col].dropna().astype(str).unique()
        if 1 < len(vals) <= MAX_FACET_VALUES:
            out[col] = sorted(vals)
    return out


def load_dirs(index_dirs: Sequence[str | Path], categorizer_dirs: Sequence[str | Path] = ()
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Open every index and categorizer directory, named after its folder (repeats get a suffix)."""
    from fashionlens.search.index import SearchIndex

    indexes = {_unique(Path(d).name, i, index_dirs): SearchIndex(d) for i, d in enumerate(index_dirs)}
    cats: dict[str, Any] = {}
    if categorizer_dirs:
        from fashionlens.categorize.categorizer import Categorizer

        cats = {_unique(Path(d).name, i, categorizer_dirs): Categorizer.load(d) for i, d in enumerate(categorizer_dirs)}
    return indexes, cats


def _unique(name: str, i: int, dirs: Sequence[Any]) -> str:
    earlier = [Path(d).name for d in dirs[:i]]
    return name if name not in earlier else f"{name}-{i + 1}"


def create_app(index_dirs: Sequence[str | Path] = (), categorizer_dirs: Sequence[str | Path] = (), *,
               indexes: dict[str, Any] | None = None, categorizers: dict[str, Any] | None = None,
               captioner: Any = None, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS,
               upload_side: int = UPLOAD_SIDE, max_decodes: int = MAX_DECODES,
               warm_up: bool = True, optimize: bool = True) -> FastAPI:
    """The FastAPI app. Directories are loaded here, once, and every model is run once (`warm_up`)
    so no request pays for loading. Ready objects may be injected as well: `indexes={"name":
    SearchIndex}`, `categorizers={"name": obj with predict_top(images, k)}`, `captioner` = anything
    with `caption(images) -> list[str]`, or a captioner's registry name / local folder. `optimize`:
    encode requests with each encoder's `for_serving()` version (e.g. ONNX Runtime text towers).
    Uploads: at most `max_bytes` and `max_pixels`, decoded to `upload_side` px, `max_decodes` at once."""
    from fashionlens.app import api, web

    loaded_idx, loaded_cats = load_dirs(index_dirs, categorizer_dirs)
    if isinstance(captioner, str):
        from fashionlens.categorize.heads import build_captioner

        captioner = build_captioner(captioner)
    served = Served(loaded_idx | (indexes or {}), loaded_cats | (categorizers or {}), captioner,
                    max_bytes=max_bytes, max_pixels=max_pixels, optimize=optimize, upload_side=upload_side,
                    max_decodes=max_decodes)
    if warm_up:
        served.warm_up()

    app = FastAPI(title="fashionlens", version="1",
                  description="Search a fashion catalog by text or photo, find similar items, categorize photos.")
    app.state.served = served
    app.state.templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.add_middleware(BodyLimit, max_bytes=max_bytes + 64 * 1024)  # multipart framing slack
    app.include_router(api.router)
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.add_api_route("/thumbs/{item_id}", thumbnail, methods=["GET"], tags=["web"],
                      summary="Item thumbnail (JPEG, cacheable)")
    app.add_api_route("/healthz", healthz, methods=["GET"], tags=["api"])
    _error_handlers(app)
    return app


SERVE_ENV = "FASHIONLENS_SERVE"  # settings handed to worker processes (`fashionlens serve --workers N`)


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: each one loads the directories named in $FASHIONLENS_SERVE
    (JSON written by `fashionlens serve`) and sets its own thread counts."""
    cfg = json.loads(os.environ[SERVE_ENV])
    set_threads(int(cfg.get("threads", 1)))
    return create_app(cfg["index"], cfg.get("categorizer", []), captioner=cfg.get("captioner"),
                      max_bytes=int(cfg.get("max_bytes", MAX_BYTES)), optimize=bool(cfg.get("optimize", True)))


def set_threads(n: int) -> None:
    """CPU threads for torch and faiss in this process."""
    import faiss
    import torch

    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)


# ---- thumbnails -------------------------------------------------------------------------------
def thumbnail(request: Request, item_id: str, index: str | None = None) -> Response:
    """The item's photo, shrunk to THUMB_SIZE, with Cache-Control and an ETag (304 when unchanged)."""
    served: Served = request.app.state.served
    name, idx = served.index(index)
    try:
        pos = idx.index.position(item_id)
    except KeyError:
        raise HTTPException(404, f"no item with id '{item_id}' in index '{name}'") from None
    path = Path(idx.catalog.df["image"].iloc[pos])
    try:
        st = path.stat()
    except OSError:
        raise HTTPException(404, f"item '{item_id}': its photo is missing on the server") from None
    etag = '"' + hashlib.sha1(f"{path}:{st.st_mtime_ns}:{st.st_size}:{THUMB_SIZE}".encode()).hexdigest()[:20] + '"'
    headers = {"ETag": etag, "Cache-Control": "public, max-age=86400"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    data = _thumb_bytes(str(path), st.st_mtime_ns)
    if data is None:
        raise HTTPException(404, f"item '{item_id}': its photo cannot be read")
    return Response(data, media_type="image/jpeg", headers=headers)


@lru_cache(maxsize=4096)
def _thumb_bytes(path: str, mtime_ns: int) -> bytes | None:  # mtime in the key: a changed file is re-read
    from fashionlens.catalog import ImageError, open_image

    try:
        im = open_image(path)
    except ImageError:
        return None
    im.thumbnail((THUMB_SIZE, THUMB_SIZE))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def healthz(request: Request) -> dict[str, Any]:
    served: Served = request.app.state.served
    return {"status": "ok", "indexes": len(served.indexes), "categorizers": len(served.categorizers)}


# ---- errors: every 4xx is JSON with a message (HTML for browsers on web pages) ------------------
def _error_handlers(app: FastAPI) -> None:
    def respond(request: Request, status: int, message: str) -> Response:
        wants_html = "text/html" in request.headers.get("accept", "")
        if wants_html and not request.url.path.startswith(("/api", "/thumbs", "/healthz")):
            return request.app.state.templates.TemplateResponse(
                request, "error.html", {"status": status, "message": message}, status_code=status)
        return JSONResponse({"error": message, "status": status}, status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return respond(request, exc.status_code, str(exc.detail))

    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def starlette_error(request: Request, exc: StarletteHTTPException) -> Response:
        msg = str(exc.detail) if exc.status_code != 404 or exc.detail != "Not Found" else f"no page at {request.url.path}"
        return respond(request, exc.status_code, msg)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for e in exc.errors():
            loc = [str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path")]
            where = ".".join(loc) or "request"
            if e.get("type") == "missing" and e.get("loc", ("",))[0] == "body":
                parts.append(f"missing form field '{where}' (send the photo as multipart/form-data field 'file')")
            else:
                parts.append(f"{where}: {e.get('msg')}")
        return respond(request, 422, "; ".join(parts))

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, exc: UploadError) -> Response:
        return respond(request, exc.status, str(exc))

    @app.exception_handler(KeyError)
    async def key_error(request: Request, exc: KeyError) -> Response:  # unknown filter column, unknown id
        return respond(request, 400, str(exc.args[0]) if exc.args else "unknown key")

    @app.exception_handler(ValueError)
    async def value_error(request: Request, exc: ValueError) -> Response:  # bad filter, empty query
        return respond(request, 400, str(exc))


class BodyLimit:
    """ASGI middleware: refuse request bodies over `max_bytes` (413) before they are parsed or spooled."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await _too_large(self.max_bytes, receive, send)
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            msg = await receive()
            seen += len(msg.get("body", b""))
            if seen > self.max_bytes:
                # an HTTPException passes FastAPI's form parser unchanged (other errors become 400)
                raise HTTPException(413, f"request body is larger than the limit of {self.max_bytes // (1024 * 1024)} MB")
            return msg

        await self.app(scope, limited, send)


async def _too_large(limit: int, receive: Any, send: Any) -> None:
    resp = JSONResponse({"error": f"upload is larger than the limit of {limit // (1024 * 1024)} MB", "status": 413},
                        status_code=413)
    await resp({"type": "http"}, receive, send)


__all__ = ["Served", "app_from_env", "create_app", "load_dirs", "set_threads"]
