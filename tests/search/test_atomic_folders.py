"""Crash safety of index and categorizer folders, on a real Myntra sample.

A kill is injected in-process at every write step of a rebuild (tests/faults.py); after each one the
folder must load as the old build or the new one: an item's own photo finds itself at rank 1, the
classes match the head. Damaged folders are refused with a message naming the file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fashionlens.categorize.categorizer import CategorizeConfig, Categorizer
from fashionlens.search.index import BuildConfig, SearchIndex, build_index
from fashionlens.train.align import AlignConfig
from fashionlens.utils import MANIFEST, FolderError
from tests.faults import Killed, crash_at


@pytest.fixture(scope="module")
def memo_encoders():
    """Backbones by name are built once (their weights take ~0.5 s a load); `run:` folders (the
    trained heads under test) are still read from disk every time."""
    from fashionlens.encoders import aligned, registry

    real, memo = registry.create, {}

    def create(name, **kwargs):
        if kwargs or name.startswith("run:"):
            return real(name, **kwargs)
        if name not in memo:
            memo[name] = real(name)
        return memo[name]

    real_cfg = registry.create_from_config

    def create_from_config(name, kwargs=None, **where):
        if kwargs or name.startswith("run:"):
            return real_cfg(name, kwargs, **where)
        if name not in memo:
            memo[name] = real_cfg(name, **where)
        return memo[name]

    with pytest.MonkeyPatch.context() as m:
        m.setattr(registry, "create", create)
        m.setattr(aligned, "create_from_config", create_from_config)
        yield create


@pytest.fixture(scope="module")
def builds(myntra_small, emb_cache, tmp_path_factory, memo_encoders, one_torch_thread):
    """Two different 60-item builds (30 items shared) with the default aligned encoder."""
    old_cat, new_cat = myntra_small.subset(range(60)), myntra_small.subset(range(30, 90))
    cfg = BuildConfig(cache_dir=emb_cache, align=AlignConfig(epochs=3, batch_size=32, patience=3, hidden=256))
    root = tmp_path_factory.mktemp("atomic")
    build_index(old_cat, root / "old", cfg, progress=False)
    build_index(new_cat, root / "new", cfg, progress=False)  # also warms the cache: rebuilds only write
    photos = dict(zip(old_cat.ids + new_cat.ids, old_cat.images + new_cat.images))
    return {"root": root, "cfg": cfg, "old": old_cat, "new": new_cat, "photos": photos}


def _which(folder: Path, expected: dict[str, list[str]], photos: dict[str, str]) -> str:
    """Which build `folder` loads as; fails on a mix. Its items' own photos must come first."""
    idx = SearchIndex(folder)
    ids = list(idx.catalog.ids)
    names = [name for name, want in expected.items() if ids == want]
    assert names, f"{folder} loads as neither build ({len(ids)} items)"
    for item in (ids[0], ids[len(ids) // 2], ids[-1]):
        hit = idx.similar(image=photos[item], k=1)[0]
        assert hit["id"] == item and hit["score"] > 0.99, (names[0], item, hit["id"], hit["score"])
    return names[0]


def test_a_kill_at_every_step_of_a_rebuild_leaves_the_old_or_the_new_index(builds):
    b = builds
    expected = {"old": b["old"].ids, "new": b["new"].ids}
    count_dir = b["root"] / "count" / "idx"
    shutil.copytree(b["root"] / "old", count_dir)
    with crash_at(None) as count:
        build_index(b["new"], count_dir, b["cfg"], progress=False)
    assert count.steps >= 10  # heads, encoder.json, metrics, vectors, ids, alive, backend, ..., the swap
    seen = []
    for k in range(count.steps):
        out = b["root"] / f"rebuild-{k}" / "idx"
        shutil.copytree(b["root"] / "old", out)
        with crash_at(k) as cp, pytest.raises(Killed):
            build_index(b["new"], out, b["cfg"], progress=False)
        seen.append((k, cp.where, _which(out, expected, b["photos"])))
    outcomes = [w for _, _, w in seen]
    # old until the new folder's rename, new from then on (a kill between the two renames recovers it)
    switch = outcomes.index("new")
    assert outcomes == ["old"] * switch + ["new"] * (len(outcomes) - switch), seen
    assert "replace" in seen[switch][1] and ".idx.tmp-" in seen[switch][1], seen[switch]
    # the next build clears what the crashes left beside the folder
    build_index(b["new"], out, b["cfg"], progress=False)
    assert sorted(p.name for p in out.parent.iterdir()) == ["idx"]


def test_a_kill_while_saving_added_and_removed_items_leaves_either_version(builds, emb_cache):
    b = builds
    extra = b["new"].subset(range(40, 45))  # not in the old build
    gone = b["old"].ids[0]
    after = [i for i in b["old"].ids if i != gone] + extra.ids
    expected = {"before": b["old"].ids, "after": after}

    def update(folder: Path) -> SearchIndex:
        shutil.copytree(b["root"] / "old", folder)
        idx = SearchIndex(folder)
        idx.add(extra, cache_dir=emb_cache)
        idx.remove([gone])
        return idx

    idx = update(b["root"] / "save-count" / "idx")
    with crash_at(None) as count:
        idx.save()
    assert _which(idx.folder, expected, b["photos"]) == "after"
    assert idx.similar(image=b["photos"][extra.ids[0]], k=1)[0]["id"] == extra.ids[0]  # reopened after save
    seen = []
    for k in range(count.steps):
        idx = update(b["root"] / f"save-{k}" / "idx")
        with crash_at(k) as cp, pytest.raises(Killed):
            idx.save()
        seen.append((cp.where, _which(idx.folder, expected, b["photos"])))
    outcomes = [w for _, w in seen]
    switch = outcomes.index("after")
    assert outcomes == ["before"] * switch + ["after"] * (len(outcomes) - switch), seen
    assert "replace" in seen[switch][0] and ".idx.tmp-" in seen[switch][0], seen[switch]


def test_damaged_index_folders_are_refused_naming_the_file(builds):
    b = builds

    def copy(name: str) -> Path:
        return Path(shutil.copytree(b["root"] / "old", b["root"] / name / "idx"))

    short = copy("short")  # the 200-row vectors over a 2,000-row catalog, in small
    vec = np.load(short / "vectors.npy")
    np.save(short / "vectors.npy", vec[:20])
    with pytest.raises(FolderError, match=r"vectors\.npy: \d+ bytes, the manifest says"):
        SearchIndex(short)
    (short / MANIFEST).unlink()  # a folder without a manifest is still checked row by row
    with pytest.raises(FolderError, match=r"vectors\.npy: 20 rows but ids\.npy has 60"):
        SearchIndex(short)

    heads = copy("heads")  # new heads over old vectors: same size, other content
    shutil.copy(b["root"] / "new" / "encoder" / "heads.safetensors", heads / "encoder" / "heads.safetensors")
    with pytest.raises(FolderError, match=r"encoder/heads\.safetensors: content differs from the manifest"):
        SearchIndex(heads)

    cat = copy("catalog")  # another build's catalog beside these vectors, no manifest to tell
    (cat / MANIFEST).unlink()
    shutil.copy(b["root"] / "new" / "catalog.parquet", cat / "catalog.parquet")
    with pytest.raises(FolderError, match=r"catalog\.parquet and the index list different item ids"):
        SearchIndex(cat)

    gone = copy("gone")
    (gone / "ids.npy").unlink()
    with pytest.raises(FolderError, match=r"ids\.npy: missing \(the manifest lists it\)"):
        SearchIndex(gone)


def test_a_rebuild_never_replaces_a_folder_of_other_files(builds, tmp_path):
    from fashionlens.cli.main import app

    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(FolderError, match=r"holds other files \(thesis\.tex\)"):
        build_index(builds["old"], mine, builds["cfg"], progress=False)
    r = CliRunner().invoke(app, ["index", "/no/catalog/read/yet", "--out", str(mine)])  # refused up front
    assert r.exit_code == 2 and "holds other files (thesis.tex)" in r.output
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"] and not list(tmp_path.glob(".notes.*"))


# ---- categorizer --------------------------------------------------------------------------------
KINDS = ("Tshirts", "Shirts", "Watches", "Casual Shoes", "Tops")


@pytest.fixture(scope="module")
def categorizers(myntra_small, emb_cache, tmp_path_factory, memo_encoders):
    """An old 5-class and a new 4-class articleType probe on real photos, saved once each."""
    kinds = myntra_small.column("articleType")

    def pick(classes, n):
        return myntra_small.subset(np.concatenate([np.flatnonzero(kinds == c)[:n] for c in classes]))

    cfg = CategorizeConfig(label="articleType", method="probe", tta=False, encoder="efficientnet-lite0")
    root = tmp_path_factory.mktemp("cat")
    models = {}
    for name, cat in (("old", pick(KINDS, 12)), ("new", pick(KINDS[:4], 15))):
        clf = Categorizer(cfg, encoder=memo_encoders("efficientnet-lite0"), cache_dir=emb_cache).fit(cat)
        clf.save(root / name)
        models[name] = clf
    photos = pick(KINDS, 1).images
    return {"root": root, "models": models, "photos": photos,
            "proba": {n: m.predict_proba(photos) for n, m in models.items()}}


def test_a_kill_at_every_step_of_a_categorizer_retrain_leaves_the_old_or_the_new_model(categorizers, emb_cache,
                                                                                        memo_encoders):
    c = categorizers
    new = c["models"]["new"]
    count_dir = Path(shutil.copytree(c["root"] / "old", c["root"] / "count" / "m"))
    with crash_at(None) as count:
        new.save(count_dir)
    assert count.steps >= 4  # head, fit ids, log, categorizer.json (+ manifest, two renames, clean-up)
    outcomes = []
    for k in range(count.steps):
        out = Path(shutil.copytree(c["root"] / "old", c["root"] / f"retrain-{k}" / "m"))
        with crash_at(k), pytest.raises(Killed):
            new.save(out)
        clf = Categorizer.load(out, encoder=memo_encoders("efficientnet-lite0"), cache_dir=emb_cache)
        name = {5: "old", 4: "new"}[len(clf.classes_)]
        assert list(clf.classes_) == list(c["models"][name].classes_)
        np.testing.assert_allclose(clf.predict_proba(c["photos"]), c["proba"][name], atol=1e-6)
        log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
        assert log == json.loads(json.dumps(c["models"][name].history_))  # the log of that model
        outcomes.append(name)
    switch = outcomes.index("new")
    assert outcomes == ["old"] * switch + ["new"] * (len(outcomes) - switch)


def test_a_categorizer_head_from_another_training_is_refused(categorizers):
    c = categorizers
    out = Path(shutil.copytree(c["root"] / "old", c["root"] / "mixed" / "m"))
    shutil.copy(c["root"] / "new" / "head.safetensors", out / "head.safetensors")  # 4 classes beside 5
    with pytest.raises(FolderError, match=r"head\.safetensors: \d+ bytes, the manifest says"):
        Categorizer.load(out)


def test_retraining_from_the_cli_keeps_the_old_log_until_the_new_model_is_in(myntra_dir, emb_cache, tmp_path):
    from fashionlens.cli.categorize import app

    out = tmp_path / "model"
    args = [str(myntra_dir), "--method", "probe", "--limit", "60", "--no-tta", "--out", str(out),
            "--cache-dir", emb_cache, "--no-check-images"]
    r = CliRunner().invoke(app, ["train", *args, "--label", "masterCategory"])
    assert r.exit_code == 0, r.output
    old_log = (out / "train_log.jsonl").read_text()
    assert old_log.strip() and not (out / "checkpoint").exists()  # the live log went with the swap
    with crash_at(0) as cp, pytest.raises(Killed):  # same photos (cached): the first write is the model's
        CliRunner().invoke(app, ["train", *args, "--label", "usage"])
    assert "head.safetensors" in cp.where
    assert (out / "train_log.jsonl").read_text() == old_log
    assert Categorizer.load(out).config.label == "masterCategory"
    assert (out / "checkpoint" / "train_log.jsonl").read_text().strip()  # the new run logged beside it
