"""Perceptual alignment: triplet I/O, 2AFC metrics and losses against slow references, proxy mining."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fashionlens.perceptual.evaluate import (
    Triplets,
    cosine_distances,
    human_ceiling,
    load_triplets,
    mine_proxy_triplets,
    save_triplets,
    split_by_reference,
    two_afc,
    two_afc_scores,
)
from fashionlens.perceptual.train import hinge_triplet_loss, logistic_triplet_loss


# ---- metrics & losses vs slow references ------------------------------------------------------
def _slow_2afc(d_l, d_r, lv, rv):
    total = 0.0
    for a, b, left, right in zip(d_l, d_r, lv, rv, strict=True):
        if a < b:
            total += left / (left + right)
        elif a > b:
            total += right / (left + right)
        else:
            total += 0.5
    return total / len(d_l)


def test_two_afc_matches_slow_reference_and_ci_brackets_it():
    rng = np.random.default_rng(0)
    n = 300
    d_l, d_r = rng.random(n), rng.random(n)
    d_r[:10] = d_l[:10]  # model ties
    lv, rv = rng.integers(0, 5, n).astype(float), rng.integers(0, 5, n).astype(float)
    lv[lv + rv == 0] = 1
    p = lv / (lv + rv)
    res = two_afc(d_l, d_r, p, n_boot=300)
    assert res["2afc"] == pytest.approx(_slow_2afc(d_l, d_r, lv, rv))
    assert res["ci95"][0] < res["2afc"] < res["ci95"][1] and res["n"] == n
    assert two_afc_scores([0.1], [0.2], [0.75])[0] == 0.75  # picks left: credit = left's share
    # the ceiling: majority share, ties count 0.5
    slow = np.mean([max(a, b) / (a + b) for a, b in zip(lv, rv, strict=True)])
    assert human_ceiling(p) == pytest.approx(slow)
    # a model that always agrees with the majority reaches the ceiling
    assert two_afc_scores(1 - p, p, p).mean() == pytest.approx(human_ceiling(p))


def test_losses_match_slow_references():
    rng = np.random.default_rng(1)
    d_l = torch.as_tensor(rng.random(50))
    d_r = torch.as_tensor(rng.random(50))
    p = torch.as_tensor(rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], 50))
    m, t = 0.05, 0.05
    terms = []
    for a, b, q in zip(d_l.tolist(), d_r.tolist(), p.tolist(), strict=True):
        if q == 0.5:
            continue
        sign = 1.0 if q > 0.5 else -1.0
        terms.append(max(0.0, m - sign * (b - a)))
    assert hinge_triplet_loss(d_l, d_r, p, m).item() == pytest.approx(sum(terms) / len(terms))
    bce = []
    for a, b, q in zip(d_l.tolist(), d_r.tolist(), p.tolist(), strict=True):
        s = 1 / (1 + np.exp(-(b - a) / t))
        bce.append(-(q * np.log(s) + (1 - q) * np.log(1 - s)))
    assert logistic_triplet_loss(d_l, d_r, p, t).item() == pytest.approx(np.mean(bce), rel=1e-6)


def test_cosine_distances_slow_reference():
    rng = np.random.default_rng(2)
    f = rng.normal(size=(6, 4))
    idx = np.array([[0, 1, 2], [3, 4, 5]])
    d_l, d_r = cosine_distances(f, idx)
    for k, (r, a, b) in enumerate(idx):
        cos = lambda u, v: u @ v / np.linalg.norm(u) / np.linalg.norm(v)  # noqa: E731
        assert d_l[k] == pytest.approx(1 - cos(f[r], f[a]))
        assert d_r[k] == pytest.approx(1 - cos(f[r], f[b]))


# ---- triplet files -----------------------------------------------------------------------------
def test_real_nights_layout_loads_with_ties(shared_data):
    t = load_triplets(shared_data / "material-triplets" / "triplets.csv")
    assert len(t) == 22801 and len(t.images) == 100 and t.source == "human"
    assert (t.p_left == 0.5).sum() > 1000  # ties are real and kept
    assert 0.80 < human_ceiling(t.p_left) < 0.88
    assert all(p.startswith(str(shared_data)) for p in t.images[:3])


def test_plain_csv_and_errors(tmp_path):
    (tmp_path / "t.csv").write_text("anchor,a,b,choice\nx.jpg,y.jpg,z.jpg,0\nx.jpg,z.jpg,y.jpg,1\nx.jpg,y.jpg,z.jpg,0.75\n")
    t = load_triplets(tmp_path / "t.csv")
    assert t.p_left.tolist() == [1.0, 0.0, 0.25]
    assert t.ref[0] == str((tmp_path / "x.jpg").resolve())
    save_triplets(t, tmp_path / "n.csv")
    back = load_triplets(tmp_path / "n.csv")
    assert back.p_left.tolist() == t.p_left.tolist() and back.left == t.left
    (tmp_path / "bad.csv").write_text("anchor,a,b,choice\nx,y,z,0\nx,y,z,2\n")
    with pytest.raises(ValueError, match="row 3: choice"):
        load_triplets(tmp_path / "bad.csv")
    (tmp_path / "odd.csv").write_text("q,w\n1,2\n")
    with pytest.raises(ValueError, match="unknown triplet layout"):
        load_triplets(tmp_path / "odd.csv")
    (tmp_path / "novote.csv").write_text("ref_path,left_path,right_path,left_vote,right_vote,split\na,b,c,0,0,train\n")
    with pytest.raises(ValueError, match="row 2: triplet has no votes"):
        load_triplets(tmp_path / "novote.csv")
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        load_triplets(tmp_path / "missing.csv")


def test_split_holds_out_reference_images():
    rng = np.random.default_rng(3)
    names = [f"/i/{k}.jpg" for k in range(20)]
    ref, left, right = ([names[i] for i in rng.integers(0, 20, 400)] for _ in range(3))
    t = Triplets(ref, left, right, np.ones(400), np.zeros(400))
    tr, te = split_by_reference(t, 0.25, seed=0)
    assert len(tr) + len(te) == 400 and len(te) > 0
    assert not set(tr.ref) & set(te.ref)
    tr2, _ = split_by_reference(t, 0.25, seed=0, strict=True)
    assert not (set(tr2.left) | set(tr2.right) | set(tr2.ref)) & set(te.ref)


def test_proxy_triplets_follow_the_catalog_labels(myntra_small):
    t = mine_proxy_triplets(myntra_small, n=200, seed=0)
    assert t.source == "proxy" and len(t) == 200
    df = myntra_small.df.set_index("image")
    rule1 = rule2 = 0
    for r, a, b, p in zip(t.ref, t.left, t.right, t.p_left, strict=True):
        close, far = (a, b) if p == 1.0 else (b, a)
        R, C, Fa = df.loc[r], df.loc[close], df.loc[far]
        assert C.articleType == R.articleType or C.subCategory == R.subCategory
        if C.baseColour == R.baseColour and C.articleType == R.articleType and Fa.articleType == R.articleType:
            assert Fa.baseColour != R.baseColour
            rule1 += 1
        else:
            assert C.articleType == R.articleType and Fa.subCategory == R.subCategory
            assert Fa.articleType != R.articleType
            rule2 += 1
        assert r != close
    assert rule1 > 50 and rule2 > 50
    assert 0.3 < t.p_left.mean() < 0.7  # closer side is randomised


def test_split_summary_resamples_reference_images_and_averages_splits():
    from fashionlens.perceptual.evaluate import summarize, summarize_splits

    # 10 reference images x 100 triplets; each image's triplets all score 1 or all 0: the material,
    # not the triplet, is the unit that varies, so a triplet bootstrap is far too narrow
    groups = np.repeat(np.arange(10), 100)
    scores = (groups % 2 == 0).astype(float)
    by_ref, by_triplet = summarize(scores, 500, 0, groups=groups), summarize(scores, 500, 0)
    assert by_ref["2afc"] == by_triplet["2afc"] == pytest.approx(0.5)
    width = lambda r: r["ci95"][1] - r["ci95"][0]  # noqa: E731
    assert width(by_ref) > 5 * width(by_triplet) and by_ref["ci95"][0] < 0.5 < by_ref["ci95"][1]
    # splits count equally, whatever their size; a paired difference of equal scores is exactly 0
    two = summarize_splits([np.ones(10), np.zeros(1000)], [np.arange(10), np.arange(1000) % 7], 200, 0)
    assert two["2afc"] == pytest.approx(0.5) and two["per_split"] == [1.0, 0.0] and two["n"] == 1010
    assert summarize_splits([scores - scores], [groups], 200)["ci95"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="as many groups as scores"):
        summarize_splits([scores], [groups[:5]])
