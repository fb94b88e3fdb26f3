import json

from typer.testing import CliRunner

from fashionlens.cli.main import app


def test_demo_end_to_end_on_a_small_sample(myntra_dir, tmp_path):
    res = CliRunner().invoke(app, ["demo", "--catalog", str(myntra_dir), "--out", str(tmp_path),
                                   "--n-train", "150", "--n-test", "60"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "metrics.json").read_text())
    t2i = summary["metrics"]["text_to_image"]
    assert summary["n_indexed"] == 150 and t2i["gallery_size"] == 150 + 60  # index photos + held-out ones
    assert summary["metrics_held_out_gallery"]["text_to_image"]["gallery_size"] == 60
    assert t2i["recall@10"] > t2i["chance@10"]
    assert (tmp_path / "gallery.png").stat().st_size > 10_000
    assert "fashionlens serve" in res.output
    assert "whole gallery" in res.output and "held-out gallery" in res.output
    lo, hi = t2i["ci95"]["recall@10"]
    assert f"recall@10={t2i['recall@10']:.3f} [{lo:.3f}, {hi:.3f}]" in res.output


def test_demo_missing_catalog_says_where_to_get_it(tmp_path):
    res = CliRunner().invoke(app, ["demo", "--catalog", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "Kaggle" in res.output
