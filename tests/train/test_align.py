import numpy as np
import pytest

from fashionlens.train.align import AlignConfig, train_alignment

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pairs(n: int = 400, seed: int = 0):
    """Paired synthetic features: an item's photo and name are two noisy views of one latent."""
    rng = np.random.default_rng(seed)
    types = rng.integers(0, 3, n)
    colours = rng.integers(0, 4, n)
    z = rng.normal(size=(n, 16)) + 3 * np.eye(16)[types] + 3 * np.eye(16)[4 + colours]
    img = (z @ rng.normal(size=(16, 24)) + 0.3 * rng.normal(size=(n, 24))).astype(np.float32)
    txt = (z @ rng.normal(size=(16, 20)) + 0.3 * rng.normal(size=(n, 20))).astype(np.float32)
    return img, txt, np.stack([types.astype(str), colours.astype(str)], 1)


FAST = dict(dim=16, hidden=32, epochs=6, batch_size=40, patience=6)  # val: 40 items, chance R@10 0.25


def test_two_label_columns_add_a_supcon_term_each():
    img, txt, labels = _pairs()
    one = train_alignment(img, txt, labels[:, 0], AlignConfig(**FAST, hard_negatives=0))
    two = train_alignment(img, txt, labels, AlignConfig(**FAST, hard_negatives=0))
    # same seed, same batches: only the extra colour term differs, and it shows in the loss
    assert two.history[0]["train_loss"] > one.history[0]["train_loss"] + 0.5
    assert two.history[-1]["val_recall@10"] > 0.6


def test_hard_negative_batches_train_and_differ_from_random_batches():
    img, txt, labels = _pairs()
    rnd = train_alignment(img, txt, labels, AlignConfig(**FAST, hard_negatives=0))
    hard = train_alignment(img, txt, labels, AlignConfig(**FAST, hard_negatives=8))
    assert hard.history[-1]["val_recall@10"] > 0.6
    # look-alike negatives make InfoNCE harder than random ones
    assert hard.history[0]["train_loss"] > rnd.history[0]["train_loss"]


def test_memory_queue_adds_negatives_from_the_second_epoch():
    img, txt, labels = _pairs()
    plain = train_alignment(img, txt, labels, AlignConfig(**FAST, hard_negatives=0))
    mem = train_alignment(img, txt, labels, AlignConfig(**FAST, hard_negatives=0, memory=200))
    # the first epoch is the same training (memory unused); later ones contrast 200 more items
    assert mem.history[0]["train_loss"] == pytest.approx(plain.history[0]["train_loss"])
    assert mem.history[1]["train_loss"] > plain.history[1]["train_loss"] + 0.3
    assert mem.history[-1]["val_recall@10"] > 0.6


def test_labels_of_another_length_are_an_error():
    img, txt, labels = _pairs()
    with pytest.raises(ValueError, match="labels have 399 rows but there are 400"):
        train_alignment(img, txt, labels[:-1], AlignConfig(**FAST))
