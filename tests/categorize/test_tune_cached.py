"""tune={"cached": True}: the last block + a cosine classifier trained on cached activations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fashionlens.catalog import load_catalog
from fashionlens.categorize.categorizer import CategorizeConfig, Categorizer
from fashionlens.categorize.tune_cached import activations, split_model
from fashionlens.encoders import create
from fashionlens.encoders.tuned import TunedImageEncoder
from fashionlens.errors import InvalidInputError
from tests.categorize.test_categorizer import make_catalog


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return load_catalog(make_catalog(tmp_path_factory.mktemp("toy"), n_per_class=20))


def test_prefix_then_suffix_is_the_encoders_forward_pass(toy, one_torch_thread):
    base = create("efficientnet-lite0", size=64)
    tuned = TunedImageEncoder(base, 2)
    prefix, suffix = split_model(tuned.tower.model, 2)
    acts = activations(prefix, toy.images[:6], tuned.preprocess)
    assert acts.dtype == torch.float16 and acts.shape[0] == 6
    with torch.no_grad():
        feats = suffix(acts).numpy()
    np.testing.assert_allclose(feats, tuned.encode_images(toy.images[:6]), atol=5e-3)  # fp16 activations
    mirrored = activations(prefix, toy.images[:2], tuned.preprocess, flip=True)
    assert not torch.equal(mirrored, acts[:2])


def test_split_refuses_a_network_it_does_not_know():
    with pytest.raises(InvalidInputError, match="EfficientNet-style"):
        split_model(torch.nn.Linear(3, 3), 1)


def test_cached_finetune_learns_trains_only_the_last_block_and_round_trips(toy, tmp_path, one_torch_thread):
    train, test = toy.split(0.3, seed=0, stratify="articleType")
    base = create("efficientnet-lite0", size=64)
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    cfg = CategorizeConfig(label="articleType", method="finetune", val_size=0.25, tta=True,
                           tune={"cached": True, "epochs": 12, "batch_size": 8, "unfreeze_blocks": 1, "lr": 5e-3,
                                 "patience": 12})
    clf = Categorizer(cfg, encoder=base).fit(train, log_path=tmp_path / "log.jsonl")
    log = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, 13)) and log[-1]["train_loss"] < log[0]["train_loss"]
    assert clf.evaluate(test)["accuracy"] > 0.8  # chance is 1/3
    changed = {k for k, v in base.model.state_dict().items() if not torch.equal(before[k], v)}
    assert changed and all(k.startswith(("blocks.6.", "conv_head", "bn2")) for k in changed)
    assert not any("running_" in k for k in changed)  # BatchNorm statistics stay frozen, as in `finetune`
    clf.save(tmp_path / "m")  # saved like any fine-tuned categorizer: backbone run + cosine head
    again = Categorizer.load(tmp_path / "m", encoder=create("run:" + str(tmp_path / "m" / "backbone")))
    np.testing.assert_allclose(again.predict_proba(test), clf.predict_proba(test), atol=1e-5)
