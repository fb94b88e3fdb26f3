"""method="finetune": the real offline backbone's last blocks + a cosine classifier, trained on photos."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fashionlens.catalog import load_catalog
from fashionlens.categorize.categorizer import CategorizeConfig, Categorizer
from fashionlens.encoders import create
from tests.categorize.test_categorizer import make_catalog


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return load_catalog(make_catalog(tmp_path_factory.mktemp("toy"), n_per_class=20))


@pytest.fixture(scope="module")
def tuned(toy, tmp_path_factory, one_torch_thread):
    train, test = toy.split(0.3, seed=0, stratify="articleType")
    base = create("efficientnet-lite0", size=64)  # small input: seconds on CPU
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    cfg = CategorizeConfig(label="articleType", method="finetune", val_size=0.25, tta=True,
                           tune={"epochs": 15, "batch_size": 8, "unfreeze_blocks": 1, "lr": 5e-3, "patience": 15})
    out = tmp_path_factory.mktemp("tuned")
    clf = Categorizer(cfg, encoder=base).fit(train, log_path=out / "log.jsonl")
    return clf, base, before, train, test, out


def test_finetune_learns_and_trains_only_the_last_blocks(tuned):
    clf, base, before, _, test, out = tuned
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, 16))
    assert log[-1]["train_loss"] < log[0]["train_loss"]
    assert clf.evaluate(test)["accuracy"] > 0.8  # chance is 1/3
    after = base.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("blocks.6.", "conv_head", "bn2")) for k in changed)
    assert "blocks.5.0.conv_pw.weight" not in changed  # earlier blocks stay as loaded


def test_finetuned_categorizer_round_trips_with_its_backbone(tuned, tmp_path):
    clf, _, _, _, test, _ = tuned
    clf.save(tmp_path / "m")
    assert (tmp_path / "m" / "backbone" / "weights.safetensors").is_file()
    meta = json.loads((tmp_path / "m" / "categorizer.json").read_text())
    assert meta["head"]["kind"] == "cosine" and meta["encoder_fingerprint"].startswith("tuned|")
    # the saved backbone rebuilds from the registry name + safetensors (base at its default size:
    # hand the same base in, as a user would pass their own encoder)
    again = Categorizer.load(tmp_path / "m", encoder=create("run:" + str(tmp_path / "m" / "backbone")))
    np.testing.assert_allclose(again.predict_proba(test), clf.predict_proba(test), atol=1e-5)


def test_tuned_backbone_is_an_encoder_with_its_own_fingerprint(tuned, tmp_path):
    clf, base, *_ = tuned
    enc = clf.encoder
    assert enc.fingerprint() != base.fingerprint() and enc.modalities == ("image",)
    enc.save(tmp_path / "b")
    loaded = create(f"run:{tmp_path / 'b'}")
    assert loaded.fingerprint() == enc.fingerprint()
    v = loaded.encode_images(tuned[3].images[:3])
    np.testing.assert_allclose(v, enc.encode_images(tuned[3].images[:3]), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)


def test_unknown_finetune_option_fails_before_work():
    with pytest.raises(ValueError, match=r"fine-tune options \(tune\): unknown TuneConfig key"):
        CategorizeConfig(method="finetune", tune={"epoch": 3})


def test_without_a_validation_split_the_lowest_training_loss_wins(toy, one_torch_thread):
    # label smoothing 0.9 keeps every loss above 1: early stopping must still keep an epoch
    cfg = CategorizeConfig(label="articleType", method="finetune", val_size=0, tta=False,
                           tune={"epochs": 3, "batch_size": 16, "unfreeze_blocks": 1, "patience": 3,
                                 "label_smoothing": 0.9})
    clf = Categorizer(cfg, encoder=create("efficientnet-lite0", size=64)).fit(toy)
    hist = clf.history_
    assert len(hist) == 3 and all("val_macro_f1" not in r for r in hist)
    assert min(r["train_loss"] for r in hist) > 1
    best = [r for r in hist if r["best"]][-1]
    assert best["train_loss"] <= min(r["train_loss"] for r in hist) + 1e-4


class _Crash(RuntimeError):
    pass


def test_a_crashed_finetune_resumes_after_its_last_epoch(toy, tmp_path, one_torch_thread):
    """Killed after epoch 2 of 4: the rerun trains epochs 3-4 only and ends where an uninterrupted run ends."""
    train, _ = toy.split(0.3, seed=0, stratify="articleType")
    cfg = CategorizeConfig(label="articleType", method="finetune", val_size=0.25, tta=False,
                           tune={"epochs": 4, "batch_size": 8, "unfreeze_blocks": 1, "lr": 5e-3, "patience": 4})

    def crash_after(n):
        def log(row):
            if row["epoch"] == n:
                raise _Crash
        return log

    import fashionlens.categorize.categorizer as categorize

    ckpt = tmp_path / "ckpt"
    real = categorize.JsonLines
    categorize.JsonLines = lambda path: crash_after(2)
    try:
        with pytest.raises(_Crash):
            Categorizer(cfg, encoder=create("efficientnet-lite0", size=64)).fit(train, checkpoint=ckpt)
    finally:
        categorize.JsonLines = real
    # the crash hit inside epoch 2's logging: epoch 1 (index 0) is the last one saved, no pickle anywhere
    assert json.loads((ckpt / "checkpoints" / "last" / "state.json").read_text())["epoch"] == 0
    assert not list(ckpt.rglob("*.pt")) and list(ckpt.rglob("*.safetensors"))
    resumed = Categorizer(cfg, encoder=create("efficientnet-lite0", size=64)).fit(
        train, log_path=tmp_path / "log.jsonl", checkpoint=ckpt)
    assert [r["epoch"] for r in resumed.history_] == [1, 2, 3, 4]
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 4  # restored rows are logged again
    assert json.loads((ckpt / "checkpoints" / "last" / "state.json").read_text())["epoch"] == 3
    straight = Categorizer(cfg, encoder=create("efficientnet-lite0", size=64)).fit(train)
    assert [r["train_loss"] for r in straight.history_] == pytest.approx([r["train_loss"] for r in resumed.history_],
                                                                        rel=1e-4)
    np.testing.assert_allclose(resumed.head_.weight_, straight.head_.weight_, atol=1e-5)

    other = CategorizeConfig(**{**cfg.__dict__, "tune": {**cfg.tune, "lr": 1e-3}})
    with pytest.raises(ValueError, match="different fine-tuning run"):
        Categorizer(other, encoder=create("efficientnet-lite0", size=64)).fit(train, checkpoint=ckpt)


def test_oversampling_reaches_the_finetuning_loop(toy, monkeypatch, one_torch_thread):
    """balance="oversample" must resample the photos the blocks train on, not only the frozen heads'."""
    import fashionlens.categorize.tune as tune

    y = toy.column("articleType").astype(str)
    rare = sorted(set(y))[0]
    keep = np.concatenate([np.flatnonzero(y != rare), np.flatnonzero(y == rare)[:4]])
    imbalanced = toy.subset(np.sort(keep))
    seen = {}
    real = tune.finetune

    def spy(encoder, train, y_train, *args, **kw):
        seen["counts"] = np.bincount(y_train)
        seen["photos"] = len(train)
        return real(encoder, train, y_train, *args, **kw)

    monkeypatch.setattr(tune, "finetune", spy)
    cfg = CategorizeConfig(label="articleType", method="finetune", val_size=0, tta=False, balance="oversample",
                           oversample_to=12, tune={"epochs": 1, "batch_size": 16, "unfreeze_blocks": 1})
    clf = Categorizer(cfg, encoder=create("efficientnet-lite0", size=64)).fit(imbalanced)
    rare_idx = list(clf.classes_).index(rare)
    assert seen["counts"][rare_idx] == 12  # 4 photos drawn up to the asked 12
    assert seen["photos"] == seen["counts"].sum() == len(imbalanced) + 8
