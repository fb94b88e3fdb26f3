"""The one Config base: strict keys, nested configs, a YAML record that reads back."""

from __future__ import annotations

import pytest

from fashionlens.search.index import BuildConfig
from fashionlens.train.config import AlignConfig
from fashionlens.train.retrieval import RetrievalConfig


def test_unknown_keys_are_refused_naming_the_key_and_the_source():
    with pytest.raises(ValueError, match=r"run\.yaml: unknown RetrievalConfig key\(s\) epoch .*known: .*epochs"):
        RetrievalConfig.from_dict({"epoch": 3}, "run.yaml")


def test_nested_configs_rebuild_from_dicts_and_yaml_round_trips(tmp_path):
    cfg = RetrievalConfig(epochs=3, label_weight=0.25)
    back = RetrievalConfig.from_yaml(cfg.to_yaml(tmp_path / "config.yaml"))
    assert back == cfg
    built = BuildConfig.from_dict({"encoder": "x", "align": {"epochs": 2}})
    assert isinstance(built.align, AlignConfig) and built.align.epochs == 2
    with pytest.raises(ValueError, match="align: unknown AlignConfig key"):
        BuildConfig.from_dict({"align": {"epoch": 2}})


def test_missing_yaml_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        AlignConfig.from_yaml(tmp_path / "nope.yaml")


def test_the_remaining_configs_share_the_one_policy():
    from fashionlens.explore.report import ExploreConfig
    from fashionlens.perceptual.train import PerceptualConfig

    assert PerceptualConfig.from_dict({"lr": 0.01, "encoders": ["a", "b"]}) == PerceptualConfig(lr=0.01, encoders=["a", "b"])
    for cls, typo in ((PerceptualConfig, "learning_rate"), (ExploreConfig, "k")):
        with pytest.raises(ValueError, match=rf"unknown {cls.__name__} key\(s\) {typo} \(known: "):
            cls.from_dict({typo: 1})
