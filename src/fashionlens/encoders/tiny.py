"""Tiny random checkpoints of every hub-backed family, saved in each library's own format.

For tests, benchmarks of the pipeline and demos without a download: `build_tiny(name, dir)` writes
a 2-layer, 32-wide, 32-px model and returns the `create(name, **kwargs)` arguments that load it
through the same path as the real hub checkpoint. Random weights: the vectors mean nothing.

    >>> from fashionlens.encoders import create
    >>> from fashionlens.encoders.tiny import build_tiny
    >>> enc = create("git-base", **build_tiny("git-base", tmp_dir))  # doctest: +SKIP
    >>> enc.caption(images)                                            # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fashionlens.errors import NotFoundError

H = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)
VISION = dict(**H, image_size=32, patch_size=8, initializer_range=0.02)  # BLIP defaults to 1e-10
WORDS = ["red", "blue", "green", "black", "white", "shirt", "dress", "shoes", "jeans", "cotton", "kurta", "watch", "bag", "women", "men", "casual", "formal", "top", "skirt", "a", "the", "of", "with", "and"]


def _bert_vocab(d: Path) -> Path:
    """[PAD]=0, [CLS]=1 (bos), [SEP]=2 (eos): the ids tiny BLIP/GIT configs need."""
    chars = [c for c in "abcdefghijklmnopqrstuvwxyz"] + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    vocab = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]", *WORDS, *chars]
    d.mkdir(parents=True, exist_ok=True)
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return d / "vocab.txt"


def _bert_tokenizer(d: Path) -> Any:
    from transformers import BertTokenizer

    return BertTokenizer(str(_bert_vocab(d)))


def _clip_tokenizer(d: Path) -> Any:
    """The real CLIP BPE, rebuilt from the vocabulary open_clip bundles."""
    import open_clip
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    tok = SimpleTokenizer()
    d.mkdir(parents=True, exist_ok=True)
    hf_names = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    (d / "vocab.json").write_text(json.dumps({hf_names.get(k, k): v for k, v in tok.encoder.items()}))
    bpe = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(bpe) as f:  # the same slice open_clip's SimpleTokenizer reads
        merges = f.read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    (d / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"))


def _save(d: Path, model: Any, *parts: Any) -> Path:
    model.save_pretrained(d)
    for p in parts:
        p.save_pretrained(d)
    return d


# ---- tiny checkpoints, one builder per family ----------------------------------------------------
def build_open_clip(d: Path, siglip: bool = False) -> Path:
    """open_clip's hub layout: open_clip_config.json + open_clip_model.safetensors."""
    from open_clip.model import CLIP, CustomTextCLIP
    from safetensors.torch import save_file

    vision = {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16}
    text = {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}
    model_cfg: dict[str, Any] = {"embed_dim": 16, "vision_cfg": vision, "text_cfg": text}
    mean, std = [0.48, 0.45, 0.40], [0.26, 0.26, 0.27]
    if siglip:  # SigLIP's text tower: custom text module, no causal mask, last-token pooling
        model_cfg.update(embed_dim=24, init_logit_bias=-10)
        text.update(no_causal_mask=True, proj_bias=True, pool_type="last")
        mean = std = [0.5, 0.5, 0.5]
    model = (CustomTextCLIP if siglip else CLIP)(**model_cfg)
    d.mkdir(parents=True)
    cfg = {"model_cfg": {**model_cfg, "custom_text": siglip}, "preprocess_cfg": {"mean": mean, "std": std}}
    (d / "open_clip_config.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(d / "open_clip_model.safetensors"))
    return d


def build_open_siglip(d: Path) -> Path:
    return build_open_clip(d, siglip=True)


def build_hf_clip(d: Path) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tok = _clip_tokenizer(d)
    cfg = CLIPConfig(text_config=dict(**H, vocab_size=49408, max_position_embeddings=77,
                                      bos_token_id=49406, eos_token_id=49407),
                     vision_config=VISION, projection_dim=16)
    proc = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return _save(d, CLIPModel(cfg), tok, proc)


def build_dino(d: Path) -> Path:
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    return _save(d, ViTModel(ViTConfig(**VISION), add_pooling_layer=False),
                 ViTImageProcessor(size={"height": 32, "width": 32}))


def build_dinov2(d: Path) -> Path:
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    proc = BitImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32})
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2,
                       image_size=32, patch_size=8)
    return _save(d, Dinov2Model(cfg), proc)


def build_dinov3(d: Path) -> Path:
    from transformers import DINOv3ViTConfig, DINOv3ViTImageProcessor, DINOv3ViTModel

    cfg = DINOv3ViTConfig(**H, image_size=32, patch_size=8, num_register_tokens=2)
    return _save(d, DINOv3ViTModel(cfg), DINOv3ViTImageProcessor(size={"height": 32, "width": 32}))


def build_bert(d: Path) -> Path:
    from transformers import BertConfig, BertModel

    tok = _bert_tokenizer(d)
    return _save(d, BertModel(BertConfig(**H, vocab_size=len(tok), max_position_embeddings=64)), tok)


def _blip_config(vocab: int) -> Any:
    from transformers import BlipConfig

    text = dict(**H, vocab_size=vocab, max_position_embeddings=64, bos_token_id=1, eos_token_id=2,
                pad_token_id=0, sep_token_id=2)
    return BlipConfig(text_config=text, vision_config=VISION, image_text_hidden_size=16, projection_dim=16)


def build_blip(d: Path) -> tuple[Path, Path]:
    from transformers import (
        BlipForConditionalGeneration,
        BlipForImageTextRetrieval,
        BlipImageProcessor,
    )

    tok = _bert_tokenizer(d / "vocab")
    proc = BlipImageProcessor(size={"height": 32, "width": 32})
    cfg = _blip_config(len(tok))
    return (_save(d / "itm", BlipForImageTextRetrieval(cfg), tok, proc),
            _save(d / "caption", BlipForConditionalGeneration(cfg), tok, proc))


def build_git(d: Path) -> Path:
    from transformers import CLIPImageProcessor, GitConfig, GitForCausalLM

    tok = _bert_tokenizer(d)
    cfg = GitConfig(vision_config=VISION, **H, vocab_size=len(tok), max_position_embeddings=64,
                    bos_token_id=1, eos_token_id=2, pad_token_id=0)
    proc = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return _save(d, GitForCausalLM(cfg), tok, proc)


def build_resnet(d: Path) -> Path:
    import timm
    from safetensors.torch import save_file

    d.mkdir(parents=True)
    model = timm.create_model("resnet50", pretrained=False, num_classes=0)
    save_file(model.state_dict(), str(d / "model.safetensors"))
    return d


# registry name -> builder; names sharing a builder share a checkpoint layout
BUILDERS: dict[str, Callable[[Path], Any]] = {
    "clip-vit-b-32.openai": build_open_clip,
    "clip-vit-b-16.openai": build_open_clip,
    "marqo-fashionclip": build_open_clip,
    "marqo-fashionsiglip": build_open_siglip,
    "siglip-b-16": build_open_siglip,
    "fashion-clip": build_hf_clip,
    "dino-vits16": build_dino,
    "dino-vitb16": build_dino,
    "dinov2-vits14": build_dinov2,
    "dinov2-vitb14": build_dinov2,
    "dinov3-vits16": build_dinov3,
    "dinov3-vitb16": build_dinov3,
    "bert-base-uncased": build_bert,
    "blip-base": build_blip,
    "git-base": build_git,
    "resnet50.tv-in1k": build_resnet,
}


def build_tiny(name: str, root: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write a tiny random checkpoint for registry `name` under `root`; returns `create()` kwargs."""
    import torch

    if name not in BUILDERS:
        raise NotFoundError(f"no tiny builder for '{name}'. Known: {', '.join(BUILDERS)}")
    torch.manual_seed(seed)
    out = BUILDERS[name](Path(root) / name)
    if name == "blip-base":
        return {"weights": out[0], "captioner_weights": out[1]}
    if name == "resnet50.tv-in1k":
        return {"weights": out, "size": 32}  # a CNN has no built-in resolution
    return {"weights": out}
