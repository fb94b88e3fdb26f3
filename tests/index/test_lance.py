"""LanceDB backend: on disk, IVF-PQ recall vs exact, filters, add/delete, reopen."""

import numpy as np
import pytest

from fashionlens.index.exact import ExactIndex
from fashionlens.index.factory import backend_of, make_index, open_index
from fashionlens.index.lance import LanceIndex
from tests.index.test_ann import N, clustered, recall

pytest.importorskip("lancedb")


@pytest.fixture(scope="module")
def data():
    return clustered(N, 0), [f"i{j}" for j in range(N)], clustered(40, 1)


@pytest.fixture(scope="module")
def lance(data, tmp_path_factory):
    x, ids, _ = data
    return make_index("lance", x, ids, uri=tmp_path_factory.mktemp("lance"))


def test_recall_filters_and_exclude(lance, data):
    x, ids, q = data
    exact = ExactIndex(x, ids)
    assert list(lance.uri.rglob("*.idx")) or list(lance.uri.rglob("_indices/*"))  # an ANN index was built
    scores, rows = lance.search(q, 10)
    assert recall(rows, exact.search(q, 10)[1]) >= 0.9
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", q, x[rows]), atol=1e-4)
    mask = np.zeros(N, dtype=bool)
    mask[::4] = True
    _, rows = lance.search(q, 10, mask=mask, exclude=["i0"])
    assert np.all(rows % 4 == 0) and not np.any(rows == 0)
    assert recall(rows, exact.search(q, 10, mask=mask, exclude=["i0"])[1]) >= 0.9


def test_add_delete_persist_on_disk_and_compact(data, tmp_path):
    x, ids, _ = data
    index = LanceIndex(x[:3000], ids[:3000], uri=tmp_path / "db")
    index.save(tmp_path / "ix")  # copies the table into the index folder
    assert backend_of(tmp_path / "ix") == "lance"
    new = clustered(2, 5)
    index.add(new, ["n0", "i9"])
    assert index.remove(["i4", "nope"]) == 1
    # no save() after add/remove: the table on disk already holds them
    again = open_index(tmp_path / "ix")
    assert isinstance(again, LanceIndex) and len(again) == 3000  # +n0, i9 replaced, -i4
    _, rows = again.search(new, 1)
    assert [again.ids[r] for r in rows[:, 0]] == ["n0", "i9"]
    with pytest.raises(KeyError):
        again.position("i4")
    np.testing.assert_allclose(again.vectors[again.position("n0")], new[0], atol=1e-6)
    keep = again.compact()
    assert len(keep) == 3000 and len(again.ids) == 3000
    _, rows = again.search(new[0], 1)
    assert again.ids[rows[0, 0]] == "n0"
