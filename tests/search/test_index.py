"""The spine on real data: import → embed → align → index → search → evaluate."""

import numpy as np
import pytest
import torch

from fashionlens.embed import embed_images, embed_texts
from fashionlens.encoders import create
from fashionlens.encoders.nn import ProjectionHead
from fashionlens.evaluation.metrics import metrics_from_ranks, target_ranks
from fashionlens.search.evaluate import evaluate_retrieval
from fashionlens.search.index import BuildConfig, SearchIndex, build_index
from fashionlens.train.align import train_alignment
from fashionlens.train.config import AlignConfig


@pytest.fixture(scope="module")
def cache(emb_cache):
    return emb_cache


@pytest.fixture(scope="module")
def split(myntra_small):
    return myntra_small.split(100, seed=0)


@pytest.fixture(scope="module")
def built(split, cache, tmp_path_factory):
    train, _ = split
    cfg = BuildConfig(cache_dir=cache, align=AlignConfig(epochs=25, batch_size=64, patience=25))
    return build_index(train, tmp_path_factory.mktemp("idx"), cfg, progress=False)


def test_alignment_lowers_loss_and_beats_unaligned_baseline(split, cache):
    train, test = split
    ie, te = create("efficientnet-lite0"), create("minilm-l6")
    fi, ft = embed_images(ie, train, cache, progress=False), embed_texts(te, train, cache, progress=False)
    gi, gt = embed_images(ie, test, cache, progress=False), embed_texts(te, test, cache, progress=False)
    res = train_alignment(fi, ft, train.column("articleType"), AlignConfig(epochs=25, batch_size=64, patience=25))
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < 0.7 * losses[0]

    def recall10(hi, ht):
        with torch.no_grad():
            zi = torch.nn.functional.normalize(hi(torch.tensor(gi)), dim=-1).numpy()
            zt = torch.nn.functional.normalize(ht(torch.tensor(gt)), dim=-1).numpy()
        return metrics_from_ranks(target_ranks(zt, zi, np.arange(len(zi))), len(zi))["recall@10"]

    torch.manual_seed(0)
    unaligned = recall10(ProjectionHead(fi.shape[1], 256), ProjectionHead(ft.shape[1], 256))
    aligned = recall10(res.image_head, res.text_head)
    assert aligned > unaligned + 0.15
    assert aligned > 3 * 10 / len(test)  # well above chance


def test_index_search_and_filters(built):
    hits = built.search("black shoes", k=5)
    assert len(hits) == 5 and hits[0]["score"] >= hits[-1]["score"]
    assert {"id", "score", "text", "image", "articleType"} <= set(hits[0])
    foot = built.search("black shoes", k=5, filters={"masterCategory": "footwear"})
    assert foot and all(h["masterCategory"] == "Footwear" for h in foot)
    with pytest.raises(KeyError, match="unknown filter column 'colour'"):
        built.search("x", filters={"colour": "Red"})


def test_similar_excludes_itself_and_mostly_shares_type(built):
    item = built.catalog.ids[0]
    hits = built.similar(item_id=item, k=5)
    assert item not in [h["id"] for h in hits]
    from PIL import Image

    img = Image.open(built.catalog.images[0])
    by_photo = built.similar(image=img, k=1)
    assert by_photo[0]["id"] == item  # its own photo is the nearest


def test_save_load_round_trip_and_incremental_updates(built, split, cache):
    reopened = SearchIndex(built.folder)
    assert reopened.search("blue jeans", k=3) == built.search("blue jeans", k=3)
    _, test = split
    extra = test.subset(range(5))
    reopened.add(extra, cache_dir=cache)
    assert len(reopened.index) == len(built.index) + 5
    own = reopened.similar(image=extra.images[0], k=1)
    assert own[0]["id"] == extra.ids[0]
    reopened.remove([extra.ids[0]])
    reopened.save()
    again = SearchIndex(built.folder)
    assert extra.ids[0] not in again.catalog.ids and extra.ids[1] in again.catalog.ids
    assert list(again.catalog.ids) == list(again.index.ids)


def test_query_with_another_encoder_is_refused(built):
    with pytest.raises(ValueError, match="another space"):
        built.check_encoder("clip-vit-b-32.openai")


def test_evaluate_retrieval_on_held_out(built, split, cache):
    _, test = split
    res = evaluate_retrieval(built.encoder, test, cache_dir=cache, progress=False)
    t2i = res["text_to_image"]
    assert t2i["gallery_size"] == len(test) and t2i["recall@10"] > 3 * t2i["chance@10"]
    assert 0 <= res["image_to_image"]["precision@10_articleType"] <= 1


def test_default_build_fuses_colour_and_learns_type_and_colour(built):
    from fashionlens.utils import read_json

    assert built.info["encoder_name"] == "aligned(efficientnet-lite0.colour+minilm-l6)"
    assert built.info["dim"] == 256 and built.encoder.image_base.dim == 1280 + 80
    assert read_json(built.folder / "encoder" / "metrics.json")["label_columns"] == ["articleType", "baseColour"]
