"""faiss HNSW / IVF-PQ backends against the exact index on 5k clustered synthetic vectors."""

import numpy as np
import pytest

from fashionlens.index.ann import HNSWIndex, IVFPQIndex
from fashionlens.index.base import VectorIndex
from fashionlens.index.exact import ExactIndex
from fashionlens.index.factory import backend_of, make_index, open_index
from fashionlens.utils import FolderError

N, DIM = 5000, 32


def clustered(n: int, seed: int) -> np.ndarray:
    """Unit vectors around 50 fixed centres (neighbourhoods with structure, like real embeddings)."""
    centres = np.random.default_rng(99).standard_normal((50, DIM))
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, 50, n)] + 0.5 * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    return clustered(N, 0), [f"i{j}" for j in range(N)], clustered(100, 1)


@pytest.fixture(scope="module", params=["hnsw", "ivfpq"])
def built(request, data):
    x, ids, _ = data
    return make_index(request.param, x, ids)


def recall(found, truth):
    return np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(found, truth)])


def test_recall_against_exact_and_exact_scores(built, data):
    x, ids, q = data
    _, truth = ExactIndex(x, ids).search(q, 10)
    scores, rows = built.search(q, 10)
    assert recall(rows, truth) >= 0.9
    # candidates are re-ranked with the true vectors: scores are the real cosines, best first
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", q, x[rows]), atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    assert isinstance(built, VectorIndex)


@pytest.mark.parametrize("keep_every", [3, 200])  # a broad filter (faiss IDSelector) and a narrow one (exact)
def test_mask_prefilter_and_exclude(built, data, keep_every):
    x, ids, q = data
    mask = np.zeros(N, dtype=bool)
    mask[::keep_every] = True
    _, truth = ExactIndex(x, ids).search(q, 10, mask=mask, exclude=["i0"])
    _, rows = built.search(q, 10, mask=mask, exclude=["i0"])
    assert np.all(rows % keep_every == 0) and not np.any(rows == 0)
    assert recall(rows, truth) >= 0.9


def test_add_replace_remove_compact(data):
    x, ids, _ = data
    for backend in ("hnsw", "ivfpq"):
        index = make_index(backend, x[:4000], ids[:4000])
        new = clustered(3, 7)
        index.add(new, ["n0", "n1", "i5"])  # i5 is replaced by a new vector
        assert len(index) == 4002
        _, rows = index.search(new, 1)
        assert [index.ids[r] for r in rows[:, 0]] == ["n0", "n1", "i5"]
        assert index.remove(["n0", "i7", "missing"]) == 2
        _, rows = index.search(np.stack([new[0], x[7]]), 5)
        assert not {"n0", "i7"} & {index.ids[r] for r in rows.ravel()}
        with pytest.raises(KeyError):
            index.position("i7")
        keep = index.compact()
        assert len(index.ids) == len(index) == 4000 and len(keep) == 4000
        _, rows = index.search(new[1], 1)
        assert index.ids[rows[0, 0]] == "n1"


def test_save_load_round_trip(built, data, tmp_path):
    x, ids, q = data
    built.save(tmp_path / "ix")
    assert backend_of(tmp_path / "ix") == built.backend
    loaded = open_index(tmp_path / "ix")
    assert type(loaded) is type(built) and loaded.params == built.params
    assert isinstance(loaded.vectors.base, np.memmap)  # exact vectors stay on disk (a view of the map)
    for a, b in zip(built.search(q, 10), loaded.search(q, 10)):
        np.testing.assert_array_equal(a, b)


def test_a_faiss_file_of_another_build_is_refused(data, tmp_path):
    x, ids, _ = data
    HNSWIndex(x, ids).save(tmp_path / "ix")
    HNSWIndex(x[:1200], ids[:1200]).save(tmp_path / "other")
    (tmp_path / "other" / "ann.faiss").replace(tmp_path / "ix" / "ann.faiss")
    with pytest.raises(FolderError, match=r"ann\.faiss: 1200 vectors but ids\.npy has 5000"):
        open_index(tmp_path / "ix")


def test_exact_folder_and_factory_errors(data, tmp_path):
    x, ids, q = data
    ExactIndex(x, ids).save(tmp_path / "old")  # the original layout, no backend.json
    assert isinstance(open_index(tmp_path / "old"), ExactIndex)
    with pytest.raises(ValueError, match="unknown index backend 'annoy'"):
        make_index("annoy", x, ids)
    with pytest.raises(ValueError, match="at least 1,000 vectors"):
        IVFPQIndex(x[:100], ids[:100])
    small = HNSWIndex(x[:30], ids[:30])  # tiny catalogs still work (scanned exactly)
    _, rows = small.search(x[3], 1)
    assert rows[0, 0] == 3
