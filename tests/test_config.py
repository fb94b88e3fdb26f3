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


def _all_configs() -> list[type]:
    import fashionlens.categorize.categorizer
    import fashionlens.categorize.tune
    import fashionlens.explore.report
    import fashionlens.perceptual.train
    import fashionlens.sales.run
    import fashionlens.train.engine
    import fashionlens.train.reranker  # noqa: F401  (each module registers its configs as subclasses)
    from fashionlens.config import Config

    out, todo = [], [Config]
    while todo:
        for sub in todo.pop().__subclasses__():
            out.append(sub)
            todo.append(sub)
    return out


def test_every_config_round_trips_through_json_with_its_types():
    import json

    configs = _all_configs()
    assert len(configs) >= 12
    for cls in configs:
        cfg = cls()
        assert cls.from_dict(json.loads(json.dumps(cfg.to_dict())), "saved.json") == cfg, cls.__name__


@pytest.mark.parametrize("data,problem", [
    ({"epochs": "3"}, "key 'epochs' is '3', not int"),
    ({"epochs": True}, "key 'epochs' is True, not int"),
    ({"lr": "1e-3"}, "key 'lr' is '1e-3', not float"),  # YAML 1.1 reads 1e-3 as a string
    ({"image_encoder": 7}, "key 'image_encoder' is 7, not str"),
])
def test_a_value_of_the_wrong_type_is_refused_naming_the_key_and_the_type(data, problem):
    with pytest.raises(ValueError, match=rf"run\.yaml: RetrievalConfig {problem}"):
        RetrievalConfig.from_dict(data, "run.yaml")


def test_json_lists_become_the_tuples_and_ints_the_floats_a_config_asks_for():
    from fashionlens.categorize.categorizer import CategorizeConfig
    from fashionlens.explore.report import ExploreConfig

    cfg = ExploreConfig.from_dict({"ks": [2, 3], "label_columns": None, "dup_threshold": 1})
    assert cfg.ks == (2, 3) and isinstance(cfg.dup_threshold, float)
    with pytest.raises(ValueError, match=r"key 'ks'\[1\] is 'x', not int"):
        ExploreConfig.from_dict({"ks": [2, "x"]})
    with pytest.raises(ValueError, match="key 'templates' is 'a photo of {}', not"):
        CategorizeConfig.from_dict({"templates": "a photo of {}"})
