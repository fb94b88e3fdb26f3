"""`fashionlens index | search | similar | demo`."""

from __future__ import annotations

from pathlib import Path

import typer

from fashionlens.cli.common import friendly_errors, print_json, print_table
from fashionlens.errors import InvalidInputError
from fashionlens.search.filters import parse_filters

RESULT_COLUMNS = ("rank", "id", "score", "text")


def register(app: typer.Typer) -> None:
    app.command("index")(index_cmd)
    app.command("search")(search_cmd)
    app.command("similar")(similar_cmd)
    app.command("demo")(demo_cmd)


@friendly_errors
def index_cmd(
    catalog: Path = typer.Argument(..., help="Kaggle-layout folder, CSV/Parquet table, or folder of labelled images."),
    out: Path = typer.Option(..., "--out", help="Index directory to write."),
    encoder: str = typer.Option("efficientnet-lite0.colour",  # = search.index.DEFAULT_IMAGE_ENCODER
                                help="Registry name, run:<dir> or module:factory."),
    text_encoder: str = typer.Option("minilm-l6", help="Text tower to align with when ENCODER has none."),
    label: str | None = typer.Option("articleType", help="Catalog column that teaches the alignment what 'similar' means ('' = none)."),
    limit: int | None = typer.Option(None, help="Use only the first N items."),
    id_col: str | None = typer.Option(None, "--id-col"),
    image_col: str | None = typer.Option(None, "--image-col"),
    text_col: str | None = typer.Option(None, "--text-col"),
    strict: bool = typer.Option(False, "--strict", help="Fail on the first bad item instead of skipping it."),
    engine: str = typer.Option("local", "--engine", help="Embed photos in this process (local) or on Ray (ray)."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster for --engine ray (ray://host:10001 or auto); default: a local Ray."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Import, validate, embed, align and index a catalog."""
    from fashionlens.catalog import load_catalog
    from fashionlens.encoders.registry import check_name
    from fashionlens.manifest import check_overwrite
    from fashionlens.search.index import INDEX_MARKS, BuildConfig, build_index
    from fashionlens.utils import read_json

    check_name(encoder)
    check_name(text_encoder)
    check_overwrite(out, "index", INDEX_MARKS)  # before importing and embedding, not after
    if engine not in ("local", "ray"):
        raise InvalidInputError(f"unknown --engine '{engine}': use local or ray")
    if address and engine != "ray":
        raise InvalidInputError("--address is only used with --engine ray")
    # photos are decoded once, while embedding, which reports and leaves out those that fail (a
    # second decode here cost ~5 % of a cold index); --strict still stops at the first bad photo
    cat = load_catalog(catalog, id_col=id_col, image_col=image_col, text_col=text_col, strict=strict,
                       limit=limit, check_images=strict, progress=True)
    _report_import(cat, as_json)
    if engine == "ray":
        from fashionlens.embed.ray_engine import warm_cache_ray

        warm_cache_ray(encoder, cat, address=address)  # build_index then finds every photo cached
    idx = build_index(cat, out, BuildConfig(encoder=encoder, text_encoder=text_encoder, label_column=label or None))
    if as_json:  # the index's own report: it also lists photos that failed to decode while embedding
        print_json({"index": str(out), "n_items": len(idx.index), "encoder": idx.info["encoder_name"],
                    "import": read_json(out / "import_report.json")})
    else:
        typer.echo(f"indexed {len(idx.index)} items with {idx.info['encoder_name']} -> {out}")


def _report_import(cat, as_json: bool) -> None:
    rep = cat.report
    if not as_json:
        for issue in rep.issues[:20]:
            typer.echo(f"skipped item {issue.item_id}: {issue.reason}", err=True)
        if rep.n_skipped > 20:
            typer.echo(f"... and {rep.n_skipped - 20} more skipped items", err=True)
    typer.echo(rep.summary(), err=True)


@friendly_errors
def search_cmd(
    index: Path = typer.Argument(..., help="Index directory."),
    query: str | None = typer.Argument(None, help="What to look for, e.g. 'black leather ankle boots'."),
    queries: Path | None = typer.Option(None, "--queries", help="A text file of queries, one per line, all answered in one process."),
    top: int = typer.Option(10, "--top", "-k", min=1),
    filter: list[str] | None = typer.Option(None, "--filter", help="COL=VALUE pre-filter (repeatable)."),
    mode: str | None = typer.Option(None, "--mode", help="hybrid (photos + names + facet boosts), vector (photos only: "
                                    "the gallery's names unused) or keyword (names only); default: hybrid where the index "
                                    "has item texts, vector where it has none."),
    encoder: str | None = typer.Option(None, help="Must match the index's encoder (checked)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Text search over the index: one QUERY, or every line of --queries FILE."""
    from fashionlens.search.index import SearchIndex

    if (query is None) == (queries is None):
        raise InvalidInputError("give exactly one of a QUERY or --queries FILE")
    texts = [query] if query is not None else _read_queries(queries)
    idx = SearchIndex(index)
    idx.check_encoder(encoder)
    used, note = idx.resolve_mode(mode)
    if note:
        typer.echo(f"note: {note}", err=True)
    answers = idx.search_many(texts, top, parse_filters(filter), used)
    if queries is None:
        _show(answers[0], as_json, f"'{query}' ({used})", {"query": query, "mode": used, "note": note})
    elif as_json:
        print_json([{"query": q, "mode": used, "results": a} for q, a in zip(texts, answers)])
    else:
        for q, a in zip(texts, answers):
            _show(a, False, f"'{q}' ({used})")


def _read_queries(path: Path) -> list[str]:
    """Non-blank lines of a queries file (a clear error for a missing, unreadable or empty one)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"queries file not found: {path}") from None
    except UnicodeDecodeError as e:
        raise InvalidInputError(f"queries file {path} is not UTF-8 text: {e.reason} at byte {e.start}") from None
    texts = [t.strip() for t in lines if t.strip()]
    if not texts:
        raise InvalidInputError(f"queries file {path} has no queries (one per line expected)")
    return texts


@friendly_errors
def similar_cmd(
    index: Path = typer.Argument(..., help="Index directory."),
    id: str | None = typer.Option(None, "--id", help="A catalog item id."),
    image: Path | None = typer.Option(None, "--image", help="A photo file."),
    top: int = typer.Option(10, "--top", "-k", min=1),
    filter: list[str] | None = typer.Option(None, "--filter", help="COL=VALUE pre-filter (repeatable)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Image → image: items that look like a catalog item or a photo."""
    from fashionlens.catalog import open_image
    from fashionlens.search.index import SearchIndex

    if (id is None) == (image is None):
        raise InvalidInputError("give exactly one of --id or --image")
    idx = SearchIndex(index)
    img = open_image(image) if image is not None else None
    _show(idx.similar(item_id=id, image=img, k=top, filters=parse_filters(filter)), as_json, str(id or image))


def _show(results: list[dict], as_json: bool, title: str, extra: dict | None = None) -> None:
    if as_json:
        print_json({**(extra or {}), "results": results})
        return
    from fashionlens.search.hybrid import why_line

    rows = [{"rank": i + 1, **r, "why": why_line(r["why"]) if "why" in r else ""} for i, r in enumerate(results)]
    extra = [c for c in ("articleType", "baseColour") if rows and c in rows[0]]
    print_table(rows, [*RESULT_COLUMNS, *extra, *(["why"] if rows and rows[0]["why"] else [])], title=f"results for {title}")


@friendly_errors
def demo_cmd(
    catalog: Path = typer.Option(Path("../shared/data/myntra"), help="A Kaggle 'Fashion Product Images' folder."),
    out: Path = typer.Option(Path("demo_out"), help="Where the index, metrics and gallery go."),
    n_train: int = typer.Option(8000, help="Items to index (and align on)."),
    n_test: int = typer.Option(2000, help="Held-out items to evaluate on (never seen by the index)."),
    seed: int = typer.Option(0),
    as_json: bool = typer.Option(False, "--json", help="Print the summary (metrics, example hits) as JSON; "
                                 "the step-by-step report goes to stderr."),
) -> None:
    """Index a sample of the catalog, evaluate on held-out items, run example queries, save a gallery."""
    from fashionlens.search.demo import run_demo

    summary = run_demo(catalog, out, n_train=n_train, n_test=n_test, seed=seed,
                       echo=lambda s: typer.echo(s, err=as_json))
    if as_json:
        print_json(summary)
