"""method="auto" (the default): the rule that picks a method on held-out validation, pinned."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from fashionlens.catalog import load_catalog
from fashionlens.categorize.categorizer import CategorizeConfig, Categorizer
from fashionlens.categorize.select import choose
from fashionlens.errors import InvalidInputError
from tests.categorize import test_categorizer
from tests.categorize.test_categorizer import ColourEncoder, make_catalog

sized_encoder = test_categorizer.sized_encoder  # the fixture: `toy-sized` registered for one test


def _s(acc: float, f1: float) -> dict[str, float]:
    return {"accuracy": acc, "macro_f1": f1}


def test_rule_best_accuracy_among_candidates_not_below_the_probe():
    # the head is most accurate but below the probe on macro F1: it may not be the default
    assert choose({"probe": _s(0.82, 0.80), "head": _s(0.86, 0.70), "finetune": _s(0.85, 0.81)}) == "finetune"
    # several fair candidates: the most accurate one
    assert choose({"probe": _s(0.80, 0.70), "head": _s(0.83, 0.75), "finetune": _s(0.85, 0.71)}) == "finetune"
    # nobody at least as good on both: the probe itself, so the default is never below it
    assert choose({"probe": _s(0.82, 0.80), "head": _s(0.90, 0.79), "finetune": _s(0.81, 0.95)}) == "probe"
    # equal accuracy: macro F1 decides; a full tie goes to the simpler probe
    assert choose({"probe": _s(0.8, 0.7), "head": _s(0.8, 0.72)}) == "head"
    assert choose({"probe": _s(0.8, 0.7), "head": _s(0.8, 0.7)}) == "probe"
    with pytest.raises(InvalidInputError, match="baseline 'probe'"):
        choose({"head": _s(0.9, 0.9)})


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return load_catalog(make_catalog(tmp_path_factory.mktemp("toy"), n_per_class=24))


def test_auto_fits_candidates_keeps_the_rules_choice_and_saves_it_as_that_method(toy, tmp_path, one_torch_thread):
    train, test = toy.split(0.3, seed=0, stratify="articleType")
    cfg = CategorizeConfig(label="articleType", val_size=0.3, candidates=("probe", "head"),
                           head={"hidden": 32, "epochs": 10, "lr": 0.02})
    assert CategorizeConfig().method == "auto"  # the default
    clf = Categorizer(cfg, encoder=ColourEncoder()).fit(train)
    sel = clf.selection_
    assert set(sel["validation"]) == {"probe", "head"}  # no torch CNN in this encoder: no fine-tune candidate
    assert sel["chosen"] == choose(sel["validation"]) and clf.config.method == sel["chosen"]
    assert set(clf.candidates_) == {"probe", "head"} and clf.candidates_["probe"].config.method == "probe"
    clf.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "categorizer.json").read_text())
    assert meta["config"]["method"] == sel["chosen"] and meta["selection"]["chosen"] == sel["chosen"]
    again = Categorizer.load(tmp_path / "m", encoder=ColourEncoder())
    np.testing.assert_allclose(again.predict_proba(test), clf.predict_proba(test), atol=1e-6)
    assert again.selection_ == json.loads(json.dumps(sel))


def test_auto_says_on_stderr_which_candidate_it_fits_and_what_it_scored(toy, capsys, monkeypatch, one_torch_thread):
    monkeypatch.setenv("FASHIONLENS_PROGRESS", "auto")  # progress on, plain lines (not a terminal)
    cfg = CategorizeConfig(label="articleType", val_size=0.3, candidates=("probe", "head"),
                           head={"hidden": 16, "epochs": 2, "lr": 0.02})
    clf = Categorizer(cfg, encoder=ColourEncoder(), progress=True).fit(toy)
    err = capsys.readouterr().err
    assert "candidate 1/2 'probe'" in err and "candidate 2/2 'head'" in err  # minutes of silence before
    acc = clf.selection_["validation"]["probe"]["accuracy"]
    assert f"'probe' validation accuracy {acc:.3f}" in err
    assert f"'{clf.selection_['chosen']}' chosen; refitting" in err
    Categorizer(cfg, encoder=ColourEncoder(), progress=False).fit(toy)
    assert "candidate" not in capsys.readouterr().err  # progress=False: quiet


def test_auto_needs_a_validation_split(toy):
    with pytest.raises(InvalidInputError, match="val_size"):
        Categorizer(CategorizeConfig(label="articleType", val_size=0, candidates=("probe",)),
                    encoder=ColourEncoder()).fit(toy)


def test_unknown_candidate_is_refused_by_name():
    with pytest.raises(InvalidInputError, match="'bagging'"):
        CategorizeConfig(candidates=("probe", "bagging"))


def test_ensemble_candidate_reuses_the_fitted_members_and_reloads_identically(toy, tmp_path, one_torch_thread,
                                                                              monkeypatch):
    from fashionlens.categorize.heads import EnsembleHead

    train, test = toy.split(0.3, seed=0, stratify="articleType")
    cfg = CategorizeConfig(label="articleType", val_size=0.3, candidates=("probe", "head", "ensemble"),
                           head={"hidden": 32, "epochs": 10, "lr": 0.02}, refit=False)  # candidate fits only
    fits: list[str] = []
    real_fit = Categorizer.fit
    monkeypatch.setattr(Categorizer, "fit", lambda self, *a, **k: fits.append(self.config.method) or real_fit(self, *a, **k))
    clf = Categorizer(cfg, encoder=ColourEncoder()).fit(train)
    assert fits == ["auto", "probe", "head"]  # the ensemble is built from the two fits, not fitted again
    sel = clf.selection_
    assert set(sel["validation"]) == {"probe", "head", "ensemble"} and sel["chosen"] == choose(sel["validation"])
    ens = clf.candidates_["ensemble"]
    assert isinstance(ens.head_, EnsembleHead) and ens.config.method == "ensemble"
    probe, head = clf.candidates_["probe"], clf.candidates_["head"]
    want = ens.head_.combine([probe.predict_proba(test), head.predict_proba(test)])
    np.testing.assert_allclose(ens.predict_proba(test), want, atol=1e-6)
    ens.save(tmp_path / "e")
    again = Categorizer.load(tmp_path / "e", encoder=ColourEncoder())
    assert isinstance(again.head_, EnsembleHead) and again.head_.temperatures == ens.head_.temperatures
    np.testing.assert_allclose(again.predict_proba(test), ens.predict_proba(test), atol=1e-6)


def test_method_ensemble_fits_its_own_members(toy, one_torch_thread):
    cfg = CategorizeConfig(label="articleType", method="ensemble", val_size=0.3, head={"hidden": 32, "epochs": 5})
    clf = Categorizer(cfg, encoder=ColourEncoder()).fit(toy)
    assert [m.kind for m in clf.head_.members] == ["probe", "head"] and clf.history_[-1]["best"]
    with pytest.raises(InvalidInputError, match="val_size"):
        Categorizer(CategorizeConfig(method="ensemble", val_size=0), encoder=ColourEncoder()).fit(toy)


def test_default_encoder_is_lite0_stages_and_finetuning_trains_lite0_itself():
    assert CategorizeConfig().encoder == "efficientnet-lite0.stages"
    assert CategorizeConfig(method="finetune").encoder == "efficientnet-lite0"  # the stages wrapper has no blocks to tune
    assert CategorizeConfig(method="finetune", encoder="efficientnet-lite1").encoder == "efficientnet-lite1"


def test_auto_refits_the_chosen_head_on_train_and_validation_for_its_best_epoch_count(toy, tmp_path, one_torch_thread):
    train, test = toy.split(0.3, seed=0, stratify="articleType")
    cfg = CategorizeConfig(label="articleType", val_size=0.3, candidates=("probe", "head"),
                           head={"hidden": 32, "epochs": 10, "lr": 0.02})
    clf = Categorizer(cfg, encoder=ColourEncoder()).fit(train)
    chosen = clf.candidates_[clf.selection_["chosen"]]  # the candidate as validation scored it
    assert chosen.n_val_ > 0 and clf.n_val_ == 0 and clf.n_train_ == chosen.n_train_ + chosen.n_val_ == len(train)
    refit = clf.selection_["refit"]
    assert refit["items"] == len(train) and clf.config.val_size == 0
    if clf.config.method == "head":  # one-cycle over the epoch count early stopping chose, nothing held out
        assert refit["settings"]["epochs"] == chosen.head_.best_epoch_ == clf.config.head["epochs"]
        assert len(clf.head_.history_) == chosen.head_.best_epoch_
    assert not np.allclose(clf.predict_proba(test), chosen.predict_proba(test), atol=1e-4)  # a new fit
    assert clf.history_ == chosen.history_  # the validation rows it was chosen on
    clf.save(tmp_path / "m")
    again = Categorizer.load(tmp_path / "m", encoder=ColourEncoder())
    np.testing.assert_allclose(again.predict_proba(test), clf.predict_proba(test), atol=1e-6)
    assert again.selection_["refit"] == json.loads(json.dumps(refit)) and again.n_train_ == len(train)
    # refit off: the candidate itself, as validation scored it
    kept = Categorizer(replace(cfg, refit=False), encoder=ColourEncoder()).fit(train)
    assert kept.selection_["refit"] is None and kept.head_ is kept.candidates_[kept.selection_["chosen"]].head_


def test_refit_ensemble_refits_both_members_and_keeps_the_validation_temperatures(toy, tmp_path, one_torch_thread):
    from fashionlens.categorize.select import refit

    train, test = toy.split(0.3, seed=0, stratify="articleType")
    cfg = CategorizeConfig(label="articleType", method="ensemble", val_size=0.3, head={"hidden": 32, "epochs": 6},
                           tta=False)  # as auto's candidate: the members' own single view
    ens = Categorizer(cfg, encoder=ColourEncoder()).fit(train)
    again = refit(ens, train)
    assert again.head_.temperatures == ens.head_.temperatures
    assert [m.n_train_ for m in again.members_] == [len(train)] * 2 and again.config.method == "ensemble"
    assert again.refit_[1]["epochs"] == ens.members_[1].head_.best_epoch_
    want = again.head_.combine([m.predict_proba(test) for m in again.members_])
    np.testing.assert_allclose(again.predict_proba(test), want, atol=1e-6)
    again.save(tmp_path / "e")
    loaded = Categorizer.load(tmp_path / "e", encoder=ColourEncoder())
    np.testing.assert_allclose(loaded.predict_proba(test), again.predict_proba(test), atol=1e-6)


def test_head_per_input_size_averages_one_head_per_size_and_reloads_identically(toy, tmp_path, sized_encoder,
                                                                                one_torch_thread):
    from fashionlens.categorize.heads import EnsembleHead
    from fashionlens.encoders import create

    train, test = toy.split(0.3, seed=0, stratify="articleType")
    with pytest.raises(InvalidInputError, match="sizes"):
        CategorizeConfig(method="head", sizes=(8, 16))  # flip / TTA views on by default: refused
    cfg = CategorizeConfig(label="articleType", encoder=sized_encoder, method="head", sizes=(8, 16), tta=False,
                           augment="none", val_size=0.3, head={"hidden": 32, "epochs": 8, "lr": 0.02})
    clf = Categorizer(cfg).fit(train)
    assert isinstance(clf.head_, EnsembleHead) and clf.head_.columns == [[0, 22], [22, 44]]
    assert [e.size for e in clf.sized_encoders()] == [8, 16]
    own = [m.predict_proba(create(sized_encoder, size=z).encode_images(test.images))
           for m, z in zip(clf.head_.members, (8, 16))]  # each head on its own size's features
    np.testing.assert_allclose(clf.predict_proba(test), np.mean(own, 0), atol=1e-5)
    assert clf.history_[-1]["best"] and "val_accuracy" in clf.history_[-1]
    clf.save(tmp_path / "m")
    again = Categorizer.load(tmp_path / "m")  # the sized encoders rebuilt from the saved name
    np.testing.assert_allclose(again.predict_proba(test), clf.predict_proba(test), atol=1e-6)


def test_auto_multisize_candidate_is_fitted_when_the_encoder_takes_a_size_and_refits_per_size(
        toy, sized_encoder, one_torch_thread):
    train, _ = toy.split(0.3, seed=0, stratify="articleType")
    cfg = CategorizeConfig(label="articleType", encoder=sized_encoder, val_size=0.3, candidates=("multisize",),
                           head={"hidden": 32, "epochs": 6, "patience": 6, "lr": 0.02})
    clf = Categorizer(cfg).fit(train)
    ms = clf.candidates_["multisize"]
    assert set(clf.selection_["validation"]) == {"probe", "multisize"} and ms.config.sizes == (160, 224)
    assert ms.config.head == {"epochs": 6, "patience": 6, "hidden": 32, "lr": 0.02}  # the user's settings win
    if clf.selection_["chosen"] == "multisize":  # refitted: each size's head for its own best epoch count
        assert clf.config.head["epochs"] == [m.best_epoch_ for m in ms.head_.members] and clf.config.val_size == 0
    # an encoder given in code cannot be rebuilt at other sizes: the candidate is left out
    given = Categorizer(cfg, encoder=ColourEncoder()).fit(train)
    assert set(given.selection_["validation"]) == {"probe"}


def test_head_candidate_reuses_the_multisize_first_size_head_when_it_is_the_same_fit(toy, sized_encoder, monkeypatch,
                                                                                      one_torch_thread):
    from tests.categorize.test_categorizer import SizedColourEncoder

    monkeypatch.setattr(SizedColourEncoder, "fingerprint", lambda self: f"toy-sized|size={self.size}")
    train, _ = toy.split(0.3, seed=0, stratify="articleType")
    kw = {"label": "articleType", "encoder": sized_encoder, "val_size": 0.3, "candidates": ("head", "multisize"),
          "head": {"hidden": 32, "epochs": 5, "lr": 0.02}, "refit": False}
    same = Categorizer(CategorizeConfig(**kw, encoder_kwargs={"size": 160})).fit(train)  # the head at 160 px
    head, multi = same.candidates_["head"], same.candidates_["multisize"]
    assert head.head_ is multi.head_.members[0] and head.fit_seconds_ == 0
    np.testing.assert_allclose(head.val_[1], multi.val_parts_[0])
    assert same.selection_["validation"]["head"]["accuracy"] == head.head_.history_[head.head_.best_epoch_ - 1]["val_accuracy"]
    other = Categorizer(CategorizeConfig(**kw)).fit(train)  # the head at the encoder's own 4 px: a fit of its own
    assert other.candidates_["head"].head_ is not other.candidates_["multisize"].head_.members[0]
