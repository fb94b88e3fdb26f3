"""caption -> category with tiny randomly initialised BLIP / GIT captioners saved to tmp."""

from __future__ import annotations

import numpy as np
import pytest

from fashionlens.catalog import load_catalog
from fashionlens.categorize.categorizer import CategorizeConfig, Categorizer
from fashionlens.categorize.heads import Captioner, HFCaptioner
from tests.categorize.test_categorizer import ColourEncoder, make_catalog

WORDS = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]", "a", "photo", "of", "red", "blue", "green", "shirt",
         "jeans", "shoe", "bag", "watch"]
TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                   image_size=32, patch_size=8)


def _tokenizer():
    from transformers import BertTokenizer

    # tiny configs need bos=1, eos=2, pad=0: [CLS]=1, [SEP]=2, [PAD]=0
    return BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)}, bos_token="[CLS]", eos_token="[SEP]")


def save_tiny_blip(path):
    import torch
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    torch.manual_seed(0)
    cfg = BlipConfig(vision_config=TINY_VISION, text_config=dict(
        vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        encoder_hidden_size=32, bos_token_id=1, eos_token_id=2, pad_token_id=0, sep_token_id=2,
        max_position_embeddings=32))
    BlipForConditionalGeneration(cfg).save_pretrained(path)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
                  tokenizer=_tokenizer()).save_pretrained(path)
    return path


def save_tiny_git(path):
    import torch
    from transformers import CLIPImageProcessor, GitConfig, GitForCausalLM, GitProcessor

    torch.manual_seed(0)
    cfg = GitConfig(vision_config=TINY_VISION, vocab_size=len(WORDS), hidden_size=32, intermediate_size=64,
                    num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=64,
                    bos_token_id=1, eos_token_id=2, pad_token_id=0)
    GitForCausalLM(cfg).save_pretrained(path)
    GitProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                 tokenizer=_tokenizer()).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return load_catalog(make_catalog(tmp_path_factory.mktemp("capcat"), n_per_class=6))


@pytest.mark.parametrize("build", [save_tiny_blip, save_tiny_git], ids=["blip", "git"])
def test_caption_to_category_end_to_end(build, toy, tmp_path):
    model_dir = build(tmp_path / "captioner")
    cap = HFCaptioner(model_dir, max_new_tokens=6)
    assert isinstance(cap, Captioner)
    captions = cap.caption(toy.images[:3])
    assert len(captions) == 3 and all(isinstance(c, str) for c in captions)
    assert any(w in " ".join(captions).split() for w in WORDS[5:])  # real words from the vocabulary

    cfg = CategorizeConfig(label="articleType", method="caption", encoder=str(model_dir), val_size=0.0)
    clf = Categorizer(cfg, text_encoder=ColourEncoder()).fit(toy)
    assert len(clf.last_captions_) == len(toy)
    res = clf.evaluate(toy)
    assert res["n"] == len(toy) and 0.0 <= res["accuracy"] <= 1.0
    clf.save(tmp_path / "m")
    # the saved folder names the captioner; load rebuilds it from there
    again = Categorizer.load(tmp_path / "m", text_encoder=ColourEncoder())
    np.testing.assert_allclose(again.predict_proba(toy.images[:4]), clf.predict_proba(toy.images[:4]), atol=1e-5)
    top = again.predict_top(toy.images[:1], k=3)[0]
    assert [lb for lb, _ in top] and sorted(lb for lb, _ in top) == sorted(clf.classes_)


def test_caption_text_classifier_learns_from_captions(toy):
    """With a captioner that names the colour, caption -> category is (almost) perfect."""

    class ColourNamer:
        def caption(self, images):
            import numpy as np

            names = ["red", "green", "blue"]
            return [f"a photo of a {names[int(np.argmax(np.asarray(im).reshape(-1, 3).mean(0) - 128))]} thing"
                    for im in images]

    clf = Categorizer(CategorizeConfig(label="articleType", method="caption", val_size=0.0),
                      captioner=ColourNamer(), text_encoder=ColourEncoder()).fit(toy)
    assert clf.evaluate(toy)["accuracy"] > 0.9
