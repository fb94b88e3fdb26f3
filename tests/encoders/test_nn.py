"""Fine-tuning strategies on a toy catalog with tiny random ViT / BERT towers built here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fashionlens.encoders.base import Encoder, Preprocess
from fashionlens.encoders.nn import (
    DualEncoder,
    FeatureTower,
    TextTower,
    add_lora,
    build_tower,
    find_blocks,
    freeze_all_but_last,
)
from fashionlens.train.retrieval import RetrievalConfig, bind_towers, train_retrieval
from fashionlens.train.sampler import StratifiedBatchSampler

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30), "yellow": (230, 220, 30),
           "black": (15, 15, 15), "white": (240, 240, 240), "purple": (140, 30, 160), "orange": (250, 140, 20)}
KINDS = ("shirt", "trousers", "shoes")
WORDS = [*COLOURS, *KINDS, "number", *map(str, range(10))]


class TinyViT(Encoder):
    """A 2-block random ViT on 32 px images (deterministic weights, so a run can rebuild it)."""

    modalities = ("image",)

    def __init__(self) -> None:
        import timm

        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8,
                                           embed_dim=32, depth=2, num_heads=2, num_classes=0).eval()
        self.name, self.dim = "tiny-vit", 32  # registered by the `tiny_towers` fixture
        self.preprocess = Preprocess(size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))

    def _encode_images(self, images):
        from fashionlens.encoders.torch_utils import pixel_batch

        with torch.inference_mode():
            return self.model(pixel_batch(images, self.preprocess)).numpy()


class TinyBert(Encoder):
    """A 2-layer random BERT with a word-level vocabulary written on first use."""

    modalities = ("text",)

    def __init__(self) -> None:
        import tempfile

        from transformers import BertConfig, BertModel, BertTokenizer

        vocab = Path(tempfile.gettempdir()) / "fashionlens-tiny-bert-vocab.txt"
        words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
        if not vocab.is_file() or vocab.read_text().split() != words:
            vocab.write_text("\n".join(words) + "\n")
        self.tokenizer = BertTokenizer(str(vocab))
        with torch.random.fork_rng():
            torch.manual_seed(0)
            cfg = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=64, max_position_embeddings=32)
            self.model = BertModel(cfg, add_pooling_layer=False).eval()
        self.name, self.dim = "tiny-bert", 32
        self._tower = TextTower(self)

    def _encode_texts(self, texts):
        with torch.inference_mode():
            return self._tower.encode(texts).numpy()


def make_toy(root: Path, n: int = 96):
    """Solid-colour photos named '<colour> <kind>'; the kind sets the aspect ratio."""
    from fashionlens.catalog import load_catalog

    rng = np.random.default_rng(0)
    rows = ["id,masterCategory,subCategory,articleType,baseColour,usage,productDisplayName"]
    sizes = {"shirt": (60, 60), "trousers": (30, 80), "shoes": (80, 30)}
    for i in range(n):
        colour = list(COLOURS)[i % len(COLOURS)]
        kind = KINDS[(i // len(COLOURS)) % len(KINDS)]
        rgb = tuple(int(np.clip(c + rng.integers(-12, 12), 0, 255)) for c in COLOURS[colour])
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", sizes[kind], rgb).save(root / "images" / f"{i}.jpg")
        rows.append(f"{i},Apparel,Topwear,{kind},{colour},Casual,{colour} {kind} number {i % 10}")
    (root / "styles.csv").write_text("\n".join(rows) + "\n")
    return load_catalog(root, check_images=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy(tmp_path_factory.mktemp("toy"))


def recall10(encoder, catalog) -> float:
    from fashionlens.evaluation.metrics import target_ranks

    zi = encoder.encode_images(list(catalog.images))
    zt = encoder.encode_texts(list(catalog.texts))
    return float(np.mean(target_ranks(zt, zi, np.arange(len(catalog))) < 10))


def fast_cfg(**kw) -> RetrievalConfig:
    base = dict(dim=32, hidden=64, epochs=6, batch_size=32, per_class=4, lr=5e-3, tower_lr=1e-3, val_fraction=0.25,
                patience=10, cache_dir=None, device="cpu", loss="info_nce")
    return RetrievalConfig(**{**base, **kw})


@pytest.mark.parametrize("image_strategy,text_strategy,loss,extra", [
    ("frozen", "frozen", "info_nce_supcon", {}),
    ("frozen", "frozen", "triplet", {"epochs": 15, "lr": 1e-2}),  # batch-hard learns slower
    ("partial", "frozen", "info_nce", {}),
    ("frozen", "lora", "info_nce", {}),
    ("lora", "partial", "info_nce", {}),
])
def test_each_strategy_lowers_loss_and_raises_recall(toy, tmp_path, tiny_towers, image_strategy, text_strategy, loss,
                                                     extra):
    from fashionlens.encoders.registry import create

    cfg = fast_cfg(image_strategy=image_strategy, text_strategy=text_strategy, loss=loss, **extra)
    res = train_retrieval(cfg, tmp_path / "run", toy, TinyViT(), TinyBert(), progress=False)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0]
    # the trained model vs. the same architecture untrained: recall over the whole toy gallery
    from fashionlens.encoders.finetuned import FinetunedEncoder
    from fashionlens.encoders.nn import build_dual_encoder

    init = FinetunedEncoder(build_dual_encoder(cfg.to_dict(), TinyViT(), TinyBert()), cfg.to_dict())
    assert recall10(res.encoder, toy) > recall10(init, toy) + 0.1
    # the run is a registry encoder that gives the same vectors after reloading
    loaded = create(f"run:{res.out}")
    assert set(loaded.modalities) == {"image", "text"}
    np.testing.assert_allclose(loaded.encode_texts(toy.texts[:5]), res.encoder.encode_texts(toy.texts[:5]), atol=1e-5)
    np.testing.assert_allclose(loaded.encode_images(toy.images[:5]), res.encoder.encode_images(toy.images[:5]),
                               atol=1e-4)
    for f in ("config.yaml", "metrics.jsonl", "curves.png", "encoder.json", "weights.safetensors"):
        assert (res.out / f).is_file(), f


def test_lora_trains_only_adapters(toy):
    enc = TinyBert()
    tower = build_tower(enc, "text", "lora", lora_r=4)
    trainable = [n for n, p in tower.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any(n.endswith(("query.lora_A.default.weight",)) for n in trainable)
    model = DualEncoder(FeatureTower(TinyViT(), "image"), tower, dim=16, hidden=32)
    bind_towers(model, toy, cache_dir=None, progress=False)
    base_before = {n: p.detach().clone() for n, p in tower.named_parameters() if not p.requires_grad}
    lora_before = {n: p.detach().clone() for n, p in tower.named_parameters() if p.requires_grad}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    from fashionlens.train.losses import info_nce

    rows = list(range(16))
    for _ in range(2):  # LoRA B starts at zero: A only moves from the second step
        zi, zt = model(model.image_tower.inputs(rows), model.text_tower.inputs(rows))
        opt.zero_grad()
        info_nce(zi, zt, model.log_scale).backward()
        opt.step()
    for n, p in tower.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, base_before[n]), n
    assert any(not torch.equal(p, lora_before[n]) for n, p in tower.named_parameters() if p.requires_grad)


def test_lora_on_a_cnn_says_what_is_supported():
    cnn = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 1))
    with pytest.raises(ValueError, match="partial"):
        add_lora(cnn, name="cnn")


def test_partial_unfreezes_last_blocks_and_tail():
    enc = TinyViT()
    assert find_blocks(enc.model) == ("blocks", 2)
    names = freeze_all_but_last(enc.model, 1)
    assert names and all(n.startswith(("blocks.1.", "norm", "fc_norm", "head")) for n in names)
    assert any(n.startswith("norm") for n in names)
    assert not enc.model.patch_embed.proj.weight.requires_grad
    with pytest.raises(ValueError, match="unfreeze_blocks"):
        freeze_all_but_last(enc.model, 5)


def test_efficientnet_partial_blocks_are_its_stages():
    import timm

    m = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    assert find_blocks(m) == ("blocks", 7)
    names = freeze_all_but_last(m, 2)
    assert any(n.startswith("conv_head") for n in names) and not any(n.startswith("blocks.4.") for n in names)


def test_stratified_sampler_mixes_groups_and_covers_everything():
    labels = np.repeat(np.arange(10), [30, 20, 10, 8, 8, 6, 6, 5, 4, 3])
    s = StratifiedBatchSampler(labels, batch_size=16, per_class=4, seed=1)
    batches = list(s)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(labels)))  # every item once per epoch
    full = [b for b in batches if len(b) == 16]
    # hard negatives (same label pairs) and easy negatives (several labels) in a typical batch
    assert np.mean([len(set(labels[b])) > 1 for b in full]) == 1.0
    assert np.mean([np.bincount(labels[b]).max() >= 2 for b in full]) > 0.8
    s.set_epoch(1)
    assert [list(b) for b in s] != [list(b) for b in batches]
