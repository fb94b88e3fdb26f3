"""Grad-CAM (pytorch-grad-cam) for CNN and ViT image models, and a linear categorization head to explain.

Heavy imports (torch, pytorch_grad_cam) stay inside functions and the torch module classes are built
lazily, so `import fashionlens.explore` stays light.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fashionlens.encoders.base import Preprocess
from fashionlens.errors import InvalidInputError

CAM_METHODS = ("gradcam", "gradcam++", "eigencam", "layercam")


# ---- reshape transforms: token layouts -> (B, C, h, w) ------------------------------------------
def token_reshape_transform(prefix_tokens: int = 1, grid: tuple[int, int] | None = None,
                            seq_first: bool = False) -> Callable[[Any], Any]:
    """Turn a transformer block's token output into a (B, C, h, w) map for Grad-CAM.

    `prefix_tokens`: class/register/distillation tokens ahead of the patch tokens (dropped).
    `grid`: patch grid (h, w); inferred as a square when None. `seq_first`: tokens laid out
    (N, B, C) as in OpenAI CLIP and open_clip towers built with `batch_first=False`; timm, HF and
    current open_clip use (B, N, C). Tuple outputs (HF layers) use their first element.
    """

    def transform(x: Any) -> Any:
        if isinstance(x, (tuple, list)):
            x = x[0]
        if seq_first:
            x = x.transpose(0, 1)
        x = x[:, prefix_tokens:, :]
        n = x.shape[1]
        h, w = grid if grid is not None else (int(round(n**0.5)),) * 2
        if h * w != n:
            raise ValueError(f"reshape: {n} patch tokens do not fill a {h}x{w} grid "
                             f"(check prefix_tokens={prefix_tokens} and grid)")
        return x.reshape(x.shape[0], h, w, x.shape[2]).permute(0, 3, 1, 2)

    return transform


def timm_vit_reshape_transform(model: Any) -> Callable[[Any], Any]:
    """Reshape transform of a timm VisionTransformer (its prefix-token count and patch grid)."""
    return token_reshape_transform(int(getattr(model, "num_prefix_tokens", 1)),
                                   tuple(model.patch_embed.grid_size))


def clip_vit_reshape_transform(visual: Any) -> Callable[[Any], Any]:
    """Reshape transform of an open_clip `VisionTransformer` (model.visual): one class token, its
    `grid_size`, and the token layout of its transformer (`batch_first`)."""
    return token_reshape_transform(1, tuple(visual.grid_size),
                                   seq_first=not getattr(visual.transformer, "batch_first", True))


# ---- a categorization head on an encoder backbone -----------------------------------------------
def embedding_head(backbone: Any, weight: np.ndarray, bias: np.ndarray, normalize: bool = True) -> Any:
    """nn.Module: backbone -> (L2 normalise, as the Encoder does) -> linear logits."""
    import torch
    from torch import nn

    class EmbeddingHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone
            self.fc = nn.Linear(weight.shape[1], weight.shape[0])
            with torch.no_grad():
                self.fc.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
                self.fc.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = self.backbone(x)
            if normalize:
                z = nn.functional.normalize(z.float(), dim=-1)
            return self.fc(z)

    return EmbeddingHead().eval()


def fit_linear_head(backbone: Any, X: np.ndarray, y: Sequence[Any], C: float = 10.0,
                    max_iter: int = 300) -> tuple[Any, list[str], Any]:
    """Logistic regression on unit embeddings `X`, copied into an nn.Linear on top of `backbone`.

    Returns (module, class names in logit order, the fitted LogisticRegression). A binary problem
    becomes two logits (-z/2, z/2), whose softmax equals the regression's sigmoid.
    """
    from sklearn.linear_model import LogisticRegression

    y = np.asarray([str(v) for v in y])
    if len(set(y)) < 2:
        raise InvalidInputError("fit_linear_head: need at least two classes")
    clf = LogisticRegression(C=C, max_iter=max_iter).fit(X, y)
    w, b = clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32)
    if w.shape[0] == 1:
        w, b = np.vstack([-w / 2, w / 2]), np.array([-b[0] / 2, b[0] / 2], dtype=np.float32)
    return embedding_head(backbone, w, b), [str(c) for c in clf.classes_], clf


def last_conv_layer(model: Any) -> Any | None:
    """The last Conv2d / BatchNorm2d module of a CNN (e.g. timm EfficientNet's `bn2`, which includes
    the final activation): the usual Grad-CAM target. None for networks without one (ViTs)."""
    from torch import nn

    found = None
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)):
            found = m
    return found


# ---- Grad-CAM -------------------------------------------------------------------------------------
def compute_cams(model: Any, target_layer: Any, images: Sequence[Any], class_idx: int | Sequence[int],
                 preprocess: Preprocess, reshape_transform: Callable[[Any], Any] | None = None,
                 method: str = "gradcam") -> tuple[np.ndarray, np.ndarray]:
    """Class-activation maps of `images` (paths or PIL) for `class_idx` (one, or one per image).

    Returns (cams (n, s, s) in [0, 1], rgb (n, s, s, 3) in [0, 1] — the model's letterboxed input).
    """
    import torch
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, LayerCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from fashionlens.encoders.torch_utils import pixel_batch

    cls = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "eigencam": EigenCAM, "layercam": LayerCAM}
    if method not in cls:
        raise InvalidInputError(f"unknown CAM method '{method}'; choose one of {', '.join(CAM_METHODS)}")
    x = pixel_batch(list(images), preprocess)
    idx = [int(class_idx)] * len(x) if np.isscalar(class_idx) else [int(c) for c in class_idx]
    if len(idx) != len(x):
        raise ValueError(f"compute_cams: {len(idx)} class indices for {len(x)} images")
    device = next(model.parameters()).device
    model.eval()
    with cls[method](model=model, target_layers=[target_layer], reshape_transform=reshape_transform) as cam:
        maps = cam(input_tensor=x.to(device), targets=[ClassifierOutputTarget(c) for c in idx])
    mean = torch.tensor(preprocess.mean).view(1, 3, 1, 1)
    std = torch.tensor(preprocess.std).view(1, 3, 1, 1)
    rgb = (x * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    return np.asarray(maps, dtype=np.float32), rgb.astype(np.float32)


def overlay(rgb: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """Heat map (jet) over the photo: red = where the class evidence is."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    cam = np.asarray(cam, dtype=np.float32)
    if cam.shape != rgb.shape[:2]:
        cam = np.asarray(Image.fromarray(cam).resize(rgb.shape[1::-1], Image.BILINEAR))
    return Image.fromarray(show_cam_on_image(rgb, cam, use_rgb=True, image_weight=1 - alpha))


def save_gradcam(model: Any, target_layer: Any, images: Sequence[Any], class_idx: int | Sequence[int],
                 out_dir: str | Path, preprocess: Preprocess,
                 reshape_transform: Callable[[Any], Any] | None = None, method: str = "gradcam",
                 names: Sequence[str] | None = None) -> list[Path]:
    """Grad-CAM overlays of `images` for `class_idx`, one PNG per image (photo | overlay) in `out_dir`."""
    from fashionlens.utils import atomic_write

    cams, rgb = compute_cams(model, target_layer, images, class_idx, preprocess, reshape_transform, method)
    out_dir = Path(out_dir)
    paths = []
    for k in range(len(cams)):
        photo = Image.fromarray((rgb[k] * 255).round().astype(np.uint8))
        pair = Image.new("RGB", (photo.width * 2, photo.height), (255, 255, 255))
        pair.paste(photo, (0, 0))
        pair.paste(overlay(rgb[k], cams[k]), (photo.width, 0))
        p = out_dir / f"{names[k] if names is not None else f'cam_{k:03d}'}.png"
        with atomic_write(p) as tmp:
            pair.save(tmp, format="PNG")
        paths.append(p)
    return paths


def cam_mass_inside(cams: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Share of each CAM's mass that falls inside its mask (e.g. the product's non-white pixels):
    a number for 'does the map highlight the product'."""
    cams = np.asarray(cams, dtype=float)
    tot = cams.reshape(len(cams), -1).sum(axis=1)
    inside = (cams * masks).reshape(len(cams), -1).sum(axis=1)
    return inside / np.maximum(tot, 1e-12)


def product_masks(rgb: np.ndarray, white: float = 0.92) -> np.ndarray:
    """Pixels that are not (near-)white background: the product in a catalog photo on white."""
    return (np.asarray(rgb).min(axis=-1) < white).astype(np.float32)
