"""`fashionlens search INDEX --queries FILE --mode ...` on a stand-in index (tests/search/stand_in.py)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from fashionlens.cli.main import app
from fashionlens.search.index import SearchIndex
from tests.search.stand_in import build

runner = CliRunner()


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    return build(tmp_path_factory.mktemp("cli_batch")).folder


def test_queries_file_answers_every_line_in_one_process(index_dir, tmp_path):
    qfile = tmp_path / "queries.txt"
    qfile.write_text("red floral summer dress\n\n  blue tee  \nblack sneakers\n")
    res = runner.invoke(app, ["search", str(index_dir), "--queries", str(qfile), "--top", "3", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [o["query"] for o in out] == ["red floral summer dress", "blue tee", "black sneakers"]  # blank lines skipped
    idx = SearchIndex(index_dir)
    for o in out:
        assert o["mode"] == "hybrid" and len(o["results"]) == 3
        assert [r["id"] for r in o["results"]] == [h["id"] for h in idx.search(o["query"], k=3)]
        assert {"id", "score", "why"} <= set(o["results"][0])
    table = runner.invoke(app, ["search", str(index_dir), "--queries", str(qfile), "--top", "2"])
    assert table.exit_code == 0 and table.stdout.count("results for") == 3 and "words:" in table.stdout


def test_mode_vector_uses_photos_only(index_dir):
    res = runner.invoke(app, ["search", str(index_dir), "floral", "--mode", "vector", "--top", "24", "--json"])
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert body["query"] == "floral" and body["mode"] == "vector" and body["note"] is None
    assert all(r["why"]["terms"] == [] for r in body["results"])
    kw = json.loads(runner.invoke(app, ["search", str(index_dir), "floral", "--mode", "keyword", "--json"]).stdout)
    assert kw["results"] and all("Floral" in r["text"] for r in kw["results"])


@pytest.mark.parametrize(("args", "message"), [
    (["--mode", "fuzzy"], "unknown search mode 'fuzzy'"),
    (["--queries", "{missing}"], "queries file not found"),
    (["--queries", "{empty}"], "has no queries"),
    ([], "give exactly one of a QUERY or --queries FILE"),
])
def test_bad_batch_input_is_one_line_exit_2(index_dir, tmp_path, args, message):
    (tmp_path / "empty.txt").write_text("\n  \n")
    args = [a.format(missing=tmp_path / "nope.txt", empty=tmp_path / "empty.txt") for a in args]
    query = ["red"] if args and args[0] == "--mode" else []
    res = runner.invoke(app, ["search", str(index_dir), *query, *args])
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output


def test_index_without_texts_notes_the_fallback(tmp_path):
    folder = build(tmp_path, with_texts=False).folder
    res = runner.invoke(app, ["search", str(folder), "red dress", "--mode", "hybrid", "--json"])
    assert res.exit_code == 0, res.output
    assert "note: hybrid search needs item names" in res.stderr
    assert json.loads(res.stdout)["mode"] == "vector"


def test_index_command_defaults_to_the_search_default_encoder() -> None:
    """`fashionlens index` without --encoder builds what the Python default builds (colour-fused)."""
    import inspect

    from fashionlens.cli.search import index_cmd
    from fashionlens.search.index import BuildConfig

    default = inspect.signature(inspect.unwrap(index_cmd)).parameters["encoder"].default
    assert getattr(default, "default", default) == BuildConfig().encoder
