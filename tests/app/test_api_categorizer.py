"""The real Categorizer behind /api/categorize (loaded from a saved directory), and `fashionlens serve`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def saved_categorizer(app_catalog, app_cache, tmp_path_factory):
    try:
        from fashionlens.tasks.categorize import CategorizeConfig, Categorizer
    except ImportError as e:  # written in parallel by another engineer
        pytest.skip(f"fashionlens.tasks.categorize.Categorizer is not importable yet: {e}")
    cfg = CategorizeConfig(label="articleType", method="probe", augment="none", tta=False, val_size=0)
    out = tmp_path_factory.mktemp("cat") / "articletype"
    Categorizer(cfg, cache_dir=app_cache).fit(app_catalog).save(out)
    return out


def test_real_categorizer_served_from_its_directory(app, saved_categorizer, app_catalog):
    from fastapi.testclient import TestClient

    from fashionlens.app.server import create_app

    served = app.state.served
    real = create_app([], [saved_categorizer], indexes=served.indexes)  # reuse the loaded index
    with TestClient(real) as client:
        info = client.get("/api/indexes").json()["categorizers"]
        assert info[0]["name"] == "articletype" and info[0]["label"] == "articleType" and info[0]["method"] == "probe"
        df = app_catalog.df
        hits = 0
        for path, truth in df[["image", "articleType"]].head(12).itertuples(index=False):
            with open(path, "rb") as fh:
                res = client.post("/api/categorize", files={"file": ("p.jpg", fh.read())})
            assert res.status_code == 200, res.text
            body = res.json()
            assert len(body["top"]) == 5 and "caption" not in body  # no captioner served here
            hits += truth in [t["label"] for t in body["top"]]
        assert hits >= 9  # seen photos: the true type is almost always in the top 5
        bad = client.post("/api/categorize", files={"file": ("x.jpg", b"GIF89a-not-really")})
        assert bad.status_code == 400 and "x.jpg" in bad.json()["error"]


def test_serve_command_binds_localhost_and_loads_once(monkeypatch, small_index_dir, tmp_path):
    import uvicorn

    import fashionlens.app.server as server
    import fashionlens.cli.serve as serve
    from fashionlens.cli.main import app as cli

    calls = {}
    monkeypatch.setattr(serve, "_set_threads", lambda n: calls.setdefault("threads", n))  # process-wide: not in tests
    monkeypatch.setattr(server, "create_app", lambda *a, **kw: calls.setdefault("create", (a, kw)) and "APP")
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.setdefault("run", (app, kw)))
    res = CliRunner().invoke(cli, ["serve", str(small_index_dir), "--port", "8123", "--max-mb", "3"])
    assert res.exit_code == 0, res.output
    (dirs, cats), kw = calls["create"]
    assert list(map(str, dirs)) == [str(small_index_dir)] and cats == [] and kw["max_bytes"] == 3 * 1024 * 1024
    assert calls["run"] == ("APP", {"host": "127.0.0.1", "port": 8123, "log_level": "warning"})
    assert calls["threads"] == 1

    res = CliRunner().invoke(cli, ["serve", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "missing: no such directory" in res.output
    assert "--categorizer" in CliRunner().invoke(cli, ["serve", "--help"]).output
