"""Concurrent "bomb-ish" uploads against the real app, measuring this process's RSS growth.

A bomb-ish upload is a small PNG that declares many pixels: a solid 5000 x 5000 photo is 35 KB
(grey) or 84 KB (RGB) on the wire and 25 M pixels (the default cap) once decoded.
tests/app/test_upload_memory.py runs `burst` against an app over the session's loaded index; by
hand, in a fresh process, to compare two versions:

    PYTHONPATH=src:. python -m tests.app.upload_load INDEX_DIR --clients 32 [--mode RGB]

Prints one JSON line: RSS before the burst, peak RSS during it (VmHWM, reset just before), their
difference, wall and median latency, and how many uploads got the answer their colour gets as a
small photo (same similar-item ids, same top colour).
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

COLOURS = {"L": {"black": 20, "white": 240}, "RGB": {"red": (220, 30, 30), "blue": (30, 40, 220)}}


def png(mode: str, colour: int | tuple[int, int, int], side: int) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (side, side), colour).save(buf, "PNG", compress_level=9)
    return buf.getvalue()


def status_mb(field: str) -> float:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def reset_peak_rss() -> None:
    """Set VmHWM to the current RSS (Linux >= 4.0), so the next VmHWM is this burst's own peak."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def answer(client, endpoint: str, name: str, data: bytes) -> tuple[int, object]:
    r = client.post(endpoint, files={"file": (name, data, "image/png")})
    if r.status_code != 200:
        return r.status_code, r.text
    body = r.json()
    return 200, [h["id"] for h in body["results"]] if endpoint == "/api/similar" else body["top"][0]["label"]


def burst(client, clients: int = 32, mode: str = "L", side: int = 5000) -> dict:
    """`clients` bomb-ish uploads at once through a TestClient, half to /api/similar, half to
    /api/categorize (with tests.app.conftest.ColourCategorizer served as "colour")."""
    endpoints = ("/api/similar", "/api/categorize")
    colours = COLOURS[mode]
    bombs = {c: png(mode, v, side) for c, v in colours.items()}
    want = {(c, e): answer(client, e, "small.png", png(mode, v, 64)) for c, v in colours.items() for e in endpoints}
    jobs = [(list(colours)[i % 2], endpoints[(i // 2) % 2]) for i in range(clients)]
    start = threading.Barrier(clients)

    def upload(job: tuple[str, str]) -> tuple[bool, float]:
        start.wait()  # every client sends at the same moment
        t = time.perf_counter()
        got = answer(client, job[1], f"bomb-{job[0]}.png", bombs[job[0]])
        return got == want[job], time.perf_counter() - t

    gc.collect()
    rss0 = status_mb("VmRSS")
    reset_peak_rss()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(upload, jobs))
    wall = time.perf_counter() - t0
    peak = status_mb("VmHWM")
    return {"clients": clients, "side": side, "mode": mode, "png_bytes": len(next(iter(bombs.values()))),
            "rss_before_mb": round(rss0), "rss_peak_mb": round(peak), "growth_mb": round(peak - rss0),
            "wall_s": round(wall, 2), "p50_s": round(statistics.median(s for _, s in results), 2),
            "correct": sum(ok for ok, _ in results), "reference_ok": all(s == 200 for s, _ in want.values())}


def run(index_dir: str, clients: int = 32, side: int = 5000, mode: str = "L", max_decodes: int | None = None) -> dict:
    """`burst` against an app serving `index_dir`, built in this process."""
    from fastapi.testclient import TestClient

    from fashionlens.app.server import create_app
    from tests.app.conftest import ColourCategorizer

    extra = {} if max_decodes is None else {"max_decodes": max_decodes}  # older versions have no such option
    app = create_app([index_dir], categorizers={"colour": ColourCategorizer()}, optimize=False, **extra)
    with TestClient(app) as client:
        return burst(client, clients, mode, side)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index_dir")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--side", type=int, default=5000)
    ap.add_argument("--mode", choices=sorted(COLOURS), default="L")
    ap.add_argument("--max-decodes", type=int, default=None)
    a = ap.parse_args()
    print(json.dumps(run(a.index_dir, a.clients, a.side, a.mode, a.max_decodes)))


if __name__ == "__main__":
    main()
