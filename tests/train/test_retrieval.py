"""Training runs: run directory, resume, non-finite losses, accumulation, YAML and CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from fashionlens.encoders.base import Encoder
from fashionlens.train.retrieval import (
    NonFiniteLossError,
    RetrievalConfig,
    train_retrieval,
    val_rows_by_id,
)
from fashionlens.train.runs import RunDir
from tests.encoders.test_nn import TinyBert, TinyViT, fast_cfg, make_toy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy(tmp_path_factory.mktemp("toy"))


def test_resume_continues_from_saved_step_and_matches_unbroken_run(toy, tmp_path):
    cfg2, cfg4 = fast_cfg(epochs=2), fast_cfg(epochs=3)
    broken = tmp_path / "broken"
    train_retrieval(cfg2, broken, toy, TinyViT(), TinyBert(), progress=False)
    saved = RunDir(broken).load_checkpoint("last")[1]
    assert saved["epoch"] == 1 and saved["step"] > 0
    with pytest.raises(FileExistsError):
        train_retrieval(cfg4, broken, toy, TinyViT(), TinyBert(), progress=False)
    # extending a finished run: steps continue from the checkpoint (exact replay is tested below)
    res = train_retrieval(cfg4, broken, toy, TinyViT(), TinyBert(), resume=True, progress=False)
    recs = RunDir(broken).records()
    resume = next(r for r in recs if r.get("event") == "resume")
    assert resume["epoch"] == 2 and resume["step"] == saved["step"]
    epochs = [r for r in recs if r.get("event") == "epoch"]
    assert [r["epoch"] for r in epochs] == [0, 1, 2]
    steps_per_epoch = epochs[1]["step"] - epochs[0]["step"]
    assert epochs[2]["step"] == saved["step"] + steps_per_epoch
    assert res.history[-1]["epoch"] == 2


def test_resume_reproduces_an_unbroken_run(toy, tmp_path):
    """Interrupt a 3-epoch run after its second epoch, resume: same losses and weights."""
    cfg = fast_cfg(epochs=3)
    full = train_retrieval(cfg, tmp_path / "full", toy, TinyViT(), TinyBert(), progress=False)
    part_dir = tmp_path / "part"
    part = RunDir(part_dir)
    # Ctrl-C at the start of the third epoch
    from fashionlens.train import sampler as sampler_mod

    orig = sampler_mod.StratifiedBatchSampler.set_epoch

    def boom(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        orig(self, epoch)

    sampler_mod.StratifiedBatchSampler.set_epoch = boom
    try:
        with pytest.raises(KeyboardInterrupt):
            train_retrieval(cfg, part_dir, toy, TinyViT(), TinyBert(), progress=False)
    finally:
        sampler_mod.StratifiedBatchSampler.set_epoch = orig
    assert part.load_checkpoint("last")[1]["epoch"] == 1
    resumed = train_retrieval(cfg, part_dir, toy, TinyViT(), TinyBert(), resume=True, progress=False)
    a = [r["train_loss"] for r in full.history]
    b = [r["train_loss"] for r in resumed.history]
    np.testing.assert_allclose(a, b, rtol=1e-4)
    wa, wb = full.encoder.model.trainable_state(), resumed.encoder.model.trainable_state()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)


class NaNAfter(Encoder):
    """Wraps TinyViT; its features become NaN once `poison` is set (a corrupt feature cache)."""

    modalities = ("image",)

    def __init__(self):
        self.inner = TinyViT()
        self.name, self.dim, self.preprocess = "nan-vit", self.inner.dim, self.inner.preprocess
        self.poison = False

    def _encode_images(self, images):
        x = self.inner._encode_images(images)
        return x * np.nan if self.poison else x


def test_non_finite_loss_stops_with_clear_message_and_keeps_last_good_checkpoint(toy, tmp_path):
    enc = NaNAfter()
    out = tmp_path / "run"
    train_retrieval(fast_cfg(epochs=1), out, toy, enc, TinyBert(), progress=False)
    before = RunDir(out).load_checkpoint("last")
    enc.poison = True
    with pytest.raises(NonFiniteLossError, match="non-finite loss .* last good checkpoint is kept"):
        train_retrieval(fast_cfg(epochs=3), out, toy, enc, TinyBert(), resume=True, progress=False)
    after = RunDir(out).load_checkpoint("last")
    assert after[1]["epoch"] == before[1]["epoch"] == 0
    for k, v in before[0].items():
        assert torch.equal(v, after[0][k]) and torch.isfinite(v).all()
    assert any(r.get("event") == "non_finite_loss" for r in RunDir(out).records())
    assert (out / "weights.safetensors").is_file()  # the best finite epoch is still the run's encoder


def test_gradient_accumulation_and_fixed_seeds(toy, tmp_path):
    a = train_retrieval(fast_cfg(epochs=2, accumulate=2), tmp_path / "a", toy, TinyViT(), TinyBert(), progress=False)
    b = train_retrieval(fast_cfg(epochs=2, accumulate=2), tmp_path / "b", toy, TinyViT(), TinyBert(), progress=False)
    c = train_retrieval(fast_cfg(epochs=2), tmp_path / "c", toy, TinyViT(), TinyBert(), progress=False)
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]  # same seed, same run
    # accumulating 2 batches = half as many optimizer steps
    assert a.history[-1]["step"] * 2 == pytest.approx(c.history[-1]["step"], abs=2)


def test_validation_split_is_fixed_by_id():
    ids = [str(i) for i in range(2000)]
    m = val_rows_by_id(ids, 0.1)
    assert 150 < m.sum() < 250
    rev = val_rows_by_id(ids[::-1], 0.1)[::-1]
    assert (m == rev).all()


def test_config_yaml_round_trip_and_unknown_keys(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"epochs": 2, "text_strategy": "lora"}))
    cfg = RetrievalConfig.from_yaml(p)
    assert cfg.epochs == 2 and cfg.text_strategy == "lora"
    p.write_text(yaml.safe_dump({"epoch": 2}))
    with pytest.raises(ValueError, match=r"unknown RetrievalConfig key\(s\) epoch"):
        RetrievalConfig.from_yaml(p)
    with pytest.raises(ValueError, match="unknown loss"):
        RetrievalConfig(loss="hinge")


def test_cli_trains_from_yaml_and_result_indexes(tmp_path, tiny_towers):
    from typer.testing import CliRunner

    from fashionlens.cli.main import app

    vit, bert = tiny_towers
    root = tmp_path / "toy"
    make_toy(root)
    cfg = {**fast_cfg(epochs=2, image_encoder=vit, text_encoder=bert).to_dict(), "catalog": str(root)}
    p = tmp_path / "toy.yaml"
    p.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "retrieval", str(p), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["encoder"] == f"run:{out}" and summary["epochs_run"] == 2
    r = CliRunner().invoke(app, ["train", "retrieval", str(p), "--out", str(out)])
    assert r.exit_code == 2 and "already holds a run" in r.output
    from fashionlens.catalog import load_catalog
    from fashionlens.search.index import BuildConfig, build_index

    idx = build_index(load_catalog(cfg["catalog"]), tmp_path / "index",
                      BuildConfig(encoder=f"run:{out}", cache_dir=None), progress=False)
    hits = idx.encoder.encode_texts(["red shirt number 1"])
    assert hits.shape == (1, 32)


def test_init_from_warm_starts_heads_of_another_run(toy, tmp_path):
    from safetensors.torch import load_file

    first = train_retrieval(fast_cfg(epochs=1), tmp_path / "heads", toy, TinyViT(), TinyBert(), progress=False)
    cfg = fast_cfg(epochs=1, text_strategy="lora", lr=0.0, tower_lr=0.0, init_from=str(first.out))
    res = train_retrieval(cfg, tmp_path / "lora", toy, TinyViT(), TinyBert(), progress=False)
    src = load_file(str(first.out / "weights.safetensors"))
    got = res.encoder.model.trainable_state()
    assert any("lora_" in k for k in got)
    for k, v in src.items():
        assert torch.equal(got[k], v), k
    with pytest.raises(FileNotFoundError, match="init_from"):
        train_retrieval(fast_cfg(init_from=str(tmp_path / "nowhere")), tmp_path / "x", toy, TinyViT(), TinyBert(),
                        progress=False)
