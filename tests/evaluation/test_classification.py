import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import f1_score, precision_recall_fscore_support

from fashionlens.evaluation.classification import (
    classification_metrics,
    confusion_json,
    confusion_matrix,
    plot_confusion,
    top_confusions,
    topk_accuracy,
)


def _slow_cm(t, p, k):
    cm = [[0] * k for _ in range(k)]
    for a, b in zip(t, p):
        cm[a][b] += 1
    return cm


def _slow_prf(t, p, c):
    tp = sum(1 for a, b in zip(t, p) if a == c and b == c)
    pred = sum(1 for b in p if b == c)
    true = sum(1 for a in t if a == c)
    prec = tp / pred if pred else 0.0
    rec = tp / true if true else 0.0
    return prec, rec, (2 * prec * rec / (prec + rec) if prec + rec else 0.0)


@pytest.fixture()
def preds():
    rng = np.random.default_rng(1)
    t = rng.integers(0, 6, 300)
    p = np.where(rng.random(300) < 0.6, t, rng.integers(0, 6, 300))
    p[p == 5] = 4  # class 5 never predicted: precision must be 0, not nan
    return t, p


def test_confusion_matrix_counts_match_predictions(preds):
    t, p = preds
    cm = confusion_matrix(t, p, 6)
    assert cm.tolist() == _slow_cm(t, p, 6)
    assert cm.sum() == len(t)
    assert (cm.sum(axis=1) == np.bincount(t, minlength=6)).all()


def test_per_class_and_averages_match_references(preds):
    t, p = preds
    labels = [f"c{i}" for i in range(6)]
    m = classification_metrics(t, p, labels)
    for row in m["per_class"]:
        c = labels.index(row["label"])
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx(_slow_prf(t, p, c))
    assert m["accuracy"] == pytest.approx(np.mean(t == p))
    assert m["macro_f1"] == pytest.approx(f1_score(t, p, average="macro", zero_division=0))
    pr, rc, f1, _ = precision_recall_fscore_support(t, p, average="weighted", zero_division=0)
    assert (m["weighted_precision"], m["weighted_recall"], m["weighted_f1"]) == pytest.approx((pr, rc, f1))


def test_macro_runs_over_truth_classes_and_lists_predicted_absent_ones():
    t = [0, 0, 1, 1]
    p = [0, 2, 1, 1]  # class 2 is predicted once but never occurs in the test truth
    m = classification_metrics(t, p, ["a", "b", "ghost", "never"])
    ref = np.mean([_slow_prf(t, p, c)[2] for c in (0, 1)])
    assert m["macro_f1"] == pytest.approx(ref)  # scikit-learn's union default would average in ghost's 0
    assert m["macro_f1"] > f1_score(t, p, average="macro", zero_division=0)
    assert [r["label"] for r in m["per_class"]] == ["a", "b"]
    assert m["predicted_absent"] == [{"label": "ghost", "predicted": 1}]


def test_rare_classes_are_flagged_with_their_support():
    t = np.r_[np.zeros(50, int), np.ones(5, int)]
    m = classification_metrics(t, t, ["common", "rare"])
    rows = {r["label"]: r for r in m["per_class"]}
    assert rows["rare"]["rare"] and rows["rare"]["support"] == 5 and not rows["common"]["rare"]
    assert m["warnings"] and "rare" in m["warnings"][0] and "fewer than 20" in m["warnings"][0]


def test_topk_accuracy_matches_reference():
    rng = np.random.default_rng(2)
    proba = rng.random((50, 10))
    t = rng.integers(0, 10, 50)
    ref = np.mean([t[i] in np.argsort(-proba[i])[:5] for i in range(50)])
    assert topk_accuracy(t, proba, 5) == pytest.approx(ref)
    assert topk_accuracy(t, proba, 10) == 1.0
    assert classification_metrics(t, proba.argmax(1), list("abcdefghij"), proba)["top5_accuracy"] == pytest.approx(ref)


def test_top_confusions_sorted_and_off_diagonal():
    cm = np.array([[10, 3, 0], [7, 5, 1], [0, 0, 4]])
    rows = top_confusions(cm, ["a", "b", "c"], k=5)
    assert [(r["true"], r["predicted"], r["count"]) for r in rows] == [("b", "a", 7), ("a", "b", 3), ("b", "c", 1)]
    assert rows[0]["share_of_true"] == pytest.approx(7 / 13)
    assert confusion_json(cm, ["a", "b", "c"])["matrix"] == cm.tolist()


def test_confusion_png_with_140_classes(tmp_path):
    rng = np.random.default_rng(0)
    t = rng.integers(0, 140, 2000)
    p = np.where(rng.random(2000) < 0.7, t, rng.integers(0, 140, 2000))
    path = plot_confusion(confusion_matrix(t, p, 140), [f"class {i}" for i in range(140)], tmp_path / "cm.png")
    with Image.open(path) as im:
        assert im.width >= 1500 and im.height >= 1500  # big enough to read 140 labels


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="3 items"):
        confusion_matrix([0, 1, 0], [0, 1], 2)
