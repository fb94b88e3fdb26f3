"""CLI trust: our errors are one line, bugs keep their traceback, --json is JSON only, progress off a TTY."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import fashionlens.encoders
import fashionlens.train.align
from fashionlens.cli.main import app
from fashionlens.encoders.hub import offline_error
from fashionlens.progress import track
from tests.search.test_failed_photos import write_catalog

runner = CliRunner()
JOINT = "tests.embed.test_store:MeanColour"  # a tiny image+text encoder: no model to load
IMAGE_ONLY, TEXT_ONLY = "tests.search.test_failed_photos:ImageOnly", "tests.search.test_failed_photos:TextOnly"


@pytest.fixture()
def kaggle(tmp_path) -> Path:
    # 400 items: 288 train after the test and validation splits = 2 batches of 256, so 5 epochs are
    # the 10 scheduler steps at which torch's OneCycleLR divided by zero
    return write_catalog(tmp_path / "cat", 400)


# ---- item 10: errors -------------------------------------------------------------------------
def test_categorize_train_with_five_epochs_runs(kaggle, tmp_path):
    out = tmp_path / "model"
    r = runner.invoke(app, ["categorize", "train", str(kaggle), "--label", "articleType", "--encoder", JOINT,
                            "--method", "head", "--epochs", "5", "--augment", "none", "--no-tta", "--out", str(out),
                            "--cache-dir", str(tmp_path / "c")])
    assert r.exit_code == 0, (r.output, r.exception)
    assert "articleType (head, tests.embed.test_store:MeanColour): 320 fit / 80 test items, 2 classes" in r.stdout
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [1, 2, 3, 4, 5]


def test_categorize_train_json(kaggle, tmp_path):
    r = runner.invoke(app, ["categorize", "train", str(kaggle), "--label", "articleType", "--encoder", JOINT,
                            "--method", "probe", "--no-tta", "--out", str(tmp_path / "m"),
                            "--cache-dir", str(tmp_path / "c"), "--json"])
    assert r.exit_code == 0, (r.output, r.exception)
    res = json.loads(r.stdout)  # nothing but the JSON on stdout
    assert res["n_fit"] == 320 and res["n_test"] == 80 and sorted(res["classes"]) == ["Jeans", "Tshirts"]
    assert res["evaluation"]["n"] == 80 and res["evaluation"]["accuracy"] == 1.0


def test_diverged_training_is_one_clear_line(kaggle, tmp_path, monkeypatch):
    def nan_loss(zi, zt, log_scale, *extra_negatives):
        return (zi * zt).sum() * torch.tensor(float("nan"))

    monkeypatch.setattr(fashionlens.train.align, "info_nce", nan_loss)
    r = runner.invoke(app, ["index", str(kaggle), "--limit", "40", "--out", str(tmp_path / "idx"),
                            "--encoder", IMAGE_ONLY, "--text-encoder", TEXT_ONLY, "--label", ""])
    assert r.exit_code == 2, (r.output, r.exception)
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: aligning towers: non-finite loss (nan) at epoch 0") and "Lower the learning rate" in last
    assert "Traceback" not in r.output


@pytest.mark.parametrize("bug", [KeyError("columns"), ValueError("shapes (3,) and (4,) not aligned"),
                                 RuntimeError("CUDA error")])
def test_a_bug_is_not_swallowed_as_a_user_error(monkeypatch, bug):
    def broken(*a, **k):
        raise bug

    monkeypatch.setattr(fashionlens.encoders, "list_encoders", broken)
    r = runner.invoke(app, ["encoders"])
    assert r.exit_code == 1 and r.exception is bug  # the traceback reaches the user (and bug reports)
    assert "error:" not in r.stderr


def test_user_errors_still_are_one_line(tmp_path):
    r = runner.invoke(app, ["search", str(tmp_path), "shoes"])
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and "not a fashionlens index" in r.stderr
    r = runner.invoke(app, ["categorize", "train", str(tmp_path / "nope"), "--label", "x", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "does not exist" in r.stderr


def test_offline_advice_names_only_what_exists():
    msg = str(offline_error("dinov2-vits14", "facebook/dinov2-small"))
    assert "--weights" not in msg  # no command has that option
    assert "fashionlens download dinov2-vits14" in msg and "create('dinov2-vits14', weights=PATH)" in msg
    assert "download" in [c.name for c in app.registered_commands]


# ---- item 5: failed photos ---------------------------------------------------------------------
def test_index_reports_a_photo_that_fails_while_embedding_and_leaves_it_out(tmp_path, monkeypatch):
    import fashionlens.catalog.readers

    cat = write_catalog(tmp_path / "cat", 12, bad=(7,))
    monkeypatch.setattr(fashionlens.catalog.readers, "_check_image", lambda path: None)  # it passes the import
    for _ in range(2):  # the second run reads the cache: the failure is reported again
        r = runner.invoke(app, ["index", str(cat), "--out", str(tmp_path / "idx"), "--encoder", JOINT, "--json"])
        assert r.exit_code == 0, (r.output, r.exception)
        res = json.loads(r.stdout)
        assert res["n_items"] == 11 and [i["id"] for i in res["import"]["issues"]] == ["7"]
        assert any(ln.startswith("warning: item 7:") and "not an image" in ln for ln in r.stderr.splitlines())


def test_index_decodes_photos_once_while_embedding_and_strict_still_stops_at_a_bad_one(tmp_path, monkeypatch):
    import fashionlens.catalog.readers

    cat = write_catalog(tmp_path / "cat", 12, bad=(7,))
    checked: list[str] = []
    real = fashionlens.catalog.readers._check_image
    monkeypatch.setattr(fashionlens.catalog.readers, "_check_image", lambda p: checked.append(p) or real(p))
    r = runner.invoke(app, ["index", str(cat), "--out", str(tmp_path / "idx"), "--encoder", JOINT, "--json"])
    assert r.exit_code == 0, (r.output, r.exception)
    assert checked == []  # no decode at import: the embedding's decode reports the bad photo
    assert [i["id"] for i in json.loads(r.stdout)["import"]["issues"]] == ["7"]
    r = runner.invoke(app, ["index", str(cat), "--out", str(tmp_path / "idx2"), "--encoder", JOINT, "--strict"])
    assert r.exit_code == 2 and "item 7" in r.output and len(checked) == 8  # stopped at photo 7, before embedding
    assert not (tmp_path / "idx2").exists()


# ---- item 11: --json, quiet model loading, progress off a TTY ----------------------------------
def test_perceptual_triplets_json(kaggle, tmp_path):
    out = tmp_path / "t.csv"
    r = runner.invoke(app, ["perceptual", "triplets", str(kaggle), "--out", str(out), "--n", "30", "--json"])
    assert r.exit_code == 0, (r.output, r.exception)
    res = json.loads(r.stdout)
    assert res == {"triplets": str(out), "n": res["n"], "source": "proxy"} and 0 < res["n"] <= 30
    assert len(out.read_text().splitlines()) == res["n"] + 1


def test_demo_json_keeps_its_report_on_stderr(monkeypatch, tmp_path):
    import fashionlens.search.demo

    def fake_demo(catalog, out, n_train, n_test, seed, echo):
        echo("[1/4] importing")
        return {"n_indexed": n_train, "n_held_out": n_test, "metrics": {"text_to_image": {"recall@10": 0.5}}}

    monkeypatch.setattr(fashionlens.search.demo, "run_demo", fake_demo)
    r = runner.invoke(app, ["demo", "--n-train", "30", "--n-test", "10", "--json", "--out", str(tmp_path)])
    assert r.exit_code == 0, (r.output, r.exception)
    assert json.loads(r.stdout)["n_indexed"] == 30 and "[1/4] importing" in r.stderr


def test_download_json(monkeypatch, tmp_path):
    import fashionlens.encoders.download

    monkeypatch.setattr(fashionlens.encoders.download, "download", lambda name: [tmp_path / "snap"])
    r = runner.invoke(app, ["download", "dinov2-vits14", "--json"])
    assert r.exit_code == 0, (r.output, r.exception)
    assert json.loads(r.stdout) == {"name": "dinov2-vits14", "paths": [str(tmp_path / "snap")], "ready": True}


def test_loading_a_model_draws_no_weights_bar():
    """A real model load (the offline MiniLM, in a fresh process): no 'Loading weights' bar on stderr."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS")}
    env |= {"TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "fashionlens.cli.main", "download", "minilm-l6"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "ready: minilm-l6" in p.stdout and "Loading weights" not in p.stderr


def test_progress_prints_plain_lines_off_a_terminal(monkeypatch, capsys):
    monkeypatch.setenv("FASHIONLENS_PROGRESS", "auto")
    assert list(track(range(50), "embedding 50 images")) == list(range(50))
    lines = capsys.readouterr().err.splitlines()
    assert [ln.split(",")[0] for ln in lines] == [f"embedding 50 images: {k}/50 ({2 * k}%)" for k in range(5, 51, 5)]

    monkeypatch.setattr("fashionlens.progress.LINE_SECONDS", 0.0)  # unknown length: a line every N seconds
    list(track(iter(range(3)), "reading"))
    assert [ln.split(",")[0] for ln in capsys.readouterr().err.splitlines()] == ["reading: 1", "reading: 2", "reading: 3"]

    monkeypatch.setenv("FASHIONLENS_PROGRESS", "0")
    list(track(range(50), "quiet"))
    assert capsys.readouterr().err == ""


def test_sales_fit_shows_embedding_progress_off_a_terminal(kaggle, tmp_path, monkeypatch):
    monkeypatch.setenv("FASHIONLENS_PROGRESS", "auto")
    r = runner.invoke(app, ["sales", "fit", str(kaggle), "--target", "price", "--features", "image",
                            "--encoder", JOINT, "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "c"),
                            "--json"])
    assert r.exit_code == 0, (r.output, r.exception)
    assert json.loads(r.stdout)["n_test"] == 100
    lines = [ln.split(",")[0] for ln in r.stderr.splitlines() if ln.startswith("embedding 400 images")]
    assert lines == [f"embedding 400 images (mean-colour): {k}/400 ({k // 4}%)" for k in range(40, 401, 40)]


# ---- item 12: make bench ----------------------------------------------------------------------
def _run_all():
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("run_all", root / "benchmarks" / "run_all.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return root, mod


def test_make_bench_runs_real_benchmark_scripts():
    root, run_all = _run_all()
    lines = (root / "Makefile").read_text().splitlines()
    recipe = lines[next(i for i, ln in enumerate(lines) if ln.startswith("bench:")) + 1]
    assert (root / recipe.split("python ")[1].split()[0]).is_file()
    assert run_all.QUICK and all((root / "benchmarks" / f"{name}.py").is_file() for name in run_all.QUICK)


def test_bench_runner_reports_each_script_and_fails_when_one_fails(tmp_path, monkeypatch, capsys):
    _, run_all = _run_all()
    (tmp_path / "good.py").write_text("print('42 items/s')\n")
    (tmp_path / "bad.py").write_text("raise SystemExit(3)\n")
    monkeypatch.setattr(run_all, "HERE", tmp_path)
    monkeypatch.setattr(run_all, "QUICK", {"good": "a fast one", "bad": "a broken one"})
    assert run_all.main([]) == 1
    out = capsys.readouterr().out
    assert "| good | ok |" in out and "| bad | failed (exit 3) |" in out
    assert run_all.main(["--only", "good"]) == 0
