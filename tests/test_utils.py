"""atomic_dir / check_dir: the folder swap every saved model and index goes through."""

from __future__ import annotations

import json

import pytest

from fashionlens.utils import MANIFEST, FolderError, atomic_dir, check_dir, write_json


def _write(path, value):
    with atomic_dir(path) as tmp:
        write_json(tmp / "v.json", value)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "w.txt").write_text(str(value))


def test_swap_replaces_the_folder_and_leaves_nothing_beside_it(tmp_path):
    _write(tmp_path / "f", 1)
    _write(tmp_path / "f", 2)
    assert [p.name for p in tmp_path.iterdir()] == ["f"]
    assert json.loads((tmp_path / "f" / "v.json").read_text()) == 2
    assert set(json.loads((tmp_path / "f" / MANIFEST).read_text())["files"]) == {"v.json", "sub/w.txt"}


def test_a_failed_block_keeps_the_old_folder(tmp_path):
    _write(tmp_path / "f", 1)
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "f") as tmp:
        write_json(tmp / "v.json", 2)
        raise RuntimeError("training diverged")
    assert [p.name for p in tmp_path.iterdir()] == ["f"]
    assert json.loads((check_dir(tmp_path / "f") / "v.json").read_text()) == 1


def test_recovery_takes_the_newest_complete_leftover_and_skips_half_written_ones(tmp_path):
    _write(tmp_path / "f", 1)
    (tmp_path / "f").rename(tmp_path / ".f.old-1-a")  # killed between the two renames of a swap
    _write(tmp_path / "g", 2)
    (tmp_path / "g").rename(tmp_path / ".f.tmp-1-a")  # the finished new folder
    half = tmp_path / ".f.tmp-2-b"  # a later build killed while writing: no manifest
    half.mkdir()
    (half / "v.json").write_text("3")
    assert json.loads((check_dir(tmp_path / "f") / "v.json").read_text()) == 2


def test_a_manifest_may_not_name_files_outside_its_folder(tmp_path):
    _write(tmp_path / "f", 1)
    m = json.loads((tmp_path / "f" / MANIFEST).read_text())
    m["files"]["../secret"] = {"size": 1, "blake2b": "00"}
    (tmp_path / "f" / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(FolderError, match=r"lists a file outside the folder \('\.\./secret'\)"):
        check_dir(tmp_path / "f")
