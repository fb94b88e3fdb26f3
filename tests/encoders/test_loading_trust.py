"""A saved run folder never runs code: only registered names and run kinds build, from data."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionlens.encoders import create, list_encoders, load_run_encoder, registry
from fashionlens.encoders.registry import UntrustedReferenceError, create_from_config, record_ref
from tests.categorize.test_categorizer import ColourEncoder


def register_toy(monkeypatch: pytest.MonkeyPatch) -> str:
    """`toy-colour` (a numpy two-tower encoder) registered until the test ends."""
    list_encoders()  # the families register into the real registry first, so restoring it loses none
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register("toy-colour")(ColourEncoder)
    return "toy-colour"


@pytest.fixture()
def toy_registered(monkeypatch: pytest.MonkeyPatch) -> str:
    return register_toy(monkeypatch)


class Payload:
    """A module on sys.path whose import, or factory call, writes `marker`: proof that code ran."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch):
        self.marker = root / f"ran-{uuid.uuid4().hex}"
        self.module = f"fl_payload_{uuid.uuid4().hex}"  # fresh name: an import always runs the module
        mods = root / "mods"
        mods.mkdir(exist_ok=True)
        (mods / f"{self.module}.py").write_text(
            f"from pathlib import Path\nPath({str(self.marker)!r}).write_text('import')\n"
            f"def build(**kw):\n    Path({str(self.marker)!r}).write_text('call')\n")
        monkeypatch.syspath_prepend(str(mods))
        self.factory = f"{self.module}:build"
        # what issue 16 showed: a shell command from a perceptual run's encoder.json
        self.shell = {"base": "subprocess:run", "base_kwargs": {
            "args": [sys.executable, "-c", f"open({str(self.marker)!r}, 'w').write('shell')"]}}

    def assert_not_run(self) -> None:
        assert not self.marker.exists(), f"the payload ran: {self.marker.read_text()}"
        assert self.module not in sys.modules


@pytest.fixture()
def payload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Payload:
    return Payload(tmp_path, monkeypatch)


def assert_refused(err: pytest.ExceptionInfo, path: Path, field: str) -> None:
    msg = str(err.value)
    assert str(path) in msg and f"'{field}'" in msg, msg


def _heads(root: Path) -> None:
    """A real heads.safetensors (4-d image and text features), so the aligned loader reaches its bases."""
    from safetensors.torch import save_file

    from fashionlens.train.align import ProjectionHead

    tensors = {}
    for prefix in ("image", "text"):
        tensors |= {f"{prefix}.{k}": v.contiguous() for k, v in ProjectionHead(4, 8, 16).state_dict().items()}
    save_file(tensors, str(root / "heads.safetensors"))


def write_run(root: Path, kind: str, poison: dict) -> Path:
    """A run folder of `kind` complete enough that today's loader reaches the names it holds
    (the names it does not poison: `toy-colour`, see the `toy_registered` fixture)."""
    root.mkdir(parents=True, exist_ok=True)
    cfg: dict = {"kind": kind}
    if kind == "aligned":
        _heads(root)
        cfg |= {"image_encoder": "toy-colour", "text_encoder": "toy-colour", "image_in": 4, "text_in": 4,
                "dim": 8, "hidden": 16, "head": "mlp"}
    elif kind == "finetuned":
        (root / "weights.safetensors").write_bytes(b"")
        cfg |= {"image_encoder": "toy-colour", "text_encoder": "toy-colour", "config": {}}
    elif kind == "tuned":
        (root / "weights.safetensors").write_bytes(b"")
        cfg |= {"base": "toy-colour", "unfreeze_blocks": 1}
    elif kind == "perceptual":
        cfg |= {"base": "toy-colour", "mode": "mlp", "head": False, "in_dim": 4, "hidden": 8}
    (root / "encoder.json").write_text(json.dumps(cfg | poison))
    return root


RUN_FIELDS = [("aligned", "image_encoder"), ("aligned", "text_encoder"), ("finetuned", "image_encoder"),
              ("finetuned", "text_encoder"), ("tuned", "base"), ("perceptual", "base")]


@pytest.mark.parametrize("kind,field", RUN_FIELDS)
def test_a_run_naming_module_factory_code_is_refused_without_importing_it(kind, field, payload, tmp_path,
                                                                         toy_registered):
    run = write_run(tmp_path / "run", kind, {field: payload.factory})
    with pytest.raises(UntrustedReferenceError) as err:
        create(f"run:{run}")
    payload.assert_not_run()
    assert_refused(err, run / "encoder.json", field)
    assert "not a registered encoder" in str(err.value)


def test_a_perceptual_run_cannot_run_a_shell_command(payload, tmp_path, toy_registered):
    run = write_run(tmp_path / "run", "perceptual", payload.shell)
    with pytest.raises(UntrustedReferenceError) as err:
        load_run_encoder(run)
    payload.assert_not_run()
    assert_refused(err, run / "encoder.json", "base")
    # nested: an aligned run whose image tower is that perceptual run is refused the same way
    outer = write_run(tmp_path / "outer", "aligned", {"image_encoder": "run:../run"})
    with pytest.raises(UntrustedReferenceError) as err:
        create(f"run:{outer}")
    payload.assert_not_run()
    assert_refused(err, run / "encoder.json", "base")


def test_a_run_kind_never_chooses_a_module_to_import(payload, tmp_path, monkeypatch):
    import fashionlens.encoders as pkg

    # a module an attacker could name: reachable as fashionlens.encoders.<kind>
    extra = tmp_path / "pkg"
    extra.mkdir()
    kind = f"fl_kind_{uuid.uuid4().hex}"
    (extra / f"{kind}.py").write_text(f"open({str(payload.marker)!r}, 'w').write('kind')\n")
    monkeypatch.setattr(pkg, "__path__", [*pkg.__path__, str(extra)])
    run = tmp_path / "run"
    run.mkdir()
    (run / "encoder.json").write_text(json.dumps({"kind": kind}))
    with pytest.raises(UntrustedReferenceError) as err:
        load_run_encoder(run)
    assert not payload.marker.exists() and f"fashionlens.encoders.{kind}" not in sys.modules
    assert_refused(err, run / "encoder.json", "kind")
    (run / "encoder.json").write_text(json.dumps({"kind": ["aligned"]}))
    with pytest.raises(UntrustedReferenceError, match="'kind'"):
        load_run_encoder(run)


def test_names_from_files_build_only_registered_encoders_with_data(toy_registered, tmp_path):
    src = tmp_path / "thing.json"
    enc = create_from_config(toy_registered, source=src, field="encoder")
    assert isinstance(enc, ColourEncoder) and enc.name == toy_registered
    for bad, field in ((42, "encoder"), ({"x": 1}, "encoder")):
        with pytest.raises(UntrustedReferenceError, match=f"field '{field}'"):
            create_from_config(bad, source=src, field=field)
    with pytest.raises(UntrustedReferenceError, match="arguments must be a JSON object"):
        create_from_config(toy_registered, ["a"], source=src, field="base")
    with pytest.raises(UntrustedReferenceError, match="not plain JSON data"):
        create_from_config(toy_registered, {"dim": object()}, source=src, field="base")
    with pytest.raises(UntrustedReferenceError, match="bad arguments for 'toy-colour'"):
        create_from_config(toy_registered, {"shell": True}, source=src, field="base")
    # the same names stay open to code a user passes explicitly
    explicit = create("tests.categorize.test_categorizer:ColourEncoder")
    assert isinstance(explicit, ColourEncoder)


def test_the_timm_factory_is_a_registered_name_so_its_runs_reload(tmp_path):
    from fashionlens.encoders.perceptual import PerceptualEncoder

    kwargs = {"arch": "vit_tiny_patch16_224", "img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2,
              "num_heads": 2, "seed": 0, "device": "cpu"}
    base = create("timm", **kwargs)
    other = create("timm", **(kwargs | {"seed": 1}))
    assert base.fingerprint() != other.fingerprint()  # one name, two models: two caches
    PerceptualEncoder([base], None, {"base": "timm", "base_kwargs": kwargs, "mode": "mlp"}).save(tmp_path / "run")
    loaded = create(f"run:{tmp_path / 'run'}")
    img = [Image.new("RGB", (32, 32), (200, 30, 30))]
    np.testing.assert_allclose(loaded.encode_images(img), base.encode_images(img), atol=1e-6)


def test_record_ref_makes_working_dir_relative_runs_relative_to_the_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert record_ref("run:runs/a", "idx/encoder") == "run:../../runs/a"
    assert record_ref("run:/abs/run", "idx") == "run:/abs/run"
    assert record_ref("toy-colour", "idx") == "toy-colour"
