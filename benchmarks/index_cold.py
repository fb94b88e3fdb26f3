"""`fashionlens index` end to end from a cold embedding cache: a trained encoder vs open_clip ViT-B-32.

Each row is one fresh `fashionlens index` process (imports, model load, decode, embed, save) on the
same first N Myntra photos, timed from outside, with its peak RSS and the load average beside it.
Rows: the trained default encoder (aligned Lite0.colour + MiniLM, what `fashionlens index` builds)
with a cold ONNX export cache (a fresh machine), the same with the exports cached (every later run:
no torch import), the same in torch, and open_clip ViT-B-32 fp32 (random init: its pretrained
weights cannot be downloaded here; the compute is the same).

    .venv/bin/python benchmarks/index_cold.py --n 2000 --myntra ../shared/data/myntra
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def vit_b32_random() -> object:
    """open_clip ViT-B-32 (fp32, random init) as a fashionlens encoder, for `--encoder index_cold:vit_b32_random`."""
    import open_clip

    from fashionlens.encoders.base import Preprocess
    from fashionlens.encoders.clip import OPENAI_MEAN, OPENAI_STD, OpenClipEncoder

    model = open_clip.create_model("ViT-B-32", pretrained=None)
    return OpenClipEncoder("open_clip-ViT-B-32-random", model, open_clip.get_tokenizer("ViT-B-32"),
                           Preprocess(size=224, mean=OPENAI_MEAN, std=OPENAI_STD), device="cpu", precision="fp32")


def run_index(args: argparse.Namespace, encoder: str, cache: Path, out: Path, env: dict[str, str]) -> tuple[float, float, int]:
    """Seconds, CPU seconds (user + sys: less sensitive to other jobs than the wall time) and peak
    RSS (MB) of one `fashionlens index` process."""
    shutil.rmtree(out, ignore_errors=True)
    rss_file = out.parent / "rss.txt"
    cmd = ["/usr/bin/time", "-f", "%M %U %S", "-o", str(rss_file), sys.executable, "-m", "fashionlens.cli.main", "index",
           args.myntra, "--out", str(out), "--limit", str(args.n), "--encoder", encoder]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env={**env, "FASHIONLENS_CACHE": str(cache)}, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - t
    rss, user, sys_s = rss_file.read_text().split()[-3:]
    return seconds, float(user) + float(sys_s), int(rss) // 1024


def machine() -> str:
    """CPU model, cores, clock and the load average: what a reader needs beside the seconds."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "?")
    mhz = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("cpu MHz")), "?")
    return f"{model}, {os.cpu_count()} cores at {mhz} MHz, load {os.getloadavg()[0]:.1f} at the start"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--myntra", default="../shared/data/myntra")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--train-n", type=int, default=4000, help="items the trained encoder is aligned on")
    ap.add_argument("--work", default=None, help="folder for caches and indexes (default: a temp dir)")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="fl-index-cold-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FASHIONLENS_PROGRESS": "0",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    trained = work / "trained"
    if not (trained / "encoder" / "encoder.json").exists():  # the trained encoder: not timed
        subprocess.run([sys.executable, "-m", "fashionlens.cli.main", "index", args.myntra, "--out", str(trained),
                        "--limit", str(args.train_n)], check=True, env={**env, "FASHIONLENS_CACHE": str(work / "train-cache")},
                       stdout=subprocess.DEVNULL)
    run = f"run:{trained / 'encoder'}"
    print(f"`fashionlens index` of the first {args.n} Myntra photos, one fresh process per row, empty embedding cache; "
          f"{machine()}\n")
    print("| encoder | runtime | ONNX export | seconds | photos/s end to end | × open_clip | CPU s | peak RSS MB | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = [("open_clip ViT-B-32 fp32", "index_cold:vit_b32_random", "torch", "", None),
            ("trained (default: aligned Lite0.colour + MiniLM)", run, "onnx (default)", "cold", None),
            ("trained (default: aligned Lite0.colour + MiniLM)", run, "onnx (default)", "cached", "keep"),
            ("trained (default: aligned Lite0.colour + MiniLM)", run, "torch", "", "torch")]
    base = prev = None
    for label, enc, runtime, export, mode in rows:
        cache = work / f"cache-{time.monotonic_ns()}"
        if mode == "keep":  # a fresh embedding cache beside the export the previous row made
            cache.mkdir()
            shutil.copytree(prev / "onnx", cache / "onnx")
        e = dict(env, FASHIONLENS_RUNTIME="torch") if mode == "torch" else env
        s, cpu, rss = run_index(args, enc, cache, work / "idx", e)
        prev = cache
        base = base or s
        print(f"| {label} | {runtime} | {export} | {s:.1f} | {args.n / s:.1f} | {base / s:.1f} | {cpu:.1f} | {rss} | "
              f"{os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
