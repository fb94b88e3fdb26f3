"""`fashionlens categorize train|evaluate|predict` on a small real Myntra sample."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from fashionlens.cli.categorize import app

runner = CliRunner()


def test_train_evaluate_predict_on_real_photos(myntra_dir, tmp_path):
    out, cache = tmp_path / "model", tmp_path / "cache"
    r = runner.invoke(app, ["train", str(myntra_dir), "--label", "masterCategory", "--method", "probe",
                            "--limit", "90", "--no-tta", "--out", str(out), "--cache-dir", str(cache),
                            "--no-check-images", "--size", "128"])
    assert r.exit_code == 0, r.output
    assert (out / "categorizer.json").is_file() and (out / "report" / "confusion.png").is_file()
    meta = json.loads((out / "categorizer.json").read_text())
    assert meta["encoder"] == "efficientnet-lite0.stages" and "Apparel" in meta["classes"]  # the default
    assert meta["config"]["encoder_kwargs"] == {"size": 128} and "size=128" in meta["encoder_fingerprint"]

    r = runner.invoke(app, ["evaluate", str(out), str(myntra_dir), "--limit", "90", "--json",
                            "--cache-dir", str(cache), "--no-check-images"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert {"accuracy", "top5_accuracy", "macro_f1", "weighted_f1", "per_class", "n", "labels_unseen"} <= set(res)
    # only the held-out fifth is scored; the items the model was fitted on are skipped
    assert res["n_skipped_fit_items"] + res["n"] + res["labels_unseen"]["n"] == 90
    assert 15 <= res["n"] + res["labels_unseen"]["n"] <= 20
    assert res["accuracy"] > 0.5  # 4+ master categories; Apparel alone is ~48%

    photo = next((myntra_dir / "images").glob("*.jpg"))
    r = runner.invoke(app, ["predict", str(out), str(photo), "--top", "2", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert len(rows[0]["masterCategory"]) == 2 and rows[0]["image"] == str(photo)

    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\x00not a jpeg")
    r = runner.invoke(app, ["predict", str(out), str(bad)])
    assert r.exit_code == 2
    assert "broken.jpg: not an image" in r.output


def test_finetune_method_from_the_command_line(myntra_dir, tmp_path, one_torch_thread):
    out = tmp_path / "tuned"
    r = runner.invoke(app, ["train", str(myntra_dir), "--label", "masterCategory", "--method", "finetune",
                            "--epochs", "1", "--unfreeze-blocks", "1", "--limit", "60", "--no-tta", "--out", str(out),
                            "--cache-dir", str(tmp_path / "cache"), "--no-check-images"])
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "categorizer.json").read_text())
    assert meta["config"]["tune"] == {"unfreeze_blocks": 1, "epochs": 1} and meta["head"]["kind"] == "cosine"
    assert (out / "backbone" / "encoder.json").is_file()
    assert not (out / "checkpoint").exists()  # per-epoch checkpoints go once the model is saved
    photo = next((myntra_dir / "images").glob("*.jpg"))
    r = runner.invoke(app, ["predict", str(out), str(photo), "--json"])  # reloads the tuned backbone
    assert r.exit_code == 0, r.output
    top = json.loads(r.output)[0]["masterCategory"]
    assert len(top) == min(5, len(meta["classes"])) and top[0]["prob"] >= top[-1]["prob"]


def test_a_bad_class_prompts_file_fails_before_any_work(myntra_dir, tmp_path):
    prompts = tmp_path / "prompts.json"
    for text in ['{"Footwear": "sandals"}', "{not json"]:
        prompts.write_text(text)
        r = runner.invoke(app, ["train", str(myntra_dir), "--label", "masterCategory", "--method", "zeroshot",
                                "--class-prompts", str(prompts), "--out", str(tmp_path / "m")])
        assert r.exit_code == 2, r.output
        assert "prompts.json" in r.output and "--class-prompts" in r.output
        assert not (tmp_path / "m").exists()


def test_default_train_prints_held_out_cis_beside_the_probe(myntra_dir, tmp_path, one_torch_thread):
    out, cache = tmp_path / "auto", tmp_path / "cache"
    args = ["train", str(myntra_dir), "--label", "masterCategory", "--limit", "90", "--no-tta", "--epochs", "3",
            "--candidates", "head,finetune", "--out", str(out), "--cache-dir", str(cache), "--no-check-images",
            "--encoder", "efficientnet-lite0"]  # the stages default is right on all 18 test items: a CI of width 0
    r = runner.invoke(app, args)  # no --method: auto; the probe is a candidate whatever the list
    assert r.exit_code == 0, r.output
    assert "auto -> " in r.output and "chosen on validation" in r.output and "load average" in r.output
    assert "probe (baseline, same split)" in r.output and "95% bootstrap CIs" in r.output
    meta = json.loads((out / "categorizer.json").read_text())
    sel = meta["selection"]
    assert f"auto -> {sel['chosen']}" in r.output and f"{sel['chosen']} (this model)" in r.output
    assert set(sel["validation"]) == {"probe", "head", "finetune"} and meta["config"]["method"] == sel["chosen"]
    if sel["chosen"] != "finetune":  # what validation chose, fitted again on all 72 fit items (the fine-tune is not)
        assert sel["refit"]["items"] == meta["n_train"] == 72 and "then refitted on all 72 fit items" in r.output
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    ev, base = res["evaluation"], res["baseline_probe"]
    assert base["method"] == "probe" and base["n"] == ev["n"]  # the same held-out items
    for m in (ev, base):
        lo, hi = m["ci95"]["accuracy"]
        assert lo <= m["accuracy"] <= hi and hi - lo > 0
        lo, hi = m["ci95"]["macro_f1"]
        assert lo <= m["macro_f1"] <= hi


def test_the_output_names_the_candidate_auto_chose_not_its_underlying_method():
    from types import SimpleNamespace

    from fashionlens.cli.categorize import shown_method

    multisize = SimpleNamespace(config=SimpleNamespace(method="head"), selection_={"chosen": "multisize"})
    assert shown_method(multisize) == "multisize"  # printed "auto -> head" before
    assert shown_method(SimpleNamespace(config=SimpleNamespace(method="probe"))) == "probe"  # chosen by hand
