import numpy as np
import pytest

from fashionlens.train.negatives import mine_neighbours, neighbour_batches


@pytest.fixture()
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    labels = np.array(["tshirt", "shoe", "watch"])[rng.integers(0, 3, 60)]
    labels[:2] = "bag"  # a label with 2 items: 1 neighbour, the rest padded
    return x, labels


def test_neighbours_share_the_label_and_are_the_most_similar(data):
    x, labels = data
    nb = mine_neighbours(x, labels, k=5, block=7)  # blocks smaller than a group
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    for i in range(len(x)):
        same = [j for j in range(len(x)) if j != i and labels[j] == labels[i]]
        ref = sorted(same, key=lambda j: -float(xn[i] @ xn[j]))[:5]
        got = [j for j in nb[i] if j >= 0]
        assert got == ref
        assert all(labels[j] == labels[i] for j in got) and i not in got
    assert list(nb[0]) == [1, -1, -1, -1, -1]


def test_mismatched_rows_are_an_error(data):
    x, labels = data
    with pytest.raises(ValueError, match="60 rows but labels 59"):
        mine_neighbours(x, labels[:-1], k=3)


def test_batches_cover_each_item_once_in_neighbour_groups(data):
    x, labels = data
    nb = mine_neighbours(x, labels, k=3)
    items = np.arange(5, 60)  # 0..4 held out of training: never in a batch
    batches = neighbour_batches(nb, items, batch_size=8, group=4, rng=np.random.default_rng(1))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == items.tolist()
    assert all(2 <= len(b) <= 8 for b in batches)
    # most items sit next to one of their own neighbours (groups), far more than by chance
    together = np.mean([any(j in b for j in nb[i]) for b in batches for i in b])
    assert together > 0.8
