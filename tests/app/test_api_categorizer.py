"""The real Categorizer behind /api/categorize (loaded from a saved directory), and `fashionlens serve`."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def saved_categorizer(app_catalog, app_cache, tmp_path_factory):
    try:
        from fashionlens.categorize.categorizer import CategorizeConfig, Categorizer
    except ImportError as e:  # written in parallel by another engineer
        pytest.skip(f"fashionlens.categorize.categorizer.Categorizer is not importable yet: {e}")
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
    from fashionlens.cli.main import app as cli

    calls = {}
    monkeypatch.setattr(server, "set_threads", lambda n: calls.setdefault("threads", n))  # process-wide: not in tests
    monkeypatch.setattr(server, "create_app", lambda *a, **kw: calls.setdefault("create", (a, kw)) and "APP")
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.setdefault("run", (app, kw)))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # restored after the test: the command sets it
    res = CliRunner().invoke(cli, ["serve", str(small_index_dir), "--port", "8123", "--max-mb", "3"])
    assert res.exit_code == 0, res.output
    assert os.environ["OMP_NUM_THREADS"] == "1"  # no spinning OpenMP pool beside the one model thread
    (dirs, cats), kw = calls["create"]
    assert list(map(str, dirs)) == [str(small_index_dir)] and cats == [] and kw["max_bytes"] == 3 * 1024 * 1024
    assert kw["optimize"] is True
    assert calls["run"] == ("APP", {"host": "127.0.0.1", "port": 8123, "log_level": "warning"})
    assert calls["threads"] == 1

    calls.clear()
    assert CliRunner().invoke(cli, ["serve", str(small_index_dir), "--no-optimize"]).exit_code == 0
    assert calls["create"][1]["optimize"] is False

    res = CliRunner().invoke(cli, ["serve", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "missing: no such directory" in res.output
    assert "--categorizer" in CliRunner().invoke(cli, ["serve", "--help"]).output


def test_serve_workers_build_the_same_app_from_the_environment(monkeypatch, small_index_dir, tmp_path):
    """`--workers 2`: uvicorn gets the factory's import string; each worker loads the named directories."""
    import uvicorn
    from fastapi.testclient import TestClient

    import fashionlens.app.server as server
    import fashionlens.cli.serve as serve
    from fashionlens.cli.main import app as cli

    calls = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.setdefault("run", (app, kw)))
    monkeypatch.setattr(serve, "run_workers", lambda host, port, n: calls.setdefault("workers", (host, port, n)))
    monkeypatch.delenv(server.SERVE_ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    res = CliRunner().invoke(cli, ["serve", str(small_index_dir), "--workers", "2", "--max-mb", "3", "--port", "8124"])
    assert res.exit_code == 0, res.output
    assert calls["workers"] == ("127.0.0.1", 8124, 2) and "run" not in calls  # no model loaded in the parent
    empty = tmp_path / "empty"
    empty.mkdir()
    calls.clear()
    for args in ([str(empty)], [str(small_index_dir), "--categorizer", str(empty)]):
        res = CliRunner().invoke(cli, ["serve", *args, "--workers", "2"])
        assert res.exit_code == 2 and str(empty) in res.output and "workers" not in calls  # no restart loop
    # what a worker process does with the environment the command left
    monkeypatch.setattr(server, "set_threads", lambda n: calls.setdefault("threads", n))
    with TestClient(server.app_from_env()) as client:
        hits = client.get("/api/search", params={"q": "shirt", "k": 3}).json()["results"]
        assert len(hits) == 3
        assert client.app.state.served.max_bytes == 3 * 1024 * 1024
    assert calls["threads"] == 1


def test_worker_socket_gets_tcp_nodelay_connections():
    """Regression: without IPPROTO_TCP on the shared socket asyncio skips TCP_NODELAY (40 ms per reply)."""
    import asyncio
    import socket

    from uvicorn import Config

    from fashionlens.cli.serve import tcp_listener

    sock = tcp_listener(Config("x:y", host="127.0.0.1", port=0))
    assert sock.proto == socket.IPPROTO_TCP
    port = sock.getsockname()[1]
    seen = {}

    async def main():
        def on_connect(reader, writer):
            seen["nodelay"] = writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            writer.close()

        server = await asyncio.start_server(on_connect, sock=sock)
        _, w = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        w.close()
        server.close()

    asyncio.run(main())
    assert seen["nodelay"] != 0


def test_two_real_worker_processes_answer_searches(small_index_dir):
    """`fashionlens serve --workers 2` end to end: separate processes, one port, searches answered."""
    import signal
    import socket
    import subprocess
    import sys
    import time
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FASHIONLENS_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "fashionlens.cli.main", "serve", str(small_index_dir),
                             "--port", str(port), "--workers", "2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 240
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, "server did not come up"
            time.sleep(0.5)

        def search(q):
            return httpx.get(f"{base}/api/search", params={"q": q, "k": 3}, timeout=60).json()

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(search, [f"blue shirt {i}" for i in range(16)]))
        assert all(len(a["results"]) == 3 for a in answers)
        assert answers[0]["results"] == search("blue shirt 0")["results"]  # same answer from any worker
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl+C: the supervisor stops its workers
        assert proc.wait(60) is not None
