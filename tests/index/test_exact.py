import numpy as np
import pytest

from fashionlens.encoders.base import l2_normalize
from fashionlens.index import ExactIndex
from fashionlens.utils import FolderError


@pytest.fixture()
def index():
    rng = np.random.default_rng(0)
    return ExactIndex(l2_normalize(rng.normal(size=(200, 16))), [f"i{j}" for j in range(200)])


def _brute(vectors, q, k, allowed=None):
    sc = vectors @ q
    if allowed is not None:
        sc = np.where(allowed, sc, -np.inf)
    return np.argsort(-sc)[:k]


def test_search_matches_brute_force(index):
    q = index.vectors[:5] + 0.1
    scores, idx = index.search(q, 7)
    for r in range(5):
        assert idx[r].tolist() == _brute(index.vectors, q[r], 7).tolist()
        assert np.all(np.diff(scores[r]) <= 1e-6)


def test_filter_mask_and_exclude(index):
    mask = np.zeros(200, dtype=bool)
    mask[::3] = True
    _, idx = index.search(index.vectors[0], 5, mask=mask, exclude=["i0"])
    assert all(i % 3 == 0 and i != 0 for i in idx[0])
    allowed = mask.copy()
    allowed[0] = False
    assert idx[0].tolist() == _brute(index.vectors, index.vectors[0], 5, allowed).tolist()


def test_fewer_matches_than_k_are_padded(index):
    mask = np.zeros(200, dtype=bool)
    mask[[4, 9]] = True
    scores, idx = index.search(index.vectors[4], 5, mask=mask)
    assert idx[0, :2].tolist() == [4, 9] and (idx[0, 2:] == -1).all() and np.isinf(scores[0, 2:]).all()


def test_add_remove_without_rebuild(index):
    new = l2_normalize(np.ones((1, 16)))
    index.add(new, ["new"])
    _, idx = index.search(new, 1)
    assert index.ids[idx[0, 0]] == "new"
    assert index.remove(["new", "i3", "nope"]) == 2
    _, idx = index.search(new, 200)
    assert "new" not in index.ids[idx[0][idx[0] >= 0]] and len(index) == 199
    with pytest.raises(KeyError):
        index.position("i3")


def test_save_load_round_trip(index, tmp_path):
    index.remove(["i7"])
    index.save(tmp_path)
    back = ExactIndex.load(tmp_path)
    q = index.vectors[:3]
    assert (back.search(q, 10)[1] == index.search(q, 10)[1]).all()
    assert len(back) == 199


def test_files_of_different_builds_are_refused_naming_the_file(index, tmp_path):
    index.save(tmp_path)
    np.save(tmp_path / "vectors.npy", index.vectors[:150])  # a rebuild killed after its vectors
    with pytest.raises(FolderError, match=r"vectors\.npy: 150 rows but ids\.npy has 200"):
        ExactIndex.load(tmp_path)
    (tmp_path / "alive.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(FolderError, match=r"alive\.npy: unreadable"):
        ExactIndex.load(tmp_path)


def test_wrong_dimension_says_so(index):
    with pytest.raises(ValueError, match="another encoder"):
        index.search(np.ones((1, 8)), 3)
