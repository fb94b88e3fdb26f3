"""Perceptual heads over several reference splits (issue 20): 2AFC as rendered, under the SYNTHETIC
relighting proxy (`lighting.relight`, strength 2: the shared set has one rendered lighting) and the
gap between them, per split and pooled, with CIs that resample held-out reference images, and
paired differences against the previous default and the default before this round (`TODAY`).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/perceptual_splits.py OUT run [SEEDS [IDEA ...]]
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/perceptual_splits.py OUT summary SEEDS [IDEA ...]

SEEDS: comma list (default 0,1,2,3,4; docs/bench/perceptual.md also reports 5-9); seed s = `PerceptualConfig(split="reference", seed=s)`:
test = 20% of the reference images, validation = 15% of the rest (early stopping only). Heads are
fitted with `fit_head` and the config's own settings (batch, epochs, patience, loss) on features
from the product's `PerceptualEncoder.features` (`view_features`, cached under OUT/cache). The
training views are drawn once (seed 0) for every split; the relit test images are drawn per split
(seed s + 7), one draw per image. Per-triplet scores go to OUT/scores/<idea>-<seed>.npz, so
`summary` reruns cheaply.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fashionlens.perceptual.data import load_triplets  # noqa: E402
from fashionlens.perceptual.evaluate import cosine_distances, summarize_splits, two_afc_scores  # noqa: E402
from fashionlens.perceptual.train import PerceptualConfig, fit_head  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "material-triplets" / "triplets.csv"
# PerceptualConfig() before this round, spelled out so that the ideas below stay what they were
# measured as whatever the default becomes
BASE = {"encoders": ["efficientnet-lite0"], "inputs": ["rgb", "grey_world"], "pool_views": 8, "head": "mlp",
        "hidden": 512, "dropout": 0.1, "weight_decay": 1e-4, "epochs": 30, "patience": 5, "n_heads": 1,
        "n_views": 4, "aug_family": "colour_jitter", "aug_strength": 2.0}
PLAIN = {"inputs": ["rgb"], "pool_views": 1}
STAGES = {"encoders": ["efficientnet-lite0.stages"]}
IDEAS = {
    "untuned": {**BASE, **PLAIN, "untuned": True},
    "previous-default": {**BASE, **PLAIN, "n_views": 4, "aug_family": "photometric", "aug_strength": 2.0},
    "plain-mlp": {**BASE, **PLAIN, "n_views": 1},
    "default": {**BASE, "n_views": 1},  # the default before colour_jitter views (rgb + grey world, pooled)
    # training-time lighting jitter from other families than the test proxy (lighting.colour_jitter)
    "colour-jitter-s1": {**BASE, "aug_strength": 1.0},
    "colour-jitter-s2": BASE,  # the default before this round
    "rgb-colour-jitter-s1": {**BASE, **PLAIN, "aug_strength": 1.0},
    "colour-jitter-s3": {**BASE, "aug_strength": 3.0},
    "colour-jitter-s2-8views": {**BASE, "n_views": 8},
    # head capacity / regularisation / loss
    "dropout-0.3": {**BASE, "dropout": 0.3},
    "hidden-256": {**BASE, "hidden": 256},
    "logistic": {**BASE, "loss": "logistic", "temperature": 0.02},
    "wd-0.05": {**BASE, "weight_decay": 0.05},
    "epochs-8": {**BASE, "epochs": 8, "patience": 3},
    "lowrank-256": {**BASE, "head": "lowrank", "rank": 256},
    "lowrank-128": {**BASE, "head": "lowrank", "rank": 128},
    "lowrank-64": {**BASE, "head": "lowrank", "rank": 64},
    "lowrank-128-x5": {**BASE, "head": "lowrank", "rank": 128, "n_heads": 5},
    "lowrank-128-x5-s3": {**BASE, "head": "lowrank", "rank": 128, "n_heads": 5, "aug_strength": 3.0},
    "diagonal": {**BASE, "head": "diagonal"},
    "heads-3": {**BASE, "n_heads": 3},
    # multi-layer features (LPIPS-like): Lite0 final map + blocks 3-6, mean + max pooled, 3,968-d per input
    "stages-lowrank-256": {**BASE, **STAGES, "head": "lowrank", "rank": 256},
    "stages-diagonal": {**BASE, **STAGES, "head": "diagonal"},
    "stages-plain-lowrank-256": {**BASE, **STAGES, **PLAIN, "head": "lowrank", "rank": 256},
}
TODAY = "colour-jitter-s2"  # PerceptualConfig() before this round: the paired differences' reference


def _input(cfg: PerceptualConfig):
    from fashionlens.encoders.perceptual import PerceptualEncoder
    from fashionlens.encoders.registry import create
    from fashionlens.perceptual.run import _encoder_config, _HeadInput

    return _HeadInput(PerceptualEncoder([create(n, **cfg.encoder_kwargs) for n in cfg.encoders], None,
                                        _encoder_config(cfg, "human")))


def _relit_table(inp, images: list[str], seed: int, strength: float, cache: Path) -> np.ndarray:
    """Features of every image relit once by the proxy (seed `seed`), through the head's input."""
    import hashlib

    from fashionlens.catalog.images import open_image
    from fashionlens.perceptual.evaluate import _relit

    key = hashlib.blake2b(repr((inp.fingerprint(), images, seed, strength)).encode(), digest_size=10).hexdigest()
    path = cache / f"relit-{key}.npy"
    if path.is_file():
        return np.load(path)
    rng = np.random.default_rng(seed)
    out = np.concatenate([inp.encode_images([_relit(open_image(p), rng, strength) for p in images[s : s + 64]])
                          for s in range(0, len(images), 64)]).astype(np.float32)
    np.save(path, out)
    return out


def run(out: Path, seeds: list[int], ideas: list[str]) -> None:
    from fashionlens.perceptual.evaluate import view_features
    from fashionlens.perceptual.run import split_triplets

    triplets = load_triplets(DATA)
    images = triplets.images
    (out / "scores").mkdir(parents=True, exist_ok=True)
    (out / "cache").mkdir(exist_ok=True)
    for name in ideas:
        spec = dict(IDEAS[name])
        untuned = spec.pop("untuned", False)
        for seed in seeds:
            dest = out / "scores" / f"{name}-{seed}.npz"
            if dest.is_file():
                continue
            cfg = PerceptualConfig(triplets=str(DATA), split="reference", seed=seed, **spec)
            inp = _input(cfg)
            t0 = time.time()
            feats = view_features(inp, images, cfg.n_views, cfg.aug_strength, 0, out / "cache", cfg.aug_family)
            relit = _relit_table(inp, images, seed + 7, cfg.eval_lighting, out / "cache")
            t_feat = time.time() - t0
            train, val, test = split_triplets(triplets, cfg)
            clean_t, relit_t = feats[:, 0], relit
            fit_s, best_epoch = 0.0, -1
            if not untuned:
                head, fit = fit_head(feats, train.index(images), train.p_left, val.index(images), val.p_left, cfg)
                with torch.inference_mode():
                    clean_t, relit_t = (head(torch.as_tensor(x)).numpy() for x in (clean_t, relit_t))
                fit_s, best_epoch = fit.seconds, fit.best_epoch
            idx = test.index(images)
            s_c = two_afc_scores(*cosine_distances(clean_t, idx), test.p_left)
            s_r = two_afc_scores(*cosine_distances(relit_t, idx), test.p_left)
            np.savez(dest, clean=s_c, relit=s_r, ref=np.array(test.ref))
            print(json.dumps({"idea": name, "seed": seed, "clean": round(s_c.mean(), 4), "relit": round(s_r.mean(), 4),
                              "gap": round((s_c - s_r).mean(), 4), "best_epoch": best_epoch,
                              "feature_s": round(t_feat, 1), "fit_s": round(fit_s, 1),
                              "load": round(os.getloadavg()[0], 1)}), flush=True)


def _fmt(r: dict) -> str:
    return f"{r['2afc']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"


def summary(out: Path, seeds: list[int], ideas: list[str]) -> None:
    """One row per idea: pooled means over the splits with reference-resampling CIs; paired
    differences (same triplets, same resampled references) of the gap against the previous default
    and the default, and gap - half the previous default's (< 0: the halving target is met)."""
    def load(name: str) -> list[dict]:
        return [dict(np.load(out / "scores" / f"{name}-{s}.npz")) for s in seeds]

    prev, default = load("previous-default"), load(TODAY)
    for name in ideas:
        cur = load(name)
        refs = [c["ref"] for c in cur]
        gap = [c["clean"] - c["relit"] for c in cur]

        def stat(xs: list[np.ndarray], refs: list[np.ndarray] = refs) -> dict:
            return summarize_splits(xs, refs, 2000, 0)

        row = {"idea": name, "splits": ",".join(map(str, seeds)), "as_rendered": stat([c["clean"] for c in cur]),
               "relit_proxy": stat([c["relit"] for c in cur]), "gap": stat(gap)}
        for label, base in (("prev", prev), ("default", default)):
            base_gap = [b["clean"] - b["relit"] for b in base]
            row[f"rendered_minus_{label}"] = stat([c["clean"] - b["clean"] for c, b in zip(cur, base, strict=True)])
            row[f"gap_minus_{label}"] = stat([g - b for g, b in zip(gap, base_gap, strict=True)])
        row["gap_minus_half_prev"] = stat([g - 0.5 * (b["clean"] - b["relit"]) for g, b in zip(gap, prev, strict=True)])
        print(f"| {name} | {row['splits']} | {_fmt(row['as_rendered'])} | {_fmt(row['relit_proxy'])} | "
              f"{_fmt(row['gap'])} | {_fmt(row['gap_minus_prev'])} | {_fmt(row['gap_minus_half_prev'])} | "
              f"{_fmt(row['rendered_minus_default'])} | {_fmt(row['gap_minus_default'])} |")
        with open(out / "summary.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")


def main() -> None:
    torch.set_num_threads(1)  # two cores shared with other work
    out, what = Path(sys.argv[1]), sys.argv[2]
    seeds = [int(s) for s in (sys.argv[3] if len(sys.argv) > 3 else "0,1,2,3,4").split(",")]
    ideas = sys.argv[4:] or list(IDEAS)
    (run if what == "run" else summary)(out, seeds, ideas)


if __name__ == "__main__":
    main()
