"""The zoo as users see it: names and cards, one-line offline errors, `encoders` / `download` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fashionlens.encoders import create, list_encoders
from fashionlens.encoders.hub import ModelNotAvailableError

ZOO = ["clip-vit-b-32.openai", "clip-vit-b-16.openai", "fashion-clip", "marqo-fashionclip",
       "marqo-fashionsiglip", "siglip-b-16", "dino-vits16", "dino-vitb16", "dinov2-vits14",
       "dinov2-vitb14", "dinov3-vits16", "dinov3-vitb16", "resnet50.tv-in1k", "efficientnet-lite0",
       "efficientnet-lite1", "efficientnet-lite2", "minilm-l6", "bert-base-uncased", "blip-base",
       "git-base"]
# one name per loader path (open_clip tag, open_clip hf-hub, transformers x5, timm)
NOT_CACHED = ["clip-vit-b-32.openai", "marqo-fashionclip", "fashion-clip", "dinov2-vits14",
              "bert-base-uncased", "blip-base", "git-base", "resnet50.tv-in1k"]


def _app():
    from fashionlens.cli.main import app

    return app


def test_every_backbone_is_one_name_away_with_a_full_card() -> None:
    cards = {c.name: c for c in list_encoders()}
    assert set(ZOO) <= set(cards)
    for name in ZOO:
        c = cards[name]
        assert c.modalities and c.dim and c.source and c.licence and c.pooling, name
        if "image" in c.modalities:
            assert c.preprocess is not None and c.preprocess.size >= 160, name
    two_tower = [n for n in ZOO if cards[n].modalities == ("image", "text")]
    assert {"clip-vit-b-32.openai", "marqo-fashionsiglip", "blip-base", "git-base"} <= set(two_tower)


@pytest.mark.parametrize("name", NOT_CACHED)
def test_missing_model_fails_offline_with_one_line_naming_model_and_fix(
        name: str) -> None:
    with pytest.raises(ModelNotAvailableError) as err:
        create(name, device="cpu")
    msg = str(err.value)
    assert "\n" not in msg and f"'{name}'" in msg and f"fashionlens download {name}" in msg
    assert err.value.__cause__ is None  # no hub-client trace chained under it


def test_missing_local_weights_are_reported_as_such(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        create("dinov2-vits14", weights=tmp_path / "nope")


def test_encoders_json_lists_every_name_with_its_card() -> None:
    res = CliRunner().invoke(_app(), ["encoders", "--json"])
    assert res.exit_code == 0, res.output
    cards = {c["name"]: c for c in json.loads(res.stdout)}
    assert set(ZOO) <= set(cards)
    assert cards["dinov2-vitb14"]["dim"] == 768 and cards["dinov2-vitb14"]["modalities"] == ["image"]
    assert cards["blip-base"]["preprocess"]["size"] == 384
    res = CliRunner().invoke(_app(), ["encoders", "--modality", "text"])
    assert res.exit_code == 0 and "minilm-l6" in res.stdout and "dinov2-vitb14" not in res.stdout


def test_download_refuses_offline_in_one_line() -> None:
    res = CliRunner().invoke(_app(), ["download", "dinov2-vits14"], env={"HF_HUB_OFFLINE": "1"})
    assert res.exit_code == 2
    errors = [x for x in res.stderr.strip().splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "HF_HUB_OFFLINE" in errors[0] and "dinov2-vits14" in errors[0]
    assert "Traceback" not in res.stderr
    res = CliRunner().invoke(_app(), ["download", "no-such-model"])
    assert res.exit_code == 2 and "unknown encoder" in res.stderr


def test_download_fetches_every_repo_of_a_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub

    calls = []

    def fake_snapshot(repo, allow_patterns=None, ignore_patterns=None):
        calls.append((repo, allow_patterns, ignore_patterns))
        return str(tmp_path / repo)

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    from fashionlens.encoders.download import download

    paths = download("blip-base")  # retrieval towers + captioner: two repos
    assert [c[0] for c in calls] == ["Salesforce/blip-itm-base-coco", "Salesforce/blip-image-captioning-base"]
    assert all("*.h5" in c[2] for c in calls) and len(paths) == 2
    calls.clear()
    download("clip-vit-b-16.openai")  # open_clip files only, not timm's duplicate weights
    assert calls == [("timm/vit_base_patch16_clip_224.openai", calls[0][1], calls[0][2])]
    assert all(p.startswith(("open_clip_", "*.")) for p in calls[0][1])


def test_listing_the_zoo_imports_no_torch() -> None:
    code = ("import sys, fashionlens; from fashionlens.encoders import list_encoders; list_encoders();"
            "from fashionlens.cli import encoders; "
            "heavy = [m for m in ('torch', 'transformers', 'open_clip', 'timm') if m in sys.modules];"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
