"""CLI: human tables by default, --json for machines, one clear line + exit 2 for user errors."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from fashionlens.catalog import load_catalog
from fashionlens.cli.main import app
from fashionlens.search.index import BuildConfig, SearchIndex, build_index
from fashionlens.train.config import AlignConfig

runner = CliRunner()


@pytest.fixture(scope="module")
def index_dir(myntra_small, tmp_path_factory, emb_cache):
    out = tmp_path_factory.mktemp("cli_idx")
    cfg = BuildConfig(cache_dir=emb_cache, align=AlignConfig(epochs=5, batch_size=64))
    build_index(myntra_small.subset(range(120)), out, cfg, progress=False)
    return out


def _err(result) -> str:
    return result.stderr if hasattr(result, "stderr") else result.output


def test_help_is_fast_and_imports_no_torch():
    code = "import sys; from fashionlens.cli.main import app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_search_json_and_table(index_dir):
    res = runner.invoke(app, ["search", str(index_dir), "blue jeans", "--top", "3", "--json"])
    assert res.exit_code == 0, res.output
    results = json.loads(res.stdout)["results"]
    assert len(results) == 3 and {"id", "score", "text", "image"} <= set(results[0])
    assert results[0]["score"] >= results[1]["score"] >= results[2]["score"]
    table = runner.invoke(app, ["search", str(index_dir), "blue jeans", "--top", "2"])
    assert table.exit_code == 0 and results[0]["id"] in table.stdout


def test_similar_by_id_json(index_dir, myntra_small):
    item = myntra_small.ids[0]
    res = runner.invoke(app, ["similar", str(index_dir), "--id", item, "--top", "4", "--json"])
    assert res.exit_code == 0, res.output
    ids = [r["id"] for r in json.loads(res.stdout)["results"]]
    assert len(ids) == 4 and item not in ids


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "{idx}", "shoes", "--filter", "colour=Red"], "unknown filter column 'colour'"),
        (["search", "{idx}", "shoes", "--encoder", "dinov2-vits14"], "built with encoder"),
        (["search", "/no/such/index", "shoes"], "not a fashionlens index"),
        (["similar", "{idx}", "--id", "does-not-exist"], "no item with id"),
        (["index", "/no/such/catalog", "--out", "/tmp/x"], "does not exist"),
        (["index", "{idx}", "--out", "/tmp/x", "--encoder", "no-such-encoder"], "unknown encoder"),
    ],
)
def test_user_errors_are_one_line_exit_2(index_dir, args, message):
    res = runner.invoke(app, [a.replace("{idx}", str(index_dir)) for a in args])
    assert res.exit_code == 2, res.output
    err = _err(res)
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) >= 1


def test_unknown_encoder_lists_known_ones(tmp_path, tiny_kaggle):
    res = runner.invoke(app, ["index", str(tiny_kaggle), "--out", str(tmp_path / "o"), "--encoder", "nope"])
    assert res.exit_code == 2 and "efficientnet-lite0" in _err(res) and "minilm-l6" in _err(res)


def test_evaluate_retrieval_json(index_dir, myntra_dir, tmp_path):
    res = runner.invoke(app, ["evaluate", "retrieval", str(index_dir), "--queries", str(myntra_dir), "--limit", "60", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    t2i = out["text_to_image"]
    assert {"recall@1", "recall@5", "recall@10", "mrr", "ndcg@10", "chance@10", "n_queries", "gallery_size"} <= set(t2i)
    index_ids, query_ids = set(SearchIndex(index_dir).catalog.ids), set(load_catalog(myntra_dir, limit=60).ids)
    assert out["gallery"]["n_distractors"] == len(index_ids - query_ids) > 0  # the whole catalog by default
    assert t2i["gallery_size"] == 60 + out["gallery"]["n_distractors"]
    i2i = out["image_to_image"]
    assert {"precision@10_articleType", "precision@10_articleType_baseColour"} <= set(i2i)
    for d in (t2i, i2i):
        for m, (lo, hi) in d["ci95"].items():
            assert lo <= d[m] <= hi and 0 <= d["chance"][m] < 1
    alone = runner.invoke(app, ["evaluate", "retrieval", str(index_dir), "--queries", str(myntra_dir), "--limit", "60",
                                "--gallery", "queries"])
    assert alone.exit_code == 0, alone.output
    assert "among 60 photos" in alone.stdout and "95% CI" in alone.stdout
